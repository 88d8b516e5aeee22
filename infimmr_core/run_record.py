"""What a phase's log history says about the computation rather than the model: wall-clock fields.

The phase artifact's digest must be the same whenever its key is computed again (downstream keys hold it), so its
`metrics.jsonl` keeps what a step computed (loss, rewards, learning rate, ...) and the run record beside it
(`layout.RUN_RECORD_SUFFIX`) keeps how long it took (TRL's `step_time`, the Trainer's `*_runtime` and `*_per_second`,
infimmr's throughput, step split and MFU). Every figure is still logged, reported to TensorBoard / W&B and summed up
in the stage's metrics.
"""

from __future__ import annotations

import re
from typing import Any

# Names of figures measured with a clock: `*_time`, `*runtime`, `*per_second`, `seconds/*`, `*_seconds*` and MFU.
_WALL_CLOCK = re.compile(r"(^|_)time$|runtime|per_second|(^|[_/])seconds($|[_/])|(^|_)mfu$")


def is_wall_clock(field: str) -> bool:
    """Is this log field a wall-clock measurement (which no two runs share)?"""
    return bool(_WALL_CLOCK.search(field))


def split_history(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(content, timings): each entry without its wall-clock fields, and the wall-clock fields of each entry that has
    any, with its step."""
    content, timings = [], []
    for entry in history:
        content.append({k: v for k, v in entry.items() if not is_wall_clock(k)})
        clocked = {k: v for k, v in entry.items() if is_wall_clock(k)}
        if clocked:
            timings.append({"step": entry.get("step"), **clocked})
    return content, timings

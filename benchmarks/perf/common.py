"""What every `make bench` module shares: side-by-side timing and the row every figure is reported as.

Ratios are only meaningful when both sides see the same machine load (the box is shared), so the two callables run
alternately, A B A B ..., in one process, never one after the other in blocks or in separate runs.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

ROW_KEYS = ("bench", "measure", "a", "b", "a_value", "b_value", "unit", "ratio", "target", "met", "note")


@dataclasses.dataclass
class Row:
    """One measured comparison: `a` against `b` (a's and b's values in `unit`), `ratio` as `measure` says
    (a/b unless stated), whether it meets `target` (None when no target applies or it could not be measured)."""

    bench: str
    measure: str
    a: str
    b: str
    a_value: float
    b_value: float
    unit: str
    ratio: float
    target: str = ""
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def side_by_side(a: Callable[[], Any], b: Callable[[], Any], *, repeats: int) -> tuple[list[float], list[float]]:
    """Wall seconds of `repeats` calls of each, alternating A B A B ... so that both sides see the same load."""
    if repeats < 1:
        raise ValueError(f"side_by_side needs repeats >= 1, got {repeats}")
    a_times: list[float] = []
    b_times: list[float] = []
    for _ in range(repeats):
        for fn, times in ((a, a_times), (b, b_times)):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return a_times, b_times


@contextmanager
def one_thread_scratch(bench: str) -> Iterator[Path]:
    """A scratch directory for a module's tiny model and files, at one torch thread (the tiny model's matmuls are too
    small to split); the directory removed and the thread count restored on the way out."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix=f"infimmr-bench-{bench}-"))
    try:
        yield scratch
    finally:
        torch.set_num_threads(previous)
        shutil.rmtree(scratch, ignore_errors=True)


def meets(ratio: float, target: str) -> bool | None:
    """Whether `ratio` satisfies a target written as '>= 3.0', '<= 0.05', '> 1', '< 1.2' (None without a target)."""
    target = target.strip()
    if not target:
        return None
    for op, check in ((">=", float.__ge__), ("<=", float.__le__), (">", float.__gt__), ("<", float.__lt__)):
        if target.startswith(op):
            return bool(check(float(ratio), float(target[len(op):])))
    raise ValueError(f"target {target!r} is not of the form '>= x', '<= x', '> x' or '< x'")


def ratio_row(bench: str, measure: str, a: str, b: str, a_value: float, b_value: float, unit: str, *,
              target: str = "", note: str = "") -> dict[str, Any]:
    """A row whose ratio is a_value / b_value and whose `met` is judged against `target`."""
    ratio = a_value / b_value if b_value else float("nan")
    met = meets(ratio, target) if b_value else None
    return Row(bench, measure, a, b, float(a_value), float(b_value), unit, ratio, target, met, note).as_dict()


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_rows(rows: list[dict[str, Any]]) -> None:
    """What each module's `__main__` does: its rows as JSON on stdout."""
    json.dump(rows, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def end_child(proc: subprocess.Popen) -> None:
    """End a helper process that stops when its stdin closes (a scorer, a moto server): close it, wait, kill if stuck."""
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

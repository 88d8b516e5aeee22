"""Shards: the unit of expensive work (captioning, rollouts) that a crashed run resumes at.

Each finished shard's results are one JSON file in the stage's work directory (which survives a crash of the same
stage key), written atomically; a rerun reuses every file whose shard still holds exactly the same sample ids and
computes only the rest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from infimmr_core.data.pool_io import read_pool
from infimmr_core.data.schema import Sample
from infimmr_core.keys import sha256_text
from infimmr_core.layout import SHARD_PREFIX


def ids_digest(samples: list[Sample]) -> str:
    return sha256_text("\n".join(s.id for s in samples))


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}"


def write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)  # a reader sees the old file or the whole new one, never half of it


def resumable(
    shard_paths: list[Path],
    state_dir: Path,
    compute: Callable[[list[Sample]], dict[str, Any]],
    *,
    select: Callable[[Sample], bool] = lambda s: True,
    log: Callable[[str], None] = print,
    step: str = "",
) -> int:
    """Run `compute` (samples -> {id: result}) on the selected samples of every shard without a finished result file;
    returns how many shards were computed now."""
    computed = 0
    for number, path in enumerate(shard_paths, start=1):
        samples = [s for s in read_pool(path) if select(s)]
        target = state_dir / f"{path.stem}.json"
        if not samples or _finished(target, samples):
            continue
        results = compute(samples)
        write_json_atomic(target, {"ids": ids_digest(samples), "results": results})
        computed += 1
        log(f"{step} {path.stem} done ({len(samples)} samples; {number}/{len(shard_paths)})")
    return computed


def _finished(target: Path, samples: list[Sample]) -> bool:
    if not target.is_file():
        return False
    try:
        return json.loads(target.read_text())["ids"] == ids_digest(samples)
    except (json.JSONDecodeError, KeyError):
        return False


def results_of(state_dir: Path, shard_path: Path) -> dict[str, Any]:
    target = state_dir / f"{shard_path.stem}.json"
    return json.loads(target.read_text())["results"] if target.is_file() else {}

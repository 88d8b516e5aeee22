"""Shards: the unit of expensive work (captioning, rollouts) that a crashed run resumes at.

Each finished shard's results are one JSON file in the stage's work directory (which survives a crash of the same
stage key), written atomically; a rerun reuses every file whose shard still holds exactly the same sample ids and
computes only the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from infimmr_core.atomic import read_json_or_none, write_json_atomic
from infimmr_core.data.pool_io import read_pool
from infimmr_core.data.schema import Sample
from infimmr_core.keys import sha256_text
from infimmr_core.layout import SHARD_PREFIX


def ids_digest(samples: list[Sample]) -> str:
    return sha256_text("\n".join(s.id for s in samples))


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}"


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
    """A result file for exactly these samples; a damaged one (empty, truncated) is not, so it is computed again."""
    saved = read_json_or_none(target)
    return isinstance(saved, dict) and saved.get("ids") == ids_digest(samples) and isinstance(saved.get("results"), dict)


def results_of(state_dir: Path, shard_path: Path) -> dict[str, Any]:
    saved = read_json_or_none(state_dir / f"{shard_path.stem}.json")
    return saved["results"] if isinstance(saved, dict) and isinstance(saved.get("results"), dict) else {}

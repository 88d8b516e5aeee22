"""Benchmark: curation throughput on the smoke recipe's sources, the fixed cost of each part, and one shard's model
loading before and after it was shared.

    .venv/bin/python -m benchmarks.perf.curation [--quick]

- Throughput: the curate stage as the pipeline runs it, part by part (collect, each shard, the merge) through
  `produce`, one after another in a warm worker process (the runner's default), in a fresh store: rows in per wall
  second. Then again with each part in a fresh process of its own, as before (each with its own store and model
  cache, so both build the tiny model): the before/after ratio.
- Fixed cost per part: a part's wall time minus the time its stage code ran (`metrics.seconds`, measured by the
  worker around `run`): interpreter start, imports (torch, transformers), downloading inputs, uploading the artifact.
- Model loading: one shard enriched in this process (captions, then rollouts), alternately (A B A B) with one model
  shared by the captioner and the rollout policy (the code now) and with each loading its own copy (as every shard
  process did before); both write the same samples, which is checked.
Quick mode uses one shard's worth of rows for the in-process part and one repeat.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.perf.common import median, print_rows, ratio_row, side_by_side
from infimmr_core.config import Recipe
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import SHARD, ArtifactRef, curate_from_parts, plan_stage, produce
from infimmr_core.store import ArtifactStore, LocalStore

RECIPE = "smoke"


class Part:
    """One part's outcome and wall seconds (what `curate_from_parts` needs: ref and state)."""

    def __init__(self, ref: ArtifactRef, seconds: float):
        self.ref, self.state, self.seconds = ref, "cached" if ref.reused else "completed", seconds


def curate_in_parts(recipe: Recipe, store: ArtifactStore, warm: bool | None = None) -> tuple[float, dict[str, Part]]:
    """The curate stage as a run computes it (shards one after another; `warm` as run_stage_process takes it): wall
    seconds and each part."""
    from infimmr_core.runner import run_stage_process

    def part(stage: str, upstream: dict[str, ArtifactRef]) -> Part:
        started = time.perf_counter()
        ref = produce(store, plan_stage(stage, recipe, upstream),
                      lambda plan: run_stage_process(plan, recipe, upstream, on_line=lambda line: None, warm=warm))
        return Part(ref, time.perf_counter() - started)

    started = time.perf_counter()
    merged, parts = curate_from_parts(store, recipe, force=False, run_part=part,
                                      run_shards=lambda upstreams: {n: part(SHARD, u) for n, u in upstreams.items()})
    if merged is None:
        raise RuntimeError("the curate artifact was already stored: the store is not fresh")
    return time.perf_counter() - started, {**parts, "curate": merged}


def _curate_fresh(home: Path, warm: bool | None) -> tuple[float, dict[str, Part]]:
    recipe = load_recipe(RECIPE)
    store = LocalStore(home / "store", cache_dir=home / "cache")
    recipe.store.uri, recipe.store.cache_dir = store.uri, str(store.cache_dir)
    return curate_in_parts(recipe, store, warm)


def part_rows(home: Path) -> list[dict[str, Any]]:
    from infimmr_core.runner import close_warm_workers

    wall, parts = _curate_fresh(home / "warm", None)
    close_warm_workers()
    before, before_parts = _curate_fresh(home / "fresh", False)
    if {n: (p.ref.key, p.ref.digest) for n, p in parts.items()} != {n: (p.ref.key, p.ref.digest) for n, p in before_parts.items()}:
        raise RuntimeError("the parts run in a warm worker stored other artifacts than one process per part")
    rows_in = int(parts["curate"].ref.metrics["rows_in"])
    compute = {name: float(p.ref.metrics.get("seconds", 0.0)) for name, p in parts.items()}
    fixed = {name: p.seconds - compute[name] for name, p in parts.items()}
    each = ", ".join(f"{name} {p.seconds:.1f} s ({compute[name]:.1f} in its code)" for name, p in parts.items())
    return [
        ratio_row("curation", "curate throughput (rows/s): rows in / wall", "rows in", "wall", rows_in, wall, "rows, s",
                  note=f"recipe {RECIPE}: {len(parts)} parts run one after another in a warm worker process; {each}"),
        ratio_row("curation", "curate wall: parts in a warm worker / each part its own process (before)", "warm worker",
                  "one process per part", wall, before, "s",
                  note="identical keys and artifacts; each run in its own store, building its tiny model; one process "
                       "per part (with the torch-free start-up of collect and the merge, and no teardown): "
                       + ", ".join(f"{name} {p.seconds:.1f} s" for name, p in before_parts.items())),
        ratio_row("curation", "fixed cost per part / part wall (mean over parts)", "fixed cost", "part wall",
                  sum(fixed.values()) / len(parts), sum(p.seconds for p in parts.values()) / len(parts), "s",
                  note="fixed cost = wall - time in the stage's own code: process start, imports, download, upload; "
                       + ", ".join(f"{name} {s:.1f}" for name, s in fixed.items())),
    ]


def shard_rows(home: Path, quick: bool, repeats: int) -> list[dict[str, Any]]:
    """One shard's enrichment in this process: the shared model against one copy per step."""
    from infimmr_core.context import StageContext
    from infimmr_core.curation.collect import collect_part
    from infimmr_core.curation.enrich import SAMPLES_FILE, enrich, opener
    from infimmr_core.inference import resolve_device

    import torch

    torch.set_num_threads(1)  # one intra-op thread: on a shared 2-core box more threads make the timings noise
    recipe = load_recipe(RECIPE)
    cur = recipe.curation
    if quick:
        cur.sources = cur.sources[1:]  # the image source alone: captions and rollouts both run
    ctx = StageContext(stage="curate-collect", recipe=recipe, inputs={}, out_dir=home / "collect",
                       work_dir=home / "collect-work", cache_dir=home / "cache",
                       device=resolve_device(recipe.runtime.device), upstream_digests={})
    # The image shard: captions (image samples) and rollouts both run on it.
    shard = max(collect_part(ctx, ctx.out_dir), key=lambda path: pq.read_metadata(path).num_rows)
    outputs: dict[str, list[Path]] = {"shared": [], "separate": []}
    runs = itertools.count()

    def enrich_once(way: str) -> None:
        run = home / f"{way}-{next(runs)}"
        shard_ctx = StageContext(stage="curate-shard", recipe=recipe, inputs={"shard": shard}, out_dir=run / "out",
                                 work_dir=run / "work", cache_dir=home / "cache", device=ctx.device, upstream_digests={})
        run.mkdir(parents=True)
        if way == "shared":
            enrich(shard_ctx, shard, shard_ctx.out_dir)
        else:  # before: the captioner and the rollout policy each load the base model
            enrich(shard_ctx, shard, shard_ctx.out_dir, opener(shard_ctx, cur.captioning.model, cur.captioning.generation),
                   opener(shard_ctx, cur.difficulty.policy, cur.difficulty.generation))
        outputs[way].append(shard_ctx.out_dir / SAMPLES_FILE)

    enrich_once("shared")  # warm: the tiny model is built into the cache once, outside the timing
    outputs["shared"].clear()
    shared, separate = side_by_side(lambda: enrich_once("shared"), lambda: enrich_once("separate"), repeats=repeats)
    tables = {way: [pq.read_table(path).to_pylist() for path in paths] for way, paths in outputs.items()}
    same = all(t == tables["shared"][0] for t in tables["shared"] + tables["separate"])
    if not same:
        raise RuntimeError("the shared model wrote other samples than one model per step")
    rows = pq.read_metadata(shard).num_rows
    return [ratio_row("curation", "one shard (captions + rollouts) in process: model shared / one per step (before)",
                      "shared", "one per step", median(shared), median(separate), "s",
                      note=f"{rows} rows, 1 torch thread; alternated x{repeats}; identical samples; shared "
                           f"{', '.join(f'{s:.1f}' for s in shared)} s, before {', '.join(f'{s:.1f}' for s in separate)} s")]


def run(quick: bool = False) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="infimmr-bench-curation-") as tmp:
        rows = shard_rows(Path(tmp) / "shard", quick, 1 if quick else 3)
        shutil.rmtree(Path(tmp) / "shard", ignore_errors=True)
        return rows + part_rows(Path(tmp) / "parts")


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))

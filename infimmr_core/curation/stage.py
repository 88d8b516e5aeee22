"""The curate stage: sources -> canonical samples -> filters, decontamination, dedup -> captions -> difficulty band
-> three pools. Every row that enters is accounted for: kept, filtered (a named reason) or quarantined (a named
reason, with the row and its source position); the report holds `rows_in == kept + sum(filtered) + sum(quarantined)`.

The work is done in parts, each its own artifact and cached task (see infimmr_core.stages): `curate-collect`
(collect.py) writes the accepted samples as shards, one `curate-shard` per shard (enrich.py) captions them and
measures pass rates, and this module's `run` merges the parts: the pass-rate band, the pools and the report.
`curate_locally` runs all of them in this process, for notebooks and tests.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from infimmr_core.context import StageContext
from infimmr_core.curation.collect import ShardWriter, check_quarantine, collect_part
from infimmr_core.curation.difficulty import column_pass_rate
from infimmr_core.curation.enrich import SAMPLES_FILE, Opener, enrich
from infimmr_core.curation.ledger import Ledger
from infimmr_core.curation.pools import POOLS, Candidate, assign_pools
from infimmr_core.data.pool_io import POOL_SCHEMA, read_pool, write_pool
from infimmr_core.data.schema import Sample
from infimmr_core.layout import COLLECT_PREFIX, LEDGER_FILES, SHARD_PREFIX


def band(ctx: StageContext, ledger: Ledger, shard_paths: list[Path]) -> list[Path]:
    """Keep the samples whose pass rate (measured by the shards, or the dataset's column) is in the band."""
    cfg = ctx.recipe.curation.difficulty
    if not cfg.enabled:
        return shard_paths
    kept = ShardWriter(ctx.work_dir / "banded", ctx.recipe.curation.shard_size)
    for path in shard_paths:
        for sample in read_pool(path):
            rate = column_pass_rate(sample, cfg.pass_rate_column) if cfg.pass_rate_column else sample.pass_rate
            if rate is None:
                ledger.filter("no pass rate")
            elif not cfg.keeps(rate):
                ledger.filter("pass rate out of band")
            else:
                kept.add(sample.model_copy(update={"pass_rate": rate}))
    kept.flush()
    ledger.step("difficulty band", kept.rows)
    return kept.paths


def write_pools(ctx: StageContext, shard_paths: list[Path]) -> tuple[dict[str, int], list[float]]:
    """Decide pools and their row order from ids alone, then write them with memory bounded by a shard: rows go to
    buckets of consecutive pool positions first, and each bucket is sorted into place."""
    candidates, rates = [], []
    for path in shard_paths:
        table = pq.read_table(path, columns=["id", "images", "caption", "pass_rate"]).to_pylist()
        candidates += [Candidate(r["id"], bool(r["images"]), bool(r["caption"])) for r in table]
        rates += [r["pass_rate"] for r in table if r["pass_rate"] is not None]
    members = assign_pools(candidates, ctx.recipe.curation.pools, ctx.recipe.curation.seed)
    positions = {name: {sample_id: i for i, sample_id in enumerate(ids)} for name, ids in members.items()}
    size = ctx.recipe.curation.shard_size
    buckets = ctx.work_dir / "buckets"
    shutil.rmtree(buckets, ignore_errors=True)
    for number, path in enumerate(shard_paths):
        samples = read_pool(path)
        for name in POOLS:
            grouped: dict[int, list[Sample]] = {}
            for s in samples:
                if (at := positions[name].get(s.id)) is not None:
                    grouped.setdefault(at // size, []).append(s)
            for bucket, chosen in grouped.items():
                write_pool(chosen, buckets / name / f"{bucket:06d}" / f"{number:06d}.parquet")
    folder = ctx.out_dir / "pools"
    folder.mkdir(parents=True, exist_ok=True)
    for name in POOLS:
        with pq.ParquetWriter(folder / f"{name}.parquet", POOL_SCHEMA) as writer:
            for bucket in sorted((buckets / name).glob("*")) if (buckets / name).exists() else []:
                chosen = sorted((s for part in sorted(bucket.glob("*.parquet")) for s in read_pool(part)),
                                key=lambda s: positions[name][s.id])
                if name == "image":  # phase 3 must reason from pixels alone
                    chosen = [s.model_copy(update={"caption": None}) for s in chosen]
                rows = [{**s.model_dump(), "metadata": json.dumps(s.metadata, sort_keys=True)} for s in chosen]
                writer.write_table(pa.Table.from_pylist(rows, schema=POOL_SCHEMA))
    return {name: len(ids) for name, ids in members.items()}, rates


def merge(ctx: StageContext, collected: dict[str, Path], shard_dirs: list[Path]) -> dict[str, Any]:
    """The collect part's ledger files and the shard artifacts (in shard order) in; pools and report out."""
    ledger = Ledger(ctx.work_dir / "ledger")
    counts = ledger.absorb(collected)
    if len(shard_dirs) != counts["shards"]:
        raise RuntimeError(f"curate: {len(shard_dirs)} shard artifacts given, the collect part wrote {counts['shards']}")
    ledger.steps += counts["steps"]
    captioned = 0
    for folder in shard_dirs:
        captioned += next((s["remaining"] for s in ledger.absorb({n: folder / n for n in LEDGER_FILES})["steps"]
                           if s["step"] == "captioning"), 0)
    if ctx.recipe.curation.captioning.enabled:
        ledger.step("captioning", captioned)
    check_quarantine(ctx, ledger)
    pools, rates = write_pools(ctx, band(ctx, ledger, [folder / SAMPLES_FILE for folder in shard_dirs]))
    ledger.close()
    report = ledger.report(kept=ledger.steps[-1]["remaining"], pools=pools, rates=rates)
    (ctx.out_dir / "report.json").write_text(json.dumps(report, indent=2))
    for path in (ledger.quarantine_path, ledger.decontamination_path):
        shutil.copyfile(path, ctx.out_dir / path.name)
    ctx.log(f"pools: {pools}; filtered {report['filtered']}; quarantined {report['quarantined']}")
    return {k: report[k] for k in ("rows_in", "kept", "filtered", "quarantined", "pools")}


def run(ctx: StageContext) -> dict[str, Any]:
    collected = {name: ctx.inputs[COLLECT_PREFIX + name] for name in LEDGER_FILES}
    shard_dirs = [ctx.inputs[name] for name in sorted(ctx.inputs) if name.startswith(SHARD_PREFIX)]
    return merge(ctx, collected, shard_dirs)


def curate_locally(ctx: StageContext, open_captioner: Opener | None = None, open_policy: Opener | None = None) -> dict[str, Any]:
    """Every part in this process, each in its own folder under ctx.work_dir (no store, no child processes); the
    openers replace the recipe's captioner / policy (e.g. a scripted policy in a test)."""
    part = ctx.work_dir / "parts"
    collect_ctx = replace(ctx, stage="curate-collect", out_dir=part / "collect", work_dir=part / "collect-work")
    shards = collect_part(collect_ctx, collect_ctx.out_dir)
    shard_dirs = []
    for shard in shards:
        folder = part / shard.stem
        enrich(replace(ctx, stage="curate-shard", work_dir=part / f"{shard.stem}-work"), shard, folder,
               open_captioner, open_policy)
        shard_dirs.append(folder)
    return merge(ctx, {name: collect_ctx.out_dir / name for name in LEDGER_FILES}, shard_dirs)


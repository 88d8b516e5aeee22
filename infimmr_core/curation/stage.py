"""The curate stage: sources -> canonical samples -> filters, decontamination, dedup -> captions -> difficulty band
-> three pools. Every row that enters is accounted for: kept, filtered (a named reason) or quarantined (a named
reason, with the row and its source position); the report holds `rows_in == kept + sum(filtered) + sum(quarantined)`.

Work flows through shards of `curation.shard_size` samples written to the stage's work directory, so memory stays
bounded by a shard and a crashed run redoes only the shard it was in (captions and rollouts are kept per shard).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from infimmr_core.config import GenerationConfig, ModelRef
from infimmr_core.context import StageContext
from infimmr_core.curation.answers import classify_answer, normalise_answer
from infimmr_core.curation.captioning import caption_shards, check_caption
from infimmr_core.curation.decontam import ContaminationIndex
from infimmr_core.curation.dedup import Deduplicator
from infimmr_core.curation.difficulty import column_pass_rate, rollout_shards
from infimmr_core.curation.filters import filter_reason
from infimmr_core.curation.ledger import Ledger
from infimmr_core.curation.pools import POOLS, Candidate, assign_pools
from infimmr_core.curation.shards import results_of, shard_name
from infimmr_core.data.adapters import json_safe
from infimmr_core.data.pool_io import POOL_SCHEMA, read_pool, write_pool
from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined, load_source
from infimmr_core.inference import Generator, make_generator
from infimmr_core.models import resolve_model

PROGRESS_EVERY = 10_000  # rows between progress lines while reading sources


def normalise(sample: Sample) -> Sample:
    answer = normalise_answer(sample.answer)
    problem = sample.problem.strip()
    answer_type = sample.answer_type
    if "answer_type" not in sample.model_fields_set:  # the source's own typing wins over our guess
        answer_type = classify_answer(problem, answer, sample.choices)
    return sample.model_copy(update={"problem": problem, "answer": answer, "answer_type": answer_type})


def _position(sample: Sample) -> str:
    # Generated samples have no file position; their id says where they came from.
    return str(sample.metadata.get("source_position", sample.id))


class _ShardWriter:
    def __init__(self, folder: Path, size: int):
        if folder.exists():
            shutil.rmtree(folder)
        self.folder, self.size, self.buffer, self.paths = folder, size, [], []

    def add(self, sample: Sample) -> None:
        self.buffer.append(sample)
        if len(self.buffer) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            path = self.folder / f"{shard_name(len(self.paths))}.parquet"
            write_pool(self.buffer, path)
            self.paths.append(path)
            self.buffer = []


def collect(ctx: StageContext, ledger: Ledger) -> list[Path]:
    """Pass 1: read every source, quarantine unreadable rows, filter, decontaminate, dedup; write shards."""
    cur = ctx.recipe.curation
    index = ContaminationIndex(cur.decontamination) if cur.decontamination.benchmarks else None
    if index is not None:
        ctx.log(f"decontaminating against {len(index)} benchmark items")
    dedup = Deduplicator(cur.image_hash_dedup_distance)
    ids: set[str] = set()
    shards = _ShardWriter(ctx.work_dir / "accepted", cur.shard_size)
    for source in cur.sources:
        for item in load_source(source, max_decode_pixels=cur.max_decode_pixels):
            ledger.rows_in += 1
            if ledger.rows_in % PROGRESS_EVERY == 0:
                ctx.log(f"read {ledger.rows_in} rows, {len(shards.paths)} shards written")
            if isinstance(item, Quarantined):
                ledger.quarantine(item)
                continue
            if item.id in ids:
                row = json_safe(item.model_dump(exclude={"images"}))
                ledger.quarantine(Quarantined(item.source, _position(item), f"duplicate id: {item.id}", row))
                continue
            ids.add(item.id)
            sample = normalise(item)
            if reason := filter_reason(sample, cur):
                ledger.filter(reason)
            elif index is not None and (match := index.match(sample)) is not None:
                ledger.contaminated(sample.id, _position(sample), match)
            elif reason := dedup.check(sample):
                ledger.filter(reason)
            else:
                shards.add(sample)
        ctx.log(f"read {ledger.rows_in} rows so far (source {source.kind} {source.path or ''})")
    shards.flush()
    ledger.step("load, filter, decontaminate, dedup", sum(pq.read_metadata(p).num_rows for p in shards.paths))
    return shards.paths


def _opener(ctx: StageContext, model: ModelRef, gen: GenerationConfig) -> Callable[[], Generator]:
    def open_generator() -> Generator:
        model_dir = resolve_model(model.name_or_path, model.revision, ctx.cache_dir / "models", seed=model.seed)
        return make_generator(gen.backend, model_dir, device=ctx.device, batch_size=gen.batch_size, max_pixels=gen.max_pixels)

    return open_generator


def check_captions(ctx: StageContext, ledger: Ledger, shard_paths: list[Path]) -> list[Path]:
    """Pass 2: caption image samples (resumable), then quarantine samples whose caption fails its checks."""
    cfg = ctx.recipe.curation.captioning
    if not cfg.enabled:
        return shard_paths
    state = ctx.work_dir / "captions"
    caption_shards(shard_paths, state, cfg, _opener(ctx, cfg.model or ctx.recipe.base_model, cfg.generation),
                   seed=ctx.recipe.curation.seed, log=ctx.log)
    checked = _ShardWriter(ctx.work_dir / "captioned", ctx.recipe.curation.shard_size)
    for path in shard_paths:
        captions = results_of(state, path)
        for sample in read_pool(path):
            if sample.images:
                caption = captions[sample.id]
                if reason := check_caption(caption, sample, cfg):
                    row = {**json_safe(sample.model_dump(exclude={"images"})), "caption": caption}
                    ledger.quarantine(Quarantined(sample.source, _position(sample), reason, row), step="captioning")
                    continue
                sample = sample.model_copy(update={"caption": caption})
            checked.add(sample)
    checked.flush()
    ledger.step("captioning", sum(pq.read_metadata(p).num_rows for p in checked.paths))
    return checked.paths


def band(
    ctx: StageContext, ledger: Ledger, shard_paths: list[Path], open_policy: Callable[[], Generator] | None = None
) -> list[Path]:
    """Pass 3: pass rates (rollouts of `open_policy`'s generator, default the recipe's policy; resumable; or the
    dataset's column) and the band."""
    cfg, recipe = ctx.recipe.curation.difficulty, ctx.recipe
    if not cfg.enabled:
        return shard_paths
    state = ctx.work_dir / "pass_rates"
    if cfg.pass_rate_column is None:
        open_policy = open_policy or _opener(ctx, cfg.policy or recipe.base_model, cfg.generation)
        rollout_shards(shard_paths, state, cfg, open_policy, recipe.prompts, recipe.rewards,
                       seed=recipe.curation.seed, log=ctx.log)
    kept = _ShardWriter(ctx.work_dir / "banded", recipe.curation.shard_size)
    for path in shard_paths:
        rates = results_of(state, path)
        for sample in read_pool(path):
            rate = column_pass_rate(sample, cfg.pass_rate_column) if cfg.pass_rate_column else rates[sample.id]
            if rate is None:
                ledger.filter("no pass rate")
            elif not cfg.keeps(rate):
                ledger.filter("pass rate out of band")
            else:
                kept.add(sample.model_copy(update={"pass_rate": rate}))
    kept.flush()
    ledger.step("difficulty band", sum(pq.read_metadata(p).num_rows for p in kept.paths))
    return kept.paths


def write_pools(ctx: StageContext, shard_paths: list[Path]) -> tuple[dict[str, int], list[float]]:
    """Pass 4: decide pools and their row order from ids alone, then write them with memory bounded by a shard:
    rows go to buckets of consecutive pool positions first, and each bucket is sorted into place."""
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


def _check_quarantine(ctx: StageContext, ledger: Ledger) -> None:
    limit = ctx.recipe.curation.max_quarantine_fraction
    quarantined = sum(ledger.quarantined.values())
    if ledger.rows_in and quarantined / ledger.rows_in > limit:
        ledger.close()
        raise RuntimeError(
            f"{quarantined} of {ledger.rows_in} rows quarantined ({quarantined / ledger.rows_in:.1%}), more than "
            f"curation.max_quarantine_fraction = {limit:.1%}: see {ledger.quarantine_path} "
            f"(by reason: {dict(ledger.quarantined)})"
        )


def run(ctx: StageContext) -> dict[str, Any]:
    ledger = Ledger(ctx.work_dir / "quarantine.jsonl", ctx.work_dir / "decontamination.jsonl")
    shards = collect(ctx, ledger)
    ctx.log(f"{ledger.rows_in} rows in; {ledger.steps[-1]['remaining']} after filters, decontamination and dedup")
    _check_quarantine(ctx, ledger)  # fail before spending GPU time on a source that is mostly broken
    shards = band(ctx, ledger, check_captions(ctx, ledger, shards))
    pools, rates = write_pools(ctx, shards)
    _check_quarantine(ctx, ledger)
    ledger.close()
    report = ledger.report(kept=ledger.steps[-1]["remaining"], pools=pools, rates=rates)
    (ctx.out_dir / "report.json").write_text(json.dumps(report, indent=2))
    for name in ("quarantine.jsonl", "decontamination.jsonl"):
        shutil.copyfile(ctx.work_dir / name, ctx.out_dir / name)
    ctx.log(f"pools: {pools}; filtered {report['filtered']}; quarantined {report['quarantined']}")
    return {k: report[k] for k in ("rows_in", "kept", "filtered", "quarantined", "pools")}

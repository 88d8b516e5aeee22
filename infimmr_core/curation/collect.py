"""Part 1 of curation, `curate-collect`: read every source, quarantine unreadable rows, normalise, filter,
decontaminate and dedup, and write the accepted samples as shards of `curation.shard_size` (the unit of the
expensive work that follows, one cached task each). Dedup and decontamination see every row, so this part is one
task; it streams, holding one shard of samples at a time (plus the ids and hashes dedup needs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from infimmr_core.config import CurationConfig
from infimmr_core.context import StageContext
from infimmr_core.curation.answers import classify_answer, normalise_answer
from infimmr_core.curation.decontam import ContaminationIndex
from infimmr_core.curation.dedup import Deduplicator
from infimmr_core.curation.filters import filter_reason
from infimmr_core.curation.ledger import Ledger, position
from infimmr_core.curation.shards import shard_name
from infimmr_core.data.checks import preview
from infimmr_core.data.pool_io import write_pool
from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined, load_source
from infimmr_core.layout import SHARD_DIR

PROGRESS_EVERY = 10_000  # rows between progress lines while reading sources


def normalise(sample: Sample) -> Sample:
    answer = normalise_answer(sample.answer)
    problem = sample.problem.strip()
    answer_type = sample.answer_type
    if "answer_type" not in sample.model_fields_set:  # the source's own typing wins over our guess
        answer_type = classify_answer(problem, answer, sample.choices)
    return sample.model_copy(update={"problem": problem, "answer": answer, "answer_type": answer_type})


class ShardWriter:
    """Samples in, Parquet shards of `size` rows out, named shard-00000.parquet, shard-00001.parquet, ..."""

    def __init__(self, folder: Path, size: int):
        if folder.exists():
            shutil.rmtree(folder)
        self.folder, self.size, self.buffer, self.paths = folder, size, [], []
        self.rows = 0

    def add(self, sample: Sample) -> None:
        self.buffer.append(sample)
        if len(self.buffer) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            path = self.folder / f"{shard_name(len(self.paths))}.parquet"
            write_pool(self.buffer, path)
            self.paths.append(path)
            self.rows += len(self.buffer)
            self.buffer = []


def collect(ctx: StageContext, ledger: Ledger, folder: Path) -> list[Path]:
    """Read, check and thin out every source into shards under `folder`; every row is counted in `ledger`."""
    cur = ctx.recipe.curation
    index = ContaminationIndex(cur.decontamination) if cur.decontamination.benchmarks else None
    if index is not None:
        ctx.log(f"decontaminating against {len(index)} benchmark items")
    dedup = Deduplicator(cur.image_hash_dedup_distance)
    ids: set[str] = set()
    shards = ShardWriter(folder, cur.shard_size)
    for source in cur.sources:
        for item in load_source(source, max_decode_pixels=cur.max_decode_pixels, limits=cur.limits):
            ledger.rows_in += 1
            if ledger.rows_in % PROGRESS_EVERY == 0:
                ctx.log(f"read {ledger.rows_in} rows, {len(shards.paths)} shards written")
            if isinstance(item, Quarantined):
                ledger.quarantine(item)
                continue
            if item.id in ids:
                row = preview(item.model_dump(exclude={"images"}))
                ledger.quarantine(Quarantined(item.source, position(item), f"duplicate id: {_shown(item.id)}", row))
                continue
            ids.add(item.id)
            try:
                kept = _sort(item, cur, index, dedup, ledger)
            except Exception as err:  # noqa: BLE001 - one row's failure (a parser's recursion, ...) never ends the stage
                reason = f"row could not be processed: {type(err).__name__}: {str(err)[:200]}"
                ledger.quarantine(Quarantined(item.source, position(item), reason,
                                              preview(item.model_dump(exclude={"images"}))))
                continue
            if kept is not None:
                shards.add(kept)
        ctx.log(f"read {ledger.rows_in} rows so far (source {source.kind} {source.path or ''})")
    shards.flush()
    ledger.step("load, filter, decontaminate, dedup", shards.rows)
    return shards.paths


def _sort(item: Sample, cur: CurationConfig, index: ContaminationIndex | None, dedup: Deduplicator,
          ledger: Ledger) -> Sample | None:
    """One valid sample, normalised: None when it is filtered or removed as contaminated or a duplicate (counted in
    the ledger), else the sample to keep."""
    sample = normalise(item)
    if reason := filter_reason(sample, cur):
        ledger.filter(reason)
    elif index is not None and (match := index.match(sample)) is not None:
        ledger.contaminated(sample.id, position(sample), match)
    elif reason := dedup.check(sample):
        ledger.filter(reason)
    else:
        return sample
    return None


def _shown(text: str) -> str:
    return text if len(text) <= 200 else f"{text[:200]}..."


def check_quarantine(ctx: StageContext, ledger: Ledger) -> None:
    """Fail when too much was quarantined, pointing at the records; called before any GPU time is spent, and again
    over the whole stage."""
    limit = ctx.recipe.curation.max_quarantine_fraction
    quarantined = sum(ledger.quarantined.values())
    if ledger.rows_in and quarantined / ledger.rows_in > limit:
        ledger.close()
        raise RuntimeError(
            f"{quarantined} of {ledger.rows_in} rows quarantined ({quarantined / ledger.rows_in:.1%}), more than "
            f"curation.max_quarantine_fraction = {limit:.1%}: see {ledger.quarantine_path} "
            f"(by reason: {dict(ledger.quarantined)})"
        )


def collect_part(ctx: StageContext, folder: Path) -> list[Path]:
    """The whole part: shards, quarantine and decontamination records and the counts, all under `folder`."""
    ledger = Ledger(folder)
    shards = collect(ctx, ledger, folder / SHARD_DIR)
    ctx.log(f"{ledger.rows_in} rows in; {ledger.steps[-1]['remaining']} accepted in {len(shards)} shards")
    check_quarantine(ctx, ledger)  # fail before any GPU time goes into a source that is mostly broken
    ledger.save(shards=len(shards))
    return shards


def run(ctx: StageContext) -> dict[str, int]:
    shards = collect_part(ctx, ctx.out_dir)
    return {"shards": len(shards)}

"""The curate stage (`run(ctx)`) and its parts: answer typing, filters, dedup, decontamination, captioning,
difficulty, pools, the ledger that accounts for every row, and resumable shards."""

from infimmr_core.curation.stage import run

__all__ = ["run"]

"""Prefect's cache key for a stage is the store's artifact key (plus the store itself), so the Prefect UI shows a
stage as Cached exactly when the store holds its artifact. The store stays the source of truth: a lost Prefect
database costs nothing, and a Prefect cache record whose artifact is gone is refreshed (see `call_stage`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import CachePolicy

from infimmr_core.keys import sha256_text
from infimmr_core.stages import StagePlan


@dataclass
class StageCache(CachePolicy):
    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        # The caller planned the stage (computed its key) once; Prefect's record is keyed by that same key.
        plan: StagePlan = inputs["plan"]
        return record_name(inputs["recipe"].store.uri, plan.stage, plan.key)


def record_name(store_uri: str, stage: str, key: str) -> str:
    """The Prefect cache key (and result record name) of a stage's artifact in one store: the same artifact key in two
    stores is two different results (a ref points into one store). A record is only trusted under this name."""
    return f"infimmr-{stage}-{sha256_text(store_uri + '|' + key)[:40]}"

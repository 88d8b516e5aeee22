"""Prefect's cache key for a stage is the store's artifact key (plus the store itself), so the Prefect UI shows a
stage as Cached exactly when the store holds its artifact. The store stays the source of truth: a lost Prefect
database costs nothing, and a Prefect cache record whose artifact is gone is refreshed (see `call_stage`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import CachePolicy

from infimmr_core.keys import sha256_text
from infimmr_core.stages import stage_key


@dataclass
class StageCache(CachePolicy):
    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        stage = task_ctx.task.name
        recipe, upstream = inputs["recipe"], inputs.get("upstream") or {}
        key = stage_key(stage, recipe, {name: ref.digest for name, ref in upstream.items()})
        # The same artifact key in two stores is two different results (a ref points into one store).
        return f"infimmr-{stage}-{sha256_text(recipe.store.uri + '|' + key)[:40]}"

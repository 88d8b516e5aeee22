"""Which directory holds "the base model" for a stage: the `base` stage's artifact when the recipe warms its base
model up (`recipe.warmup`), otherwise `recipe.base_model` itself (tiny, a local directory or a Hub id)."""

from __future__ import annotations

from pathlib import Path

from infimmr_core.config import ModelRef
from infimmr_core.context import StageContext
from infimmr_core.layout import BASE_STAGE, MODEL_DIR
from infimmr_core.models import resolve_model


def model_dir(ref: ModelRef, cache_dir: Path) -> Path:
    """A model named in the recipe, as a local directory (built, found or downloaded into `cache_dir`/models)."""
    tiny = ref.tiny.model_dump() if ref.tiny is not None else None
    return resolve_model(ref.name_or_path, ref.revision, cache_dir / "models", seed=ref.seed, tiny=tiny)


def base_model_dir(ctx: StageContext) -> Path:
    if BASE_STAGE in ctx.inputs:
        return ctx.inputs[BASE_STAGE] / MODEL_DIR
    return model_dir(ctx.recipe.base_model, ctx.cache_dir)


def model_or_base(ctx: StageContext, ref: ModelRef | None) -> Path:
    """`ref` as a directory, or the base model when the recipe leaves it unset (a captioner, a rollout policy)."""
    return base_model_dir(ctx) if ref is None else model_dir(ref, ctx.cache_dir)

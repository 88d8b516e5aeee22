"""The flows: `infimmr-pipeline` runs the whole DAG; `infimmr-stage` runs one stage whose inputs are stored.
Composition only: the graph comes from infimmr_core.stages, the work from the stage tasks."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from infimmr_core.config import Recipe
from infimmr_core.stages import (
    SHARD, ArtifactRef, StageName, curate_from_parts, downstream_of, pipeline_stages, resolve_upstream, upstream_of,
)
from infimmr_core.store import ArtifactStore, store_from_config
from infimmr.flows.parameters import Override, RecipeChoice, record_recipe, resolve_recipe
from infimmr.flows.summary import run_summary, stage_summary
from infimmr.tasks.stages import GPU_STAGES, StageOutcome, call_stage, map_stage


def _summary(recipe: Recipe, outcomes: dict[str, StageOutcome]) -> dict[str, Any]:
    return run_summary(recipe, str(flow_run.id), {
        name: stage_summary(o.state, o.prefect_state, o.ref, o.seconds, o.parts) for name, o in outcomes.items()})


def run_curate(recipe: Recipe, upstream: dict[str, ArtifactRef], *, force: bool, store: ArtifactStore) -> StageOutcome:
    """The curate stage from its parts: collect, then every shard (a task each, `runtime.parallel_shards` at a time),
    then the merge. A stored curate artifact answers at once; otherwise each part is reused when stored, so a rerun
    after a failure redoes only what failed."""
    started = time.perf_counter()
    merged, parts = curate_from_parts(
        store, recipe, force=force,
        run_part=lambda stage, upstream: call_stage(stage, recipe, upstream, force=force, store=store),
        run_shards=lambda upstreams: map_stage(SHARD, recipe, upstreams, force=force, store=store,
                                               width=recipe.runtime.parallel_shards),
        upstream=upstream,
    )
    if merged is None:  # stored: one cached task, so the UI shows the stage Cached
        return call_stage("curate", recipe, upstream, force=False, store=store)
    return merged.model_copy(update={"parts": {name: o.state for name, o in parts.items()},
                                     "seconds": round(time.perf_counter() - started, 3)})


def run_stage(stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef], *, force: bool, store: ArtifactStore,
              remote: bool = False) -> StageOutcome:
    if stage == "curate":
        return run_curate(recipe, upstream, force=force, store=store)
    return call_stage(stage, recipe, upstream, force=force, store=store, remote=remote)


@flow(name="infimmr-pipeline", description="Curate -> GRPO phase 1 -> 2 -> 3 -> evaluate -> publish, every stage cached by key.")
def infimmr_pipeline(
    recipe_name: RecipeChoice = "smoke",
    overrides: tuple[Override, ...] = (),
    force: tuple[StageName, ...] = (),
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline; finished stages come back Cached.

    Args:
        recipe_name: A built-in recipe, or a YAML recipe file: a path where the flow runs, or an s3:// URI.
        overrides: Settings to change, each `KEY=VALUE` as `infimmr run --set` takes them, e.g.
            `phases.2.learning_rate=1e-6` or `curation.sources.0.path=s3://bucket/snapshot.jsonl`. Applied in order.
        force: Stages to recompute, with everything downstream of them, even when stored.
        recipe: Advanced: a whole recipe, used instead of `recipe_name` (the overrides still apply).
    """
    recipe = resolve_recipe(recipe_name, overrides, recipe)
    record_recipe(recipe)
    forced = downstream_of(force or [])
    store = store_from_config(recipe.store)
    refs: dict[str, ArtifactRef] = {}
    outcomes: dict[str, StageOutcome] = {}
    for stage in pipeline_stages(recipe):
        upstream = {name: refs[name] for name in upstream_of(stage, recipe)}
        remote = recipe.runtime.gpu_stage_deployment is not None and stage in GPU_STAGES
        outcomes[stage] = run_stage(stage, recipe, upstream, force=stage in forced, store=store, remote=remote)
        refs[stage] = outcomes[stage].ref
    return _summary(recipe, outcomes)


@flow(name="infimmr-stage", description="Run one stage; its upstream artifacts must already be in the store.")
def infimmr_stage(
    stage: StageName,
    recipe_name: RecipeChoice = "smoke",
    overrides: tuple[Override, ...] = (),
    force: bool = False,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Run one stage; the next pipeline run reuses what it stores.

    Args:
        stage: The stage to run; the stages it reads must already be in the store.
        recipe_name: A built-in recipe, or a YAML recipe file: a path where the flow runs, or an s3:// URI.
        overrides: Settings to change, each `KEY=VALUE` as `infimmr stage --set` takes them, e.g.
            `phases.2.learning_rate=1e-6`. Applied in order.
        force: Recompute the stage even when it is stored.
        recipe: Advanced: a whole recipe, used instead of `recipe_name` (the overrides still apply).
    """
    recipe = resolve_recipe(recipe_name, overrides, recipe)
    record_recipe(recipe)
    store = store_from_config(recipe.store)
    upstream = resolve_upstream(store, stage, recipe)
    return _summary(recipe, {stage: run_stage(stage, recipe, upstream, force=force, store=store)})

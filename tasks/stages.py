"""The stage tasks. Every stage is the same shape: compute its key, return the stored artifact when its manifest
exists, otherwise run the stage in a child process that writes the artifact. So one factory builds them all and the
table below says what differs (tags for work-pool routing and concurrency limits)."""

from __future__ import annotations

import time

from prefect import Task, get_run_logger, task
from pydantic import BaseModel

from infimmr_core.config import Recipe
from infimmr_core.keys import key_of
from infimmr_core.runner import run_stage_process
from infimmr_core.stages import STAGES, ArtifactRef, key_inputs, stored_ref
from infimmr_core.store import ArtifactStore, store_from_config
from infimmr.tasks.cache import StageCache

TAGS = {
    "curate": ["infimmr", "gpu-optional"],
    "phase1": ["infimmr", "gpu"],
    "phase2": ["infimmr", "gpu"],
    "phase3": ["infimmr", "gpu"],
    "evaluate": ["infimmr", "gpu-optional"],
    "publish": ["infimmr"],
}


def execute_stage(stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef], force: bool) -> ArtifactRef:
    logger = get_run_logger()
    store = store_from_config(recipe.store)
    inputs = key_inputs(stage, recipe, {name: ref.digest for name, ref in upstream.items()})
    key = key_of(inputs)
    if not force and (manifest := store.manifest(stage, key)):
        logger.info("%s: already in the store at %s", stage, store.artifact_uri(stage, key))
        return ArtifactRef.from_manifest(store, manifest, reused=True)
    logger.info("%s: running (key %s)", stage, key)
    manifest = run_stage_process(stage, recipe, upstream, key, inputs, on_line=logger.info)
    return ArtifactRef.from_manifest(store, manifest, reused=False)


def _stage_task(stage: str) -> Task:
    def run(recipe: Recipe, upstream: dict[str, ArtifactRef], force: bool = False) -> ArtifactRef:
        return execute_stage(stage, recipe, upstream, force)

    run.__name__ = run.__qualname__ = stage
    return task(
        run,
        name=stage,
        cache_policy=StageCache(),
        persist_result=True,
        result_serializer="json",
        tags=TAGS[stage],
    )


STAGE_TASKS: dict[str, Task] = {stage: _stage_task(stage) for stage in STAGES}


class StageOutcome(BaseModel):
    state: str  # "completed" | "cached"
    ref: ArtifactRef
    seconds: float


def call_stage(
    stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef], *, force: bool, store: ArtifactStore
) -> StageOutcome:
    """Run one stage task from inside a flow and say whether it computed or reused its artifact."""
    stage_task = STAGE_TASKS[stage]
    if force or stored_ref(store, stage, recipe, upstream) is None:
        # Not in the store (or forced): never trust a Prefect cache record for it.
        stage_task = stage_task.with_options(refresh_cache=True)
    started = time.perf_counter()
    state = stage_task(recipe=recipe, upstream=upstream, force=force, return_state=True)
    ref: ArtifactRef = state.result()
    cached = state.name == "Cached" or ref.reused
    return StageOutcome(state="cached" if cached else "completed", ref=ref, seconds=round(time.perf_counter() - started, 3))

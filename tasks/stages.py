"""The stage tasks. Every stage is the same shape: compute its key, return the stored artifact when its manifest
exists, otherwise run the stage in a child process that writes the artifact. So one factory builds them all and the
table below says what differs (tags for work-pool routing and concurrency limits)."""

from __future__ import annotations

import time
from contextlib import nullcontext

from prefect import Task, get_run_logger, task
from pydantic import BaseModel

from infimmr_core.config import Recipe
from infimmr_core.keys import key_of
from infimmr_core.runner import StageFailed, run_stage_process
from infimmr_core.stages import STAGES, ArtifactRef, key_inputs, stored_ref
from infimmr_core.store import ArtifactStore, Manifest, store_from_config
from infimmr.tasks.artifacts import TrainingProgress, stage_artifacts
from infimmr.tasks.cache import StageCache
from infimmr.tasks.secrets import hub_token
from infimmr.tasks.results import result_storage

TAGS = {
    "curate": ["infimmr", "gpu-optional"],
    "phase1": ["infimmr", "gpu"],
    "phase2": ["infimmr", "gpu"],
    "phase3": ["infimmr", "gpu"],
    "evaluate": ["infimmr", "gpu-optional"],
    "publish": ["infimmr"],
}


GPU_STAGES = tuple(stage for stage, tags in TAGS.items() if "gpu" in tags)


def stage_deployment_name(stage: str, template: str = "infimmr-stage/stage-{stage}") -> str:
    """The deployment that runs only `stage` (see infimmr.flows.deploy and deployments/prefect.yaml)."""
    return template.format(stage=stage)


def _run_remote(stage: str, recipe: Recipe, force: bool, store: ArtifactStore, key: str) -> Manifest:
    """Run the stage through its deployment (e.g. on a GPU work pool) and pick its artifact up from the shared store."""
    from prefect.deployments import run_deployment

    params = {"stage": stage, "recipe": recipe.model_dump(mode="json", by_alias=True), "force": force}
    name = stage_deployment_name(stage, recipe.runtime.gpu_stage_deployment)
    flow_run = run_deployment(name, parameters=params, as_subflow=True)
    manifest = store.manifest(stage, key)
    if flow_run.state is None or not flow_run.state.is_completed() or manifest is None:
        state = flow_run.state.name if flow_run.state else "unknown"
        raise StageFailed(f"stage {stage}: remote run {flow_run.id} ended {state} without storing key {key}")
    return manifest


def _total_steps(stage: str, recipe: Recipe) -> int | None:
    if stage not in GPU_STAGES:
        return None
    cfg = recipe.phases[int(stage.removeprefix("phase"))]
    return cfg.max_steps // cfg.logging_steps if cfg.max_steps > 0 else None


def execute_stage(stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef], force: bool, remote: bool) -> ArtifactRef:
    logger = get_run_logger()
    store = store_from_config(recipe.store)
    inputs = key_inputs(stage, recipe, {name: ref.digest for name, ref in upstream.items()})
    key = key_of(inputs)
    if not force and (manifest := store.manifest(stage, key)):
        logger.info("%s: already in the store at %s", stage, store.artifact_uri(stage, key))
        return ArtifactRef.from_manifest(store, manifest, reused=True)
    if remote:
        logger.info("%s: running through deployment %s (key %s)", stage, recipe.runtime.gpu_stage_deployment, key)
        manifest = _run_remote(stage, recipe, force, store, key)
    else:
        logger.info("%s: running (key %s)", stage, key)
        total = _total_steps(stage, recipe)
        progress = TrainingProgress(stage, total) if total else None

        def on_line(line: str) -> None:  # the child's output goes to this task's log, as it happens
            logger.info(line)
            if progress:
                progress.on_line(line)

        with hub_token(recipe.publish) if stage == "publish" else nullcontext():
            manifest = run_stage_process(stage, recipe, upstream, key, inputs, on_line=on_line)
    try:
        stage_artifacts(store, stage, key, manifest.metrics)
    except Exception as err:  # the UI's tables are a view of the artifact: never fail a finished stage over them
        logger.warning("%s: could not render UI artifacts: %s", stage, err)
    return ArtifactRef.from_manifest(store, manifest, reused=False)


def _stage_task(stage: str) -> Task:
    def run(recipe: Recipe, upstream: dict[str, ArtifactRef], force: bool = False, remote: bool = False) -> ArtifactRef:
        return execute_stage(stage, recipe, upstream, force, remote)

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
    prefect_state: str  # the task run's state name as the UI shows it: Cached when Prefect's cache record answered
    ref: ArtifactRef
    seconds: float


def call_stage(
    stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef], *, force: bool, store: ArtifactStore,
    remote: bool = False,
) -> StageOutcome:
    """Run one stage task from inside a flow and say whether it computed or reused its artifact."""
    # Results and cache records go to the store, so another machine or a fresh Prefect database gets Cached too.
    stage_task = STAGE_TASKS[stage].with_options(result_storage=result_storage(recipe.store))
    if force or stored_ref(store, stage, recipe, upstream) is None:
        # Not in the store (or forced): never trust a Prefect cache record for it.
        stage_task = stage_task.with_options(refresh_cache=True)
    started = time.perf_counter()
    state = stage_task(recipe=recipe, upstream=upstream, force=force, remote=remote, return_state=True)
    ref: ArtifactRef = state.result()
    cached = state.name == "Cached" or ref.reused
    return StageOutcome(state="cached" if cached else "completed", prefect_state=state.name, ref=ref,
                        seconds=round(time.perf_counter() - started, 3))

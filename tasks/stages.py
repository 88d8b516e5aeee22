"""The stage tasks. Every stage is the same shape: compute its key, return the stored artifact when its manifest
exists, otherwise run the stage in a child process that writes the artifact. So one factory builds them all and the
table below says what differs (tags for work-pool routing and concurrency limits)."""

from __future__ import annotations

import time
from contextlib import nullcontext

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.states import State
from pydantic import BaseModel

from infimmr_core.config import Recipe
from infimmr_core.runner import StageFailed, run_stage_process
from infimmr_core.stages import COLLECT, SHARD, STAGES, ArtifactRef, StagePlan, leads_its_key, plan_stage, produce
from infimmr_core.store import ArtifactStore, Manifest, store_from_config
from infimmr.tasks.artifacts import TrainingProgress, stage_artifacts
from infimmr.tasks.cache import StageCache
from infimmr.tasks.secrets import hub_token
from infimmr.tasks.results import result_storage

TAGS = {
    "base": ["infimmr", "gpu-optional"],
    COLLECT: ["infimmr"],
    SHARD: ["infimmr", "gpu-optional"],
    "curate": ["infimmr"],
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


def _run_remote(plan: StagePlan, recipe: Recipe, force: bool, store: ArtifactStore) -> Manifest:
    """Run the stage through its deployment (e.g. on a GPU work pool) and pick its artifact up from the shared store."""
    from prefect.deployments import run_deployment

    stage, key = plan.stage, plan.key
    params = {"stage": stage, "recipe": recipe.model_dump(mode="json", by_alias=True), "force": force}
    name = stage_deployment_name(stage, recipe.runtime.gpu_stage_deployment)
    timeout = remote_timeout_seconds(recipe)
    # Without a timeout run_deployment polls forever: no worker on the pool, or a lost one, hangs the pipeline.
    flow_run = run_deployment(name, parameters=params, as_subflow=True, timeout=timeout)
    state = flow_run.state.name if flow_run.state else "unknown"
    if flow_run.state is None or not flow_run.state.is_final():
        raise StageFailed(
            f"stage {stage}: deployment {name!r} did not finish flow run {flow_run.id} within {timeout} s "
            f"(runtime.remote_stage_timeout_seconds); it is still {state}: is a worker polling its work pool? "
            f"Cancel it with `prefect flow-run cancel {flow_run.id}`, or let it finish: the next run reuses key {key}")
    manifest = store.manifest(stage, key)
    if not flow_run.state.is_completed() or manifest is None:
        raise StageFailed(f"stage {stage}: deployment {name!r} flow run {flow_run.id} ended {state} without storing "
                          f"key {key}")
    return manifest


def remote_timeout_seconds(recipe: Recipe) -> int:
    """How long a remote stage run may take, from being scheduled to its end (see runtime.remote_stage_timeout_seconds):
    by default the stage's own timeout plus an hour for a worker to pick it up and start its infrastructure."""
    runtime = recipe.runtime
    return runtime.remote_stage_timeout_seconds or runtime.stage_timeout_seconds + 3600


def _total_steps(stage: str, recipe: Recipe) -> int | None:
    if stage not in GPU_STAGES:
        return None
    cfg = recipe.phases[int(stage.removeprefix("phase"))]
    return cfg.max_steps // cfg.logging_steps if cfg.max_steps > 0 else None


def execute_stage(plan: StagePlan, recipe: Recipe, upstream: dict[str, ArtifactRef], force: bool, remote: bool) -> ArtifactRef:
    logger = get_run_logger()
    store = store_from_config(recipe.store)
    stage, key = plan.stage, plan.key

    def run(plan: StagePlan) -> Manifest:
        if remote:
            logger.info("%s: running through deployment %s (key %s)", stage, recipe.runtime.gpu_stage_deployment, key)
            manifest = _run_remote(plan, recipe, force, store)
        else:
            logger.info("%s: running (key %s)", stage, key)
            total = _total_steps(stage, recipe)
            progress = TrainingProgress(stage, total) if total else None

            def on_line(line: str) -> None:  # the child's output goes to this task's log, as it happens
                logger.info(line)
                if progress and (bar := progress.on_line(line)):
                    logger.info(bar)

            with hub_token(recipe.publish) if stage == "publish" else nullcontext():
                manifest = run_stage_process(plan, recipe, upstream, on_line=on_line)
        try:
            stage_artifacts(store, stage, key, manifest.metrics)
        except Exception as err:  # the UI's tables are a view of the artifact: never fail a finished stage over them
            logger.warning("%s: could not render UI artifacts: %s", stage, err)
        return manifest

    # A remote stage run goes through produce itself, and holds the key's lease there.
    ref = produce(store, plan, run, force=force, single_flight=not remote and leads_its_key(stage, recipe),
                  lease_seconds=recipe.store.lease_seconds)
    if ref.reused:
        logger.info("%s: already in the store at %s", stage, ref.uri)
    return ref


def _stage_task(stage: str) -> Task:
    def run(
        plan: StagePlan, recipe: Recipe, upstream: dict[str, ArtifactRef], force: bool = False, remote: bool = False,
    ) -> ArtifactRef:
        return execute_stage(plan, recipe, upstream, force, remote)

    run.__name__ = run.__qualname__ = stage
    return task(
        run,
        name=stage,
        cache_policy=StageCache(),
        persist_result=True,
        result_serializer="json",  # tags are given per run: see stage_tags
    )


STAGE_TASKS: dict[str, Task] = {stage: _stage_task(stage) for stage in (COLLECT, SHARD, *STAGES)}


class StageOutcome(BaseModel):
    state: str  # "completed" | "cached"
    prefect_state: str  # the task run's state name as the UI shows it: Cached when Prefect's cache record answered
    ref: ArtifactRef
    seconds: float
    parts: dict[str, str] = {}  # a stage built from parts (curate): each part's state, "completed" or "cached"


def stage_tags(stage: str) -> list[str]:
    """A stage task's tags on a Prefect server the operator runs (PREFECT_API_URL): UI filters, and the tag concurrency
    limits operators set there (e.g. one `gpu` stage at a time across runs). A run on the CLI's temporary server, which
    lives for that run alone, carries none: before every tagged task Prefect asks the server for the tags' limits, and
    the temporary server took about 2 s to answer for each task that followed a task longer than Prefect's 5 s memory
    of "no limits" (nearly all of them: 10-13 s of a 70 s cold smoke run, measured side by side)."""
    from prefect.settings import PREFECT_API_URL

    return TAGS[stage] if PREFECT_API_URL.value() else []


def _prepared(plan: StagePlan, recipe: Recipe, force: bool, store: ArtifactStore) -> Task:
    # Results and cache records go to the store, so another machine or a fresh Prefect database gets Cached too.
    stage_task = STAGE_TASKS[plan.stage].with_options(result_storage=result_storage(recipe.store),
                                                      tags=stage_tags(plan.stage) or None)
    if force or store.manifest(plan.stage, plan.key) is None:
        # Not in the store (or forced): never trust a Prefect cache record for it.
        stage_task = stage_task.with_options(refresh_cache=True)
    return stage_task


def _outcome(state: State, started: float) -> StageOutcome:
    ref: ArtifactRef = state.result()
    cached = state.name == "Cached" or ref.reused
    return StageOutcome(state="cached" if cached else "completed", prefect_state=state.name, ref=ref,
                        seconds=round(time.perf_counter() - started, 3))


def call_stage(
    stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef], *, force: bool, store: ArtifactStore,
    remote: bool = False,
) -> StageOutcome:
    """Run one stage task from inside a flow and say whether it computed or reused its artifact."""
    started = time.perf_counter()
    plan = plan_stage(stage, recipe, upstream)
    state = _prepared(plan, recipe, force, store)(
        plan=plan, recipe=recipe, upstream=upstream, force=force, remote=remote, return_state=True)
    return _outcome(state, started)


class StagesFailed(RuntimeError):
    pass


def map_stage(
    stage: str, recipe: Recipe, upstreams: dict[str, dict[str, ArtifactRef]], *, force: bool, store: ArtifactStore,
    width: int,
) -> dict[str, StageOutcome]:
    """Run `stage` once per named upstream, as task runs of that name, at most `width` at a time (each holds a model in
    its own process). Every run is attempted even when one fails, so a rerun redoes only the failed ones; the
    failures are raised together at the end. A progress artifact counts the finished runs."""
    total, pending = len(upstreams), list(upstreams.items())
    progress = create_progress_artifact(progress=0.0, key=f"{stage}-progress", description=f"{stage}: runs finished (%)")
    running: dict[PrefectFuture, tuple[str, float]] = {}
    outcomes: dict[str, StageOutcome] = {}
    failed: dict[str, str] = {}

    def finish(future: PrefectFuture) -> None:
        name, started = running.pop(future)
        future.wait()  # sets the future's final state
        try:
            outcomes[name] = _outcome(future.state, started)
        except Exception as err:  # noqa: BLE001 - collected and raised below, with every other failure
            failed[name] = str(err).splitlines()[0]
        update_progress_artifact(progress, progress=100.0 * (len(outcomes) + len(failed)) / max(total, 1))

    while pending or running:
        while pending and len(running) < width:
            name, upstream = pending.pop(0)
            plan = plan_stage(stage, recipe, upstream)
            future = _prepared(plan, recipe, force, store).with_options(task_run_name=name).submit(
                plan=plan, recipe=recipe, upstream=upstream, force=force, remote=False)
            running[future] = (name, time.perf_counter())
        finish(next(as_completed(list(running))))
    if failed:
        lines = "\n".join(f"  {name}: {why}" for name, why in sorted(failed.items()))
        raise StagesFailed(f"{len(failed)} of {total} {stage} runs failed (the other {len(outcomes)} are stored and "
                           f"will be reused):\n{lines}")
    return {name: outcomes[name] for name in upstreams}

"""The deployments, defined once and used both ways users deploy: `serve` on a single (GPU) box, or registered to
work pools for process/docker/kubernetes workers (`infimmr deploy`, or `prefect deploy --all` with
deployments/prefect.yaml, which declares the same names).

- `infimmr-pipeline/pipeline`: the whole DAG; the run form is the recipe (the pydantic model, so the server rejects
  invalid values before a run exists). A cron schedule retrains with the recipe (and data snapshot) it was given.
- `infimmr-stage/stage-<name>`: one stage by hand; a later pipeline run reuses its artifact.
Training runs hold a GPU, so GPU deployments allow one run at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from infimmr_core.config import Recipe
from infimmr_core.stages import STAGES
from infimmr.flows.pipeline import infimmr_pipeline, infimmr_stage
from infimmr.tasks.stages import GPU_STAGES

SCHEDULE_SLUG = "retrain"


@dataclass
class DeployOptions:
    cpu_pool: str = "infimmr-cpu"
    gpu_pool: str = "infimmr-gpu"
    cron: str | None = "0 3 * * 0"  # weekly, Sunday 03:00
    timezone: str = "UTC"
    schedule_recipe: Recipe | None = None  # the recipe (with its data snapshot paths) the schedule retrains with
    gpu_concurrency: int = 1


def _schedules(opts: DeployOptions) -> list[Any]:
    if not opts.cron or opts.schedule_recipe is None:
        return []
    # Schedule parameters are the whole recipe: a new data snapshot is a new source path in it, hence a new curate key
    # and everything downstream recomputed; the same snapshot comes back Cached.
    recipe = opts.schedule_recipe.model_dump(mode="json", by_alias=True)
    return [Cron(opts.cron, timezone=opts.timezone, parameters={"recipe": recipe}, slug=SCHEDULE_SLUG)]


def build_deployments(opts: DeployOptions) -> list[tuple[RunnerDeployment, str]]:
    """Every deployment with the work pool it belongs to (ignored by `serve`)."""
    common = {"entrypoint_type": EntrypointType.MODULE_PATH, "tags": ["infimmr"]}
    deployments = [(
        infimmr_pipeline.to_deployment(
            name="pipeline", description="The whole DAG; the run form is the recipe. Finished stages come back Cached.",
            schedules=_schedules(opts), concurrency_limit=opts.gpu_concurrency, **common,
        ),
        opts.gpu_pool,
    )]
    for stage in STAGES:
        gpu = stage in GPU_STAGES
        deployments.append((
            infimmr_stage.to_deployment(
                name=f"stage-{stage}", description=f"Run only the {stage} stage; its inputs must be in the store.",
                parameters={"stage": stage}, concurrency_limit=opts.gpu_concurrency if gpu else None, **common,
            ),
            opts.gpu_pool if gpu else opts.cpu_pool,
        ))
    return deployments


def register(opts: DeployOptions) -> list[str]:
    """Register every deployment with the API (for workers of the pools), returning the full names."""
    from infimmr.flows.server import ensure_work_pool

    names = []
    for deployment, pool in build_deployments(opts):
        ensure_work_pool(pool)
        deployment.apply(work_pool_name=pool)
        names.append(deployment.full_name)
    return names


def serve_all(opts: DeployOptions) -> None:
    """Run the deployments from this process until interrupted (a single box: no work pool, no worker)."""
    from prefect import serve

    from infimmr.flows.server import HEARTBEAT_SECONDS

    # Served runs beat, so the server's crash automation can tell a lost box from a long training phase.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    serve(*(deployment for deployment, _ in build_deployments(opts)))

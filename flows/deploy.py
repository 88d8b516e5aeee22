"""The deployments, defined once and used both ways users deploy: `serve` on a single (GPU) box, or registered to
work pools for process/docker/kubernetes workers (`infimmr deploy`, or `prefect deploy --all` with
deployments/prefect.yaml, which declares the same names).

- `infimmr-pipeline/pipeline`: the whole DAG; the run form is a recipe by name, `KEY=VALUE` overrides, `force`, and
  (advanced) a whole recipe. A cron schedule, only when asked for, retrains with the recipe and overrides it was given.
- `infimmr-stage/stage-<name>`: one stage by hand, with the same form; a later pipeline run reuses its artifact.
Training runs hold a GPU, so GPU deployments allow one run at a time.

The server checks every run's parameters against the deployment's schema before the run exists: a value of the
wrong type, an unknown override key and, since the schema is closed here, an unknown parameter are refused (409).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.utilities.callables import ParameterSchema
from pydantic import ConfigDict

from infimmr_core.recipes import builtin_recipes, load_recipe
from infimmr_core.stages import STAGES
from infimmr.flows.pipeline import infimmr_pipeline, infimmr_stage
from infimmr.tasks.stages import GPU_STAGES

SCHEDULE_SLUG = "retrain"
PIPELINE = "pipeline"  # the pipeline deployment's name


@dataclass
class ScheduledRecipe:
    """What a schedule retrains with: a recipe (built-in name or file) and overrides, e.g. the data snapshot's path."""

    recipe: str
    overrides: list[str] = field(default_factory=list)

    def parameters(self) -> dict[str, Any]:
        """The runs' parameters: name and overrides for a built-in recipe; the whole recipe for a file, which may not
        exist where the runs execute. Raises RecipeError now, at deploy time, for a recipe that would not load."""
        recipe = load_recipe(self.recipe, self.overrides)
        if self.recipe in builtin_recipes():
            return {"recipe_name": self.recipe, "overrides": list(self.overrides)}
        return {"recipe": recipe.model_dump(mode="json", by_alias=True)}


@dataclass
class DeployOptions:
    cpu_pool: str = "infimmr-cpu"
    gpu_pool: str = "infimmr-gpu"
    cron: str = "0 3 * * 0"  # weekly, Sunday 03:00
    timezone: str = "UTC"
    schedule: ScheduledRecipe | None = None  # no schedule unless asked for: a default one would train on any box
    gpu_concurrency: int = 1


def _schedules(opts: DeployOptions) -> list[Any]:
    if opts.schedule is None:
        return []
    # A new data snapshot is a new source path in the overrides, hence a new curate key and everything downstream
    # recomputed; the same snapshot comes back Cached.
    return [Cron(opts.cron, timezone=opts.timezone, parameters=opts.schedule.parameters(), slug=SCHEDULE_SLUG)]


def remove_stale_schedule(opts: DeployOptions) -> bool:
    """Without a schedule asked for, delete the retraining schedule an earlier deploy made (registering a deployment
    again keeps schedules it does not mention, so a box once deployed with one would go on training). True if one
    was deleted."""
    if opts.schedule is not None:
        return False
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{infimmr_pipeline.name}/{PIPELINE}")
        except ObjectNotFound:
            return False
        stale = [s for s in client.read_deployment_schedules(deployment.id) if s.slug == SCHEDULE_SLUG]
        for schedule in stale:
            client.delete_deployment_schedule(deployment.id, schedule.id)
    return bool(stale)


def describe_schedule(opts: DeployOptions, removed: bool = False) -> str:
    """One line saying what was scheduled, for the deploy command's output."""
    if opts.schedule is None:
        return ("schedule: none" + (f" (removed the '{SCHEDULE_SLUG}' schedule an earlier deploy made)" if removed else "")
                + "; --schedule-recipe NAME|PATH [--schedule-set KEY=VALUE]... adds a retraining schedule")
    sets = "".join(f" --set {item}" for item in opts.schedule.overrides)
    return (f"schedule '{SCHEDULE_SLUG}': cron '{opts.cron}' ({opts.timezone}) runs infimmr-pipeline/pipeline with "
            f"recipe {opts.schedule.recipe}{sets}")


class ClosedParameterSchema(ParameterSchema):
    # Prefect's own model drops keys it does not know; this one keeps `additionalProperties`.
    model_config = ConfigDict(extra="allow")


def _refuse_unknown_parameters(deployment: RunnerDeployment) -> RunnerDeployment:
    """Close the deployment's parameter schema: an unknown top-level parameter is refused by the server (409) instead
    of creating a run that crashes at start with only "Process exited with status code: 1" in its state."""
    schema = deployment._parameter_openapi_schema  # Prefect 3.8 keeps the flow's schema here until it registers
    deployment._parameter_openapi_schema = ClosedParameterSchema(**schema.model_dump(), additionalProperties=False)
    return deployment


def build_deployments(opts: DeployOptions) -> list[tuple[RunnerDeployment, str]]:
    """Every deployment with the work pool it belongs to (ignored by `serve`)."""
    common = {"entrypoint_type": EntrypointType.MODULE_PATH, "tags": ["infimmr"]}
    deployments = [(
        _refuse_unknown_parameters(infimmr_pipeline.to_deployment(
            name=PIPELINE, description="The whole DAG: pick a recipe, add `KEY=VALUE` overrides. Finished stages "
            "come back Cached.", schedules=_schedules(opts), concurrency_limit=opts.gpu_concurrency, **common,
        )),
        opts.gpu_pool,
    )]
    for stage in STAGES:
        gpu = stage in GPU_STAGES
        deployments.append((
            _refuse_unknown_parameters(infimmr_stage.to_deployment(
                name=f"stage-{stage}", description=f"Run only the {stage} stage; its inputs must be in the store.",
                parameters={"stage": stage}, concurrency_limit=opts.gpu_concurrency if gpu else None, **common,
            )),
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

"""What a pipeline run reports (the `--json` object and the CLI's table): one shape, whether the run went through
Prefect or was answered from the store alone. No Prefect import here, so a fully stored run never pays for one."""

from __future__ import annotations

from typing import Any

from infimmr_core.config import Recipe
from infimmr_core.stages import ArtifactRef


def stage_summary(state: str, prefect_state: str | None, ref: ArtifactRef, seconds: float,
                  parts: dict[str, str] | None = None) -> dict[str, Any]:
    """One stage's line: `state` is completed or cached; `prefect_state` the task run's state as the UI shows it, None
    when no task ran (answered from the store)."""
    return {"state": state, "prefect_state": prefect_state, "uri": ref.uri, "digest": ref.digest, "seconds": seconds,
            "metrics": ref.metrics, **({"parts": parts} if parts else {})}


def run_summary(recipe: Recipe, flow_run_id: str | None, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"recipe": recipe.name, "store": recipe.store.uri, "flow_run_id": flow_run_id, "stages": stages}


def stored_run(recipe: Recipe, refs: dict[str, ArtifactRef], missing: str | None) -> dict[str, Any] | None:
    """The summary of a pipeline run whose every stage is already stored (`stored_chain`: each looked up by its key, as
    the stage task would), or None when one is not (`missing`): then the run has work to do and goes through Prefect."""
    if missing is not None:
        return None
    # Nothing ran: each stage's seconds are 0 and the lookups' time is the run's own `seconds`.
    return run_summary(recipe, None, {name: stage_summary("cached", None, ref, 0.0) for name, ref in refs.items()})

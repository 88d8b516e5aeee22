"""Stage task tags: on a Prefect server the operator runs they carry the tags that tag concurrency limits and UI filters
use; on the CLI's temporary server none (Prefect would ask that server for the tags' limits before every task: about
2 s a task, see tasks.stages.stage_tags)."""

from __future__ import annotations

import httpx
import pytest
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings

from infimmr.tasks.stages import TAGS, call_stage, stage_tags
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import COLLECT
from infimmr_core.store import store_from_config


@pytest.mark.parametrize(
    "api_url, stage, tags",
    [
        ("http://127.0.0.1:4200/api", "phase1", ["infimmr", "gpu"]),
        ("http://127.0.0.1:4200/api", "curate-shard", ["infimmr", "gpu-optional"]),
        ("http://127.0.0.1:4200/api", "publish", ["infimmr"]),
        (None, "phase1", []),
        (None, "curate-shard", []),
        (None, "publish", []),
    ],
)
def test_tags_only_on_an_operators_server(api_url, stage, tags):
    settings = {"updates": {PREFECT_API_URL: api_url}} if api_url else {"restore_defaults": {PREFECT_API_URL}}
    with temporary_settings(**settings):
        assert stage_tags(stage) == tags
    assert tags in ([], TAGS[stage])


def test_a_stage_task_run_on_an_operators_server_carries_its_tags(prefect_server, tmp_path):
    recipe = load_recipe("smoke", [f"store.uri=file://{tmp_path / 'store'}"])

    @flow
    def collect_only() -> None:
        call_stage(COLLECT, recipe, {}, force=False, store=store_from_config(recipe.store))

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        run_id = str(collect_only(return_state=True).state_details.flow_run_id)
    body = {"flow_runs": {"id": {"any_": [run_id]}}}
    runs = httpx.post(f"{prefect_server}/task_runs/filter", json=body, timeout=30).json()
    assert [(r["name"].rsplit("-", 1)[0], r["state_name"], sorted(r["tags"])) for r in runs] == [
        (COLLECT, "Completed", sorted(TAGS[COLLECT]))]

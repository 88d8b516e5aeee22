"""Deployments against a real `prefect server` on 127.0.0.1: registration, the typed run form, the schedule, runs
triggered through the API (served by `infimmr deploy --serve`), and reuse of what a stage deployment stored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from processes import has_exited, signal_own_group

from infimmr_core.recipes import load_recipe

INFIMMR = [sys.executable, "-m", "infimmr.flows.cli"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def infimmr(args, env, cwd, timeout=600):
    proc = subprocess.run(INFIMMR + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"infimmr {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-6000:]}"
    return proc


def deployment(api: str, name: str) -> dict:
    resp = httpx.get(f"{api}/deployments/name/{name}", timeout=30)
    resp.raise_for_status()
    return resp.json()


def flow_runs(api: str, deployment_id: str, state_types: list[str]) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "flow_runs": {"state": {"type": {"any_": state_types}}}}
    resp = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json()


def wait_final(api: str, flow_run_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).json()
        if run["state_type"] in FINAL:
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout} s: {run['state_name']}")


def task_states(api: str, flow_run_id: str) -> list[tuple[str, str]]:
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    resp = httpx.post(f"{api}/task_runs/filter", json=body, timeout=30)
    resp.raise_for_status()
    return [(t["name"].rsplit("-", 1)[0], t["state_name"]) for t in resp.json()]  # task run names are "<task>-<id>"


def create_run(api: str, deployment_id: str, parameters: dict) -> httpx.Response:
    """POST a run; a busy SQLite server answers 503 now and then, which a client simply retries."""
    for _ in range(10):
        resp = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters}, timeout=60)
        if resp.status_code != 503:
            return resp
        time.sleep(3)
    return resp


def smoke_params(store: str, *sets: str) -> dict:
    recipe = load_recipe("smoke", [f"store.uri={store}", *sets])
    return {"recipe": recipe.model_dump(mode="json", by_alias=True)}


@contextmanager
def served(env: dict, cwd) -> Iterator[subprocess.Popen]:
    """`infimmr deploy --serve` in the background: it registers the deployments and runs whatever is triggered."""
    log = open(cwd / "serve.log", "w")
    proc = subprocess.Popen(INFIMMR + ["deploy", "--serve", "--no-schedule"], env=env, cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        signal_own_group(proc, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            signal_own_group(proc, signal.SIGKILL)
        log.close()


def wait_deployment(api: str, name: str, proc: subprocess.Popen, cwd, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if has_exited(proc):  # not poll(): an unreaped pid stays ours to signal
            raise AssertionError("serve exited:\n" + (cwd / "serve.log").read_text()[-4000:])
        resp = httpx.get(f"{api}/deployments/name/{name}", timeout=30)
        if resp.status_code == 200:
            return resp.json()
        time.sleep(1)
    raise AssertionError(f"deployment {name} never appeared")


def test_deployments_form_schedule_and_rejected_parameters(prefect_server, cli_env, tmp_path):
    api = prefect_server
    out = infimmr(["deploy", "--schedule-recipe", "smoke", "--schedule-set", "curation.sources.0.seed=7",
                   "--cron", "0 3 * * 0"], cli_env, tmp_path)
    names = out.stdout.split()
    assert names == ["infimmr-pipeline/pipeline"] + [f"infimmr-stage/stage-{s}" for s in
                                                     ("curate", "phase1", "phase2", "phase3", "evaluate", "publish")]

    pipeline = deployment(api, "infimmr-pipeline/pipeline")
    assert pipeline["work_pool_name"] == "infimmr-gpu" and pipeline["enforce_parameter_schema"]
    assert pipeline["global_concurrency_limit"]["limit"] == 1  # one training run holds the GPU at a time
    schema = pipeline["parameter_openapi_schema"]
    recipe_schema = schema["definitions"]["Recipe"]
    assert {"curation", "phases", "evaluation", "publish", "runtime"} <= set(recipe_schema["properties"])
    phase = schema["definitions"]["PhaseConfig"]["properties"]
    assert phase["learning_rate"]["exclusiveMinimum"] == 0 and "description" in phase["num_generations"]
    assert deployment(api, "infimmr-stage/stage-phase2")["global_concurrency_limit"]["limit"] == 1
    assert deployment(api, "infimmr-stage/stage-curate")["global_concurrency_limit"] is None
    assert deployment(api, "infimmr-stage/stage-curate")["work_pool_name"] == "infimmr-cpu"

    # The schedule carries the recipe (here with its data snapshot changed) as its parameters.
    [schedule] = pipeline["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * 0" and schedule["active"]
    scheduled_recipe = schedule["parameters"]["recipe"]
    assert scheduled_recipe["name"] == "smoke" and scheduled_recipe["curation"]["sources"][0]["seed"] == 7

    # Invalid recipe values are refused by the server: no run is created.
    bad = smoke_params("file:///nowhere")
    bad["recipe"]["phases"]["1"]["learning_rate"] = -1
    resp = create_run(api, pipeline["id"], bad)
    assert resp.status_code == 409 and "learning_rate" in resp.text + json.dumps(bad) and "-1" in resp.text, resp.text
    resp = create_run(api, pipeline["id"], {"recipe": {"name": "x"}})
    assert resp.status_code == 409 and "curation" in resp.text, resp.text

    # The scheduler creates the upcoming runs, with the schedule's parameters.
    deadline = time.monotonic() + 90
    while not (upcoming := [r for r in flow_runs(api, pipeline["id"], ["SCHEDULED"]) if r["auto_scheduled"]]):
        assert time.monotonic() < deadline, "the scheduler created no run"
        time.sleep(2)
    assert upcoming[0]["parameters"]["recipe"]["curation"]["sources"][0]["seed"] == 7
    every_run = flow_runs(api, pipeline["id"], ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED"])
    assert all(r["parameters"]["recipe"]["phases"]["1"]["learning_rate"] > 0 for r in every_run), "a rejected run exists"


@pytest.mark.slow
def test_stage_run_through_the_api_is_reused_by_the_next_run(prefect_server, cli_env, tmp_path):
    """Resume by stage: curate run by hand through its deployment; the CLI's next run of it finds it Cached."""
    api = prefect_server
    store = f"file://{tmp_path / 'store'}"
    with served(cli_env, tmp_path) as proc:
        dep = wait_deployment(api, "infimmr-stage/stage-curate", proc, tmp_path)
        resp = create_run(api, dep["id"], {"stage": "curate", **smoke_params(store)})
        assert resp.status_code == 201, resp.text
        run = wait_final(api, resp.json()["id"], timeout=600)
    assert run["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
    assert task_states(api, run["id"]) == [("curate", "Completed")]

    summary = json.loads(infimmr(["stage", "curate", "--store", store, "--json"], cli_env, tmp_path).stdout)
    assert summary["stages"]["curate"]["state"] == "cached"
    assert summary["stages"]["curate"]["prefect_state"] == "Cached"


@pytest.mark.slow
def test_pipeline_sends_training_phases_to_their_stage_deployments(prefect_server, cli_env, tmp_path):
    """`runtime.gpu_stage_deployment`: each phase is a cached task of the pipeline that runs its stage deployment
    (here served by the same process; on a cluster, a GPU pool) and takes the artifact from the shared store."""
    api = prefect_server
    params = smoke_params(f"file://{tmp_path / 'store'}", "runtime.gpu_stage_deployment=infimmr-stage/stage-{stage}")
    with served(cli_env, tmp_path) as proc:
        dep = wait_deployment(api, "infimmr-pipeline/pipeline", proc, tmp_path)
        runs = []
        for _ in range(2):
            resp = create_run(api, dep["id"], params)
            assert resp.status_code == 201, resp.text
            runs.append(wait_final(api, resp.json()["id"]))
            assert runs[-1]["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
    stages = ["curate", "phase1", "phase2", "phase3", "evaluate", "publish"]
    # (run_deployment adds a task run named after the deployment it waits on; the stage tasks are what counts here)
    assert [t for t in task_states(api, runs[0]["id"]) if t[0] in stages] == [(s, "Completed") for s in stages]
    assert [t for t in task_states(api, runs[1]["id"]) if t[0] in stages] == [(s, "Cached") for s in stages]
    for phase in ("phase1", "phase2", "phase3"):
        [remote] = flow_runs(api, deployment(api, f"infimmr-stage/stage-{phase}")["id"], ["COMPLETED"])
        assert remote["parameters"]["stage"] == phase and remote["parent_task_run_id"]

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
import yaml
from processes import has_exited, signal_own_group

from infimmr_core.recipes import builtin_recipes, load_recipe
from infimmr_core.stages import STAGES

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


def create_run(api: str, deployment_id: str, parameters: dict, **body: object) -> httpx.Response:
    """POST a run; a busy SQLite server answers 503 now and then, which a client simply retries."""
    for _ in range(10):
        resp = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters, **body},
                          timeout=60)
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
    assert names == ["infimmr-pipeline/pipeline"] + [f"infimmr-stage/stage-{s}" for s in STAGES]
    assert ("schedule 'retrain': cron '0 3 * * 0' (UTC) runs infimmr-pipeline/pipeline with recipe smoke "
            "--set curation.sources.0.seed=7") in out.stderr

    pipeline = deployment(api, "infimmr-pipeline/pipeline")
    assert pipeline["work_pool_name"] == "infimmr-gpu" and pipeline["enforce_parameter_schema"]
    assert pipeline["global_concurrency_limit"]["limit"] == 1  # one training run holds the GPU at a time
    schema = pipeline["parameter_openapi_schema"]
    # The form: a recipe by name, overrides, force, and the whole recipe as the advanced alternative; nothing else.
    assert list(schema["properties"]) == ["recipe_name", "overrides", "force", "recipe"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["recipe_name"]["anyOf"][0]["enum"] == builtin_recipes()
    phase = schema["definitions"]["PhaseConfig"]["properties"]
    assert phase["learning_rate"]["exclusiveMinimum"] == 0 and "description" in phase["learning_rate"]
    assert deployment(api, "infimmr-stage/stage-phase2")["global_concurrency_limit"]["limit"] == 1
    stage = deployment(api, "infimmr-stage/stage-curate")
    assert stage["global_concurrency_limit"] is None and stage["work_pool_name"] == "infimmr-cpu"
    assert list(stage["parameter_openapi_schema"]["properties"]) == ["stage", "recipe_name", "overrides", "force", "recipe"]

    # The schedule runs the named recipe with its overrides (here the data snapshot changed).
    [schedule] = pipeline["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * 0" and schedule["active"]
    assert schedule["parameters"] == {"recipe_name": "smoke", "overrides": ["curation.sources.0.seed=7"]}

    # What the form or a client sends wrong is refused by the server, naming what is wrong; no run is created.
    def requested_runs(dep: dict) -> list[dict]:
        return [r for r in flow_runs(api, dep["id"], ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED",
                                                      "CRASHED", "CANCELLED"]) if not r["auto_scheduled"]]

    bad_recipe = smoke_params("file:///nowhere")
    bad_recipe["recipe"]["phases"]["1"]["learning_rate"] = -1
    refused = [
        (pipeline, {"recipe_name": "smoke", "overrides": ["phases.2.learnin_rate=1e-6"]}, ["overrides[0]", "phases.2.learnin_rate=1e-6"]),
        (pipeline, {"overrides": ["phases.2.learning_rate=fast"]}, ["overrides[0]", "phases.2.learning_rate=fast"]),
        (pipeline, {"overrides": ["phases.2.learning_rate=1e-6", "phases.1.input=video"]}, ["overrides[1]", "video"]),
        (pipeline, {"recipe_name": "smok"}, ["recipe_name"]),
        (pipeline, {"recipe_name": "smoke", "bogus": 1}, ["'bogus' was unexpected"]),
        (pipeline, {"recipe": {"name": "x"}}, ["recipe"]),
        (pipeline, bad_recipe, ["recipe"]),
        (stage, {"stage": "curate", "overrides": ["phases.2.learning_rate=-1"]}, ["overrides[0]"]),
        (stage, {"stage": "curate", "seed": 3}, ["'seed' was unexpected"]),
    ]
    before = {d["id"]: len(requested_runs(d)) for d in (pipeline, stage)}
    for dep, parameters, names in refused:
        resp = create_run(api, dep["id"], parameters)
        assert resp.status_code == 409, (parameters, resp.text)
        assert all(name in resp.json()["detail"] for name in names), (names, resp.text)
    assert {d["id"]: len(requested_runs(d)) for d in (pipeline, stage)} == before, "a refused request created a run"

    # The scheduler creates the upcoming runs, with the schedule's parameters.
    deadline = time.monotonic() + 90
    while not (upcoming := [r for r in flow_runs(api, pipeline["id"], ["SCHEDULED"]) if r["auto_scheduled"]]):
        assert time.monotonic() < deadline, "the scheduler created no run"
        time.sleep(2)
    assert upcoming[0]["parameters"] == schedule["parameters"]


def test_deploy_schedules_nothing_unless_asked(prefect_server, cli_env, tmp_path):
    """No --schedule-recipe, no schedule: and a schedule an earlier deploy made is removed, and the output says so."""
    infimmr(["deploy", "--schedule-recipe", "smoke"], cli_env, tmp_path)
    assert len(deployment(prefect_server, "infimmr-pipeline/pipeline")["schedules"]) == 1
    out = infimmr(["deploy"], cli_env, tmp_path)
    assert deployment(prefect_server, "infimmr-pipeline/pipeline")["schedules"] == []
    assert "schedule: none (removed the 'retrain' schedule an earlier deploy made)" in out.stderr
    assert "schedule: none;" in infimmr(["deploy"], cli_env, tmp_path).stderr
    bad = subprocess.run(INFIMMR + ["deploy", "--schedule-set", "x=1"], env=cli_env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "--schedule-set needs --schedule-recipe" in bad.stderr


def recipe_of_run(api: str, flow_run_id: str, timeout: float = 240) -> dict:
    """The resolved recipe a run recorded (its `recipe` artifact), as a mapping."""
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}, "key": {"any_": ["recipe"]}}}
    deadline = time.monotonic() + timeout
    while not (found := httpx.post(f"{api}/artifacts/filter", json=body, timeout=30).json()):
        run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).json()
        assert run["state_type"] not in FINAL, f"run ended {run['state_name']} without its recipe: {run['state']}"
        assert time.monotonic() < deadline, "the run recorded no recipe"
        time.sleep(2)
    text = found[0]["data"]
    return yaml.safe_load(text.removeprefix("```yaml\n").removesuffix("```"))


def test_run_form_recipe_name_and_overrides_through_the_api(prefect_server, cli_env, tmp_path):
    """What the UI form sends: a recipe name and `KEY=VALUE` overrides. The run uses exactly that recipe; an override
    that only the recipe as a whole can refuse (the form's schema bypassed) fails the run with the reason."""
    api = prefect_server
    overrides = ["phases.2.learning_rate=1e-6", f"store.uri=file://{tmp_path / 'store'}"]
    with served(cli_env, tmp_path) as proc:
        dep = wait_deployment(api, "infimmr-pipeline/pipeline", proc, tmp_path)
        resp = create_run(api, dep["id"], {"recipe_name": "smoke", "overrides": overrides})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        used = recipe_of_run(api, run_id)
        assert used == load_recipe("smoke", overrides).model_dump(mode="json", by_alias=True)
        assert used["phases"]["2"]["learning_rate"] == 1e-6
        cancel = {"state": {"type": "CANCELLING", "message": "test: the recipe was all it had to show"}}
        httpx.post(f"{api}/flow_runs/{run_id}/set_state", json=cancel, timeout=30).raise_for_status()

        resp = create_run(api, dep["id"], {"overrides": ["phases.1.num_generations=3"]}, enforce_parameter_schema=False)
        assert resp.status_code == 201, resp.text
        failed = wait_final(api, resp.json()["id"], timeout=300)
        assert wait_final(api, run_id, timeout=120)["state_type"] == "CANCELLED"
    assert failed["state_type"] == "FAILED", failed["state"]
    assert "is not divisible by num_generations = 3" in failed["state"]["message"]


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
    states = task_states(api, run["id"])  # the curate stage's parts (collect, shards), then the merge
    assert states[-1] == ("curate", "Completed") and {state for _, state in states} == {"Completed"}, states

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

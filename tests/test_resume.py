"""Resuming without recomputing: `prefect flow-run retry` of a failed deployment run, and a second machine (fresh
PREFECT_HOME, fresh Prefect database, fresh local cache) that shares only the S3 store. Both run the whole smoke DAG,
so they are slow."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.hub_server import start_hub
from tests.test_deploy import create_run, infimmr, served, smoke_params, task_states, wait_deployment, wait_final

STAGES = ["curate", "phase1", "phase2", "phase3", "evaluate", "publish"]
TOKEN = "hf_resumetesttoken_9d8c7b6a"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_failed_run_retried_with_prefect_cli_reuses_finished_stages(prefect_server, cli_env, tmp_path):
    """The Hub is down when the pipeline reaches publish; once it is back, `prefect flow-run retry` finishes the run
    with every earlier stage Cached."""
    api, hub_port = prefect_server, _unused_port()
    env = {**cli_env, "HF_ENDPOINT": f"http://127.0.0.1:{hub_port}", "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1"}
    params = smoke_params(f"file://{tmp_path / 'store'}", "publish.repo_id=local-user/infimmr-retry")
    with served(env, tmp_path) as proc:
        dep = wait_deployment(api, "infimmr-pipeline/pipeline", proc, tmp_path)
        resp = create_run(api, dep["id"], params)
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        first = wait_final(api, run_id)
        assert first["state_type"] == "FAILED", (tmp_path / "serve.log").read_text()[-4000:]
        assert task_states(api, run_id)[-1] == ("publish", "Failed")

        server, hub = start_hub(TOKEN, hub_port)
        try:
            retry = subprocess.run([sys.executable, "-m", "prefect", "flow-run", "retry", run_id], env=env,
                                   capture_output=True, text=True, timeout=120)
            assert retry.returncode == 0, retry.stdout + retry.stderr
            second = wait_final(api, run_id)
        finally:
            server.shutdown()
    assert second["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
    # The first attempt's task runs come first (curate's parts among them), ending with the failed publish.
    states = task_states(api, run_id)
    retried = states[states.index(("publish", "Failed")) + 1:]
    assert retried == [(s, "Cached") for s in STAGES[:-1]] + [("publish", "Completed")]
    assert len(hub.repos[("model", "local-user/infimmr-retry")].commits) == 2
    assert TOKEN not in (tmp_path / "serve.log").read_text()


@pytest.mark.slow
def test_second_machine_gets_every_stage_cached_from_s3(s3_env, cli_env, tmp_path):
    """Machine A runs the pipeline on the shared Prefect server; machine B has its own Prefect home and database
    (an ephemeral server) and an empty download cache, and shares only the S3 store."""
    store = f"s3://{s3_env}/infimmr"
    first = json.loads(infimmr(["run", "--store", store, "--json"], cli_env, tmp_path, timeout=900).stdout)
    assert [s["state"] for s in first["stages"].values()] == ["completed"] * len(STAGES)

    machine_b = {k: v for k, v in cli_env.items() if k != "PREFECT_API_URL"}
    machine_b |= {"PREFECT_HOME": str(tmp_path / "b-prefect-home"), "INFIMMR_CACHE_DIR": str(tmp_path / "b-cache"),
                  "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true"}
    (tmp_path / "b").mkdir()
    # Through Prefect (a rerun with nothing to do would be answered from the store): its cache records come from S3.
    second = json.loads(infimmr(["run", "--store", store, "--json", "--always-prefect"], machine_b, tmp_path / "b").stdout)
    assert {n: (s["state"], s["prefect_state"]) for n, s in second["stages"].items()} == {
        n: ("cached", "Cached") for n in STAGES}
    assert {n: s["uri"] for n, s in second["stages"].items()} == {n: s["uri"] for n, s in first["stages"].items()}
    assert not (tmp_path / "b-cache" / "work").exists(), "machine B ran a stage"

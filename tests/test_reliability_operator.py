"""Operator experience (issue 13, item 9): a run says what failed, and never waits or gives up without saying why.

- Prefect's temporary server (no PREFECT_API_URL) is given time to start; one that cannot start is reported as that,
  with nothing run, not as a failed stage to resume. Its slowness and its crash are injected by a `sitecustomize` in
  the server process only (PYTHONPATH): the server, the CLI and the flow are the real ones.
- A failed stage process says why in its first line (the exception type and message of the worker), which is all a
  list of failed curation shards keeps.
- A stage run through a deployment no worker serves fails after runtime.remote_stage_timeout_seconds, naming the
  deployment and the flow run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from processes import signal_own_group

from infimmr_core.recipes import load_recipe
from infimmr_core.runner import StageFailed, failure_reason, run_stage_process
from infimmr_core.stages import ArtifactRef, plan_stage
from infimmr_core.store import LocalStore

pytestmark = pytest.mark.reliability

INFIMMR = [sys.executable, "-m", "infimmr.flows.cli"]

# Loaded by every Python process of the CLI run; acts only in the temporary server's (uvicorn serving Prefect's app).
SITECUSTOMIZE = """
import os, sys, time
if any("prefect.server.api.server:create_app" in arg for arg in sys.argv):
    if os.environ.get("TEST_SERVER_EXIT_CODE"):
        os._exit(int(os.environ["TEST_SERVER_EXIT_CODE"]))
    time.sleep(float(os.environ.get("TEST_SERVER_DELAY_SECONDS", "0")))
"""


def _cli_without_api(tmp_path, **extra: str) -> dict[str, str]:
    """The CLI's environment with no Prefect server of its own (so it starts the temporary one) and a fresh home."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")}
    return env | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")])),
        "PREFECT_HOME": str(tmp_path / "prefect-home"), "INFIMMR_CACHE_DIR": str(tmp_path / "cache"),
        "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    } | extra


def _run_cli(args: list[str], env: dict[str, str], cwd, timeout: float) -> subprocess.CompletedProcess:
    """The CLI in its own session; it and everything it started (the temporary server) are killed if it overruns."""
    proc = subprocess.Popen(INFIMMR + args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_own_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"infimmr {' '.join(args)} ran over {timeout} s:\n{err[-4000:]}") from None
    finally:
        signal_own_group(proc, signal.SIGTERM) if proc.poll() is None else None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow  # waits out a 25 s server start
def test_a_slow_temporary_server_is_waited_for(tmp_path):
    """A server that needs 25 s to start (Prefect's default allows 20): the run goes ahead. `stage publish` on an empty
    store then stops where it should, inside the flow, at its missing inputs (exit 2)."""
    env = _cli_without_api(tmp_path, TEST_SERVER_DELAY_SECONDS="25")
    started = time.monotonic()
    proc = _run_cli(["stage", "publish", "--store", f"file://{tmp_path / 'store'}"], env, tmp_path, timeout=400)
    assert time.monotonic() - started > 25, "the injected delay did not apply: the test proves nothing"
    assert "Timed out while attempting to connect" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2 and "publish" in proc.stderr and "missing" in proc.stderr.lower(), proc.stderr[-3000:]


def test_a_temporary_server_that_cannot_start_is_reported_as_such(tmp_path):
    env = _cli_without_api(tmp_path, TEST_SERVER_EXIT_CODE="7", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="5")
    proc = _run_cli(["stage", "publish", "--store", f"file://{tmp_path / 'store'}"], env, tmp_path, timeout=180)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "temporary server" in proc.stderr and "within 5 s, so nothing ran" in proc.stderr, proc.stderr[-3000:]
    assert "exited with code 7" in proc.stderr and "PREFECT_API_URL" in proc.stderr
    assert "run the same command again" not in proc.stderr, "nothing ran: there is nothing to resume"


@pytest.mark.parametrize(("rc", "timed_out", "error", "reason"), [
    (1, False, {"type": "ArtifactMissing", "message": "no artifact curate/k1"},
     "failed with ArtifactMissing: no artifact curate/k1 (exited with code 1)"),
    (1, False, {"type": "KeyError", "message": ""}, "failed with KeyError (exited with code 1)"),
    (1, False, None, "exited with code 1"),
    (-9, False, None, "exited with code -9 (SIGKILL, e.g. out of memory)"),
    (-15, False, None, "exited with code -15 (SIGTERM)"),
    (-9, True, None, "timed out after 60 s"),
    (0, False, None, "exited without storing its artifact"),
])
def test_failure_reason(rc, timed_out, error, reason):
    assert failure_reason(rc, timed_out, 60, error) == reason


def test_a_failed_stage_process_says_why_in_its_first_line(tmp_path):
    """A real worker whose upstream artifact is gone: the first line names the exception and its message."""
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    recipe = load_recipe("smoke")
    recipe.store.uri, recipe.store.cache_dir = store.uri, str(store.cache_dir)
    gone = {name: ArtifactRef(stage=name, key=f"gone-{name}", uri=store.artifact_uri(name, f"gone-{name}"), digest="0" * 64)
            for name in ("phase3", "evaluate", "curate")}
    with pytest.raises(StageFailed) as failed:
        run_stage_process(plan_stage("publish", recipe, gone), recipe, gone, on_line=lambda line: None)
    first = str(failed.value).splitlines()[0]
    assert first.startswith("stage publish failed with ArtifactMissing: ") and "gone-" in first, first
    assert first.endswith("(exited with code 1)"), first
    assert "ArtifactMissing" in str(failed.value).split("last output:", 1)[1], "the traceback is no longer shown"


@pytest.mark.slow  # a real curation whose image shards fail (about a minute)
def test_failed_curation_shards_each_say_why(cli_env, tmp_path):
    missing = tmp_path / "no-such-captioner"
    proc = _run_cli(["stage", "curate", "--store", f"file://{tmp_path / 'store'}",
                     "--set", f"curation.captioning.model={{name_or_path: '{missing}'}}"], cli_env, tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    listed = [line for line in proc.stderr.splitlines() if re.match(r"  shard-\d+: ", line)]
    assert listed, proc.stderr[-3000:]
    for line in listed:  # the worker's exception, naming what was wrong, on the line that names the shard
        assert re.fullmatch(r"  shard-\d+: stage curate-shard failed with \w+: .*no-such-captioner.* \(exited with code 1\)",
                            line), line
    # Nothing of the failed runs piles up: no Prefect record of a failed task run (only finished stages' records,
    # named after their keys), no lock file, no private work directory.
    results = tmp_path / "store" / "_prefect" / "results"
    records = [p.name for p in results.glob("*")]
    assert records and [name for name in records if not name.startswith("infimmr-")] == [], records
    work = Path(cli_env["INFIMMR_CACHE_DIR"]) / "work"
    assert [p.name for p in work.rglob("*") if p.name.endswith(".lock") or ".run-" in p.name] == []


def test_a_remote_stage_nobody_runs_times_out_naming_the_deployment_and_flow_run(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from infimmr.flows.pipeline import infimmr_stage
    from infimmr.flows.server import ensure_work_pool
    from infimmr.tasks.stages import _run_remote

    suffix = uuid.uuid4().hex[:8]
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    recipe = load_recipe("smoke", [f"runtime.gpu_stage_deployment=infimmr-stage/unserved-{suffix}-{{stage}}",
                                   "runtime.remote_stage_timeout_seconds=3"])
    recipe.store.uri = store.uri
    curate = ArtifactRef(stage="curate", key="k", uri=store.artifact_uri("curate", "k"), digest="0" * 64)
    plan = plan_stage("phase1", recipe, {"curate": curate})
    outcome: dict[str, BaseException | None] = {}

    def remote() -> None:
        try:
            with temporary_settings({PREFECT_API_URL: prefect_server}):  # settings are per thread (a context variable)
                _run_remote(plan, recipe, False, store)
            outcome["error"] = None
        except BaseException as error:  # noqa: BLE001 - checked below
            outcome["error"] = error

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        pool = f"unserved-{suffix}"  # no worker polls it: the flow run stays Scheduled
        ensure_work_pool(pool)
        infimmr_stage.to_deployment(name=f"unserved-{suffix}-phase1", parameters={"stage": "phase1"}).apply(
            work_pool_name=pool)
        waiter = threading.Thread(target=remote, daemon=True)
        started = time.monotonic()
        waiter.start()
        waiter.join(timeout=120)
    assert not waiter.is_alive(), "still waiting on a deployment no worker serves after 120 s"
    error = outcome["error"]
    assert isinstance(error, StageFailed), error
    message = str(error)
    assert f"deployment 'infimmr-stage/unserved-{suffix}-phase1'" in message and "within 3 s" in message, message
    flow_run_id = message.split("flow run ", 1)[1].split()[0]
    assert uuid.UUID(flow_run_id) and f"prefect flow-run cancel {flow_run_id}" in message, message
    assert time.monotonic() - started < 60

"""`infimmr server` as a user meets it: its UI in a browser talks to its own API whatever the port, even with another
Prefect server on 4200; and a flow run that crashes (machine lost, process SIGKILLed) leaves no task run "Running".

The browser is Debian's headless `chromium` (apt-get install chromium); the UI test is skipped where it is absent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from infimmr.flows.server import wait_healthy
from tests.conftest import _free_port
from tests.test_deploy_ui import CHROMIUM, chromium

DEFAULT_PORT = 4200  # where Prefect's UI looks for its API unless told otherwise


def _quiet_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(home), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    """Stop a process this module started (Popen knows whether it was reaped, so its pid is still ours)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def own_server(tmp_path_factory) -> Iterator[str]:
    """`infimmr server --port P` on a free port, with a Prefect home of its own; yields its API URL."""
    home = tmp_path_factory.mktemp("infimmr-server")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "infimmr.flows.cli", "server", "--port", str(port)],
                            env=_quiet_env(home / "prefect"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:  # a full pipe would block the server
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("prefect server:"):
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert ready.wait(240), "".join(lines)[-4000:]
        yield f"http://127.0.0.1:{port}/api"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def server_on_4200(tmp_path_factory) -> Iterator[None]:
    """Another Prefect server on port 4200: started here only if the port is free; one already there (someone
    else's) is left alone, and is the very condition to test."""
    if not _port_is_free(DEFAULT_PORT):
        yield
        return
    home = tmp_path_factory.mktemp("decoy-server")
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(DEFAULT_PORT)], env=_quiet_env(home), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{DEFAULT_PORT}/api", proc, timeout=240)
        except RuntimeError:
            assert not _port_is_free(DEFAULT_PORT), (home / "server.log").read_text()[-3000:]  # taken meanwhile
        yield
    finally:
        _stop(proc, signal.SIGTERM)
        log.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_ui_shows_its_own_server_whatever_the_port(own_server, server_on_4200, tmp_path):
    ui = own_server.removesuffix("/api")
    mine = f"infimmr_ui_{uuid.uuid4().hex[:10]}"  # on this server only: seen in the UI means this server's data
    httpx.post(f"{own_server}/variables/", json={"name": mine, "value": "here"}, timeout=30).raise_for_status()

    dashboard = chromium(f"{ui}/", "--dump-dom").stdout
    for error in ("Oops. Something went wrong.", "Unable to connect to Prefect server"):
        assert error not in dashboard, f"the dashboard shows {error!r}"
    assert "Dashboard" in dashboard
    for page in ("/v2/variables", "/variables"):  # the default UI, and the one the old links lead to
        assert mine in chromium(f"{ui}{page}", "--dump-dom").stdout, f"{page} does not show this server's variable"

    out = Path(os.environ.get("INFIMMR_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    chromium(f"{ui}/", f"--screenshot={out / 'dashboard.png'}")
    from PIL import Image

    with Image.open(out / "dashboard.png") as image:
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16, "blank screenshot"
    api_url = httpx.get(f"{ui}/ui-settings", timeout=30).json()["api_url"]
    assert urljoin(f"{ui}/", api_url) == own_server


STUCK_FLOW = """
import sys, time
from prefect import flow, task
from prefect.runtime import flow_run

@task
def stage():
    with open(sys.argv[1], "w") as f:
        f.write(flow_run.id)
    time.sleep(900)

@flow
def stuck():
    stage()

stuck()
"""


def _task_runs(api: str, flow_run_id: str) -> list[dict]:
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
    return httpx.post(f"{api}/task_runs/filter", json=body, timeout=30).json()


def _wait(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} after {timeout:.0f} s"
        time.sleep(1)
    return found


def _run_stuck_flow(api: str, tmp_path: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A flow run whose task runs (Running, for the API) until the process is killed; returns (process, run id)."""
    script, marker = tmp_path / "stuck.py", tmp_path / "flow-run-id"
    script.write_text(STUCK_FLOW)
    env = _quiet_env(tmp_path / "client") | {"PREFECT_API_URL": api} | extra_env
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    flow_run_id = _wait("no flow run started", lambda: marker.exists() and marker.read_text(), 180)
    _wait("the task never showed Running",
          lambda: [t for t in _task_runs(api, flow_run_id) if t["state_type"] == "RUNNING"], 60)
    return proc, flow_run_id


def test_crashed_flow_run_leaves_no_task_running(own_server, tmp_path):
    proc, flow_run_id = _run_stuck_flow(own_server, tmp_path, {})
    _stop(proc, signal.SIGKILL)  # as a lost machine: nothing in the process gets to report anything
    # What the heartbeat automation does once the beats stop: mark the flow run Crashed.
    crashed = {"type": "CRASHED", "message": "No heartbeat for 90 s: marked Crashed."}
    httpx.post(f"{own_server}/flow_runs/{flow_run_id}/set_state", json={"state": crashed}, timeout=30).raise_for_status()

    [task] = _wait("the task run is still not Crashed", lambda: [
        t for t in _task_runs(own_server, flow_run_id) if t["state_type"] == "CRASHED"], 60)
    assert "ended Crashed: No heartbeat for 90 s" in task["state"]["message"]
    assert [t["state_type"] for t in _task_runs(own_server, flow_run_id)] == ["CRASHED"]


@pytest.mark.slow
def test_heartbeat_automation_then_sweep_close_a_killed_run(own_server, tmp_path):
    """The whole path with real heartbeats: SIGKILL, no beat for 90 s, the automation marks the flow run Crashed,
    and the server closes its task run."""
    proc, flow_run_id = _run_stuck_flow(own_server, tmp_path, {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"})
    _stop(proc, signal.SIGKILL)
    flow_run = _wait("the automation never marked the run Crashed", lambda: (
        run := httpx.get(f"{own_server}/flow_runs/{flow_run_id}", timeout=30).json())["state_type"] == "CRASHED" and run, 300)
    assert "No heartbeat" in flow_run["state"]["message"]
    _wait("the task run is still not Crashed", lambda: [
        t for t in _task_runs(own_server, flow_run_id) if t["state_type"] == "CRASHED"], 60)

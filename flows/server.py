"""`infimmr server`: a self-hosted Prefect server with what the pipeline needs, and workers, stopped in the right order.

It starts `prefect server start` with its UI pointed at itself (whatever the port), then creates (idempotently) the
automation that marks a flow run Crashed when its heartbeats stop (a killed machine otherwise leaves the run Running
forever), the work pools, and the block that keeps Prefect results in the S3 artifact store. While it runs, task runs
left unfinished by a flow run that crashed or was cancelled are given that end too: the process that would have
finished them is gone. Workers started here are stopped before the server on shutdown, so none is left polling (and
failing against) a server that is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

from infimmr_core.config import StoreConfig
from infimmr_core.runner import _die_with_parent as die_with_parent

CRASH_AUTOMATION = "infimmr: mark crashed when heartbeats stop"
HEARTBEAT_SECONDS = 30  # Prefect's minimum; the automation waits three beats
SWEEP_SECONDS = 10  # how often unfinished task runs of ended flow runs are looked for
UI_API_SETTINGS = ("PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL")


def server_env(host: str, port: int, environ: dict[str, str]) -> dict[str, str]:
    """The `prefect server start` process's environment. Prefect's UI asks `/ui-settings` where the API is, and the
    answer defaults to PREFECT_SERVER_API_PORT (4200), not the port `--port` serves on: the UI of a server on another
    port then shows "Oops. Something went wrong.", or the data of whatever server runs on 4200. The API is at `/api`
    on the UI's own origin, so a relative URL reaches it from any browser, port forward or bind address; an explicit
    PREFECT_UI_API_URL (a reverse proxy with a path prefix) is kept."""
    env = {k: v for k, v in environ.items() if k != "PREFECT_API_URL"}  # a client setting; the server has its own
    env |= {"PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    if not any(environ.get(name) for name in UI_API_SETTINGS):
        env["PREFECT_SERVER_UI_API_URL"] = "/api"
        env.pop("PREFECT_UI_API_URL", None)
    if not environ.get("PREFECT_UI_URL"):  # links in automation notifications
        shown = socket.gethostname() if host in {"0.0.0.0", "::", ""} else host
        env["PREFECT_UI_URL"] = f"http://{shown}:{port}"
    return env


def wait_healthy(api_url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode}")
        time.sleep(0.5)
    raise RuntimeError(f"prefect server at {api_url} did not become healthy in {timeout:.0f} s")


def ensure_crash_automation() -> None:
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        Automation.read(name=CRASH_AUTOMATION)
        return
    except ValueError:  # not there yet
        pass
    Automation(
        name=CRASH_AUTOMATION,
        description="Flow runs whose heartbeats stop (machine lost, container evicted) become Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=3 * HEARTBEAT_SECONDS),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="No heartbeat for 90 s: marked Crashed.")],
    ).create()


def ensure_work_pool(name: str, pool_type: str = "process") -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))
        except ObjectAlreadyExists:
            pass


def save_results_block(store: StoreConfig) -> str | None:
    """The S3 result-storage block the tasks use for this store, saved now so the UI shows it from the start."""
    if not store.uri.startswith("s3://"):
        return None
    from infimmr.tasks.results import result_storage

    return result_storage(store)._block_document_name


def _child(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Own session: a Ctrl-C on the terminal reaches only us, and we stop the children in order. They still die
    # with us if we are killed outright.
    return subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=die_with_parent)


def close_orphaned_task_runs() -> int:
    """Give unfinished task runs of crashed or cancelled flow runs their flow run's end, and return how many.

    A flow run marked Crashed by the heartbeat automation (or by a runner whose process was SIGKILLed) cannot report
    anything any more, so its running stage task would show Running forever. Only the server side can close it, and
    looking for such task runs (rather than reacting to an event) also closes those of runs that ended while this
    server was down."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, TaskRunFilter, TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Crashed

    unfinished = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[
        StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING])))
    closed = 0
    with get_client(sync_client=True) as client:
        for ended, state in ((StateType.CRASHED, Crashed), (StateType.CANCELLED, Cancelled)):
            ended_runs = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[ended])))
            for task_run in client.read_task_runs(flow_run_filter=ended_runs, task_run_filter=unfinished, limit=200):
                flow_run = client.read_flow_run(task_run.flow_run_id)
                why = flow_run.state.message if flow_run.state and flow_run.state.message else ""
                message = f"Its flow run {flow_run.name!r} ended {ended.value.title()}" + (f": {why}" if why else ".")
                client.set_task_run_state(task_run.id, state(message=message), force=True)
                closed += 1
    return closed


def _sweep() -> None:
    try:
        if closed := close_orphaned_task_runs():
            print(f"closed {closed} task run(s) of crashed or cancelled flow runs", file=sys.stderr, flush=True)
    except Exception as err:  # a busy or restarting server: the next sweep tries again
        print(f"task-run sweep failed: {err}", file=sys.stderr, flush=True)


def serve_forever(host: str, port: int, store: StoreConfig, pools: list[str]) -> int:
    api_url = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    server = _child([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
                    server_env(host, port, env))
    workers: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        wait_healthy(api_url, server)
        os.environ["PREFECT_API_URL"] = api_url
        ensure_crash_automation()
        block = save_results_block(store)
        for pool in pools:
            ensure_work_pool(pool)
            workers.append(_child([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool], env))
        print(f"prefect server: {api_url} (UI http://{host}:{port}); automation '{CRASH_AUTOMATION}'"
              + (f"; results block '{block}'" if block else "") + (f"; workers for {pools}" if pools else ""),
              file=sys.stderr, flush=True)
        next_sweep = 0.0
        while not stopping and server.poll() is None:
            if time.monotonic() >= next_sweep:
                _sweep()
                next_sweep = time.monotonic() + SWEEP_SECONDS
            time.sleep(0.5)
    finally:
        shutdown(workers, server)
    return 0


def _terminate(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shutdown(workers: list[subprocess.Popen], server: subprocess.Popen) -> None:
    """Workers first (they finish reporting their runs' states), the server last."""
    for worker in workers:
        _terminate(worker)
        print(f"stopped worker (pid {worker.pid})", file=sys.stderr, flush=True)
    _terminate(server)
    print(f"stopped prefect server (pid {server.pid})", file=sys.stderr, flush=True)

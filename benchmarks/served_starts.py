"""Start a served deployment many times under a running heartbeat, and count the runs that fail to start.

Served deployments beat every 30 s from a thread of the flow-run process while the flow's own thread computes stage
keys. With keys computed by `ast.parse`, about one start in four died with `SystemError: AST constructor recursion
depth mismatch` (CPython 3.11's AST constructor is not thread-safe). This script is the acceptance check that no
start fails that way: it owns everything it starts (a Prefect server on a free port, a temporary home and store, the
served process) and stops it all at the end.

    .venv/bin/python benchmarks/served_starts.py [--runs 100] [--parallel 4]   (or: make served-starts)

Each run is `infimmr-stage/stage-curate` on the smoke recipe with the curate artifact already stored: the run
starts, plans the stage (computing its key from the code) and finds it Cached. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from infimmr.flows.server import wait_healthy

ROOT = Path(__file__).resolve().parents[1]
INFIMMR = [sys.executable, "-m", "infimmr.flows.cli"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:  # still ours: its pid and group cannot have been reused
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _deployment_id(api: str, served: subprocess.Popen, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.poll() is not None:
            raise RuntimeError("infimmr deploy --serve exited")
        resp = httpx.get(f"{api}/deployments/name/infimmr-stage/stage-curate", timeout=30)
        if resp.status_code == 200:
            return resp.json()["id"]
        time.sleep(1)
    raise RuntimeError("the stage-curate deployment never appeared")


def create_run(api: str, deployment: str, parameters: dict) -> str:
    for _ in range(20):  # a busy SQLite server answers 503 for a moment: that is not a failed start
        resp = httpx.post(f"{api}/deployments/{deployment}/create_flow_run", timeout=60, json={"parameters": parameters})
        if resp.status_code != 503:
            break
        time.sleep(3)
    resp.raise_for_status()
    return resp.json()["id"]


def _logs(api: str, run_id: str) -> str:
    resp = httpx.post(f"{api}/logs/filter", timeout=60, json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
    return "\n".join(entry["message"] for entry in resp.json())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=4, help="runs in flight at once")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="infimmr-served-starts-") as tmp:
        home, port = Path(tmp), _free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": api, "DO_NOT_TRACK": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": api,
               "INFIMMR_CACHE_DIR": str(home / "cache")}
        store = f"file://{home / 'store'}"
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        served = None
        try:
            wait_healthy(api, server, timeout=180)
            print("storing the curate artifact once ...", file=sys.stderr)
            with (home / "curate.log").open("w") as log:
                subprocess.run(INFIMMR + ["stage", "curate", "--recipe", "smoke", "--store", store], env=env, cwd=home,
                               check=True, stdout=log, stderr=subprocess.STDOUT)
            with (home / "serve.log").open("w") as log:
                served = subprocess.Popen(INFIMMR + ["deploy", "--serve", "--no-schedule"], env=env, cwd=home,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deployment = _deployment_id(api, served)
            started = time.perf_counter()
            states: dict[str, int] = {}
            system_errors: list[str] = []
            failures: dict[str, str] = {}  # run id -> why, for every run that did not complete
            todo, running = args.runs, set()
            while todo or running:
                while todo and len(running) < args.parallel:
                    running.add(create_run(api, deployment, {"recipe_name": "smoke",
                                                              "overrides": [f"store.uri={store}"]}))
                    todo -= 1
                time.sleep(1)
                for run_id in list(running):
                    run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
                    if run["state_type"] in FINAL:
                        running.discard(run_id)
                        states[run["state_type"]] = states.get(run["state_type"], 0) + 1
                        text = _logs(api, run_id) + (run["state"].get("message") or "")
                        if "SystemError" in text:
                            system_errors.append(run_id)
                        if run["state_type"] != "COMPLETED":
                            failures[run_id] = (run["state"].get("message") or "") + "\n" + text[-2000:]
                        print(f"{sum(states.values())}/{args.runs} {run['state_type']}", file=sys.stderr)
            print(json.dumps({"runs": args.runs, "states": states, "system_errors": len(system_errors),
                              "system_error_runs": system_errors, "failures": failures, "seconds": round(time.perf_counter() - started, 1)}))
            return 0 if not system_errors and states.get("COMPLETED") == args.runs else 1
        finally:
            if served is not None:
                stop(served)
            stop(server, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())

"""`infimmr server` (a real Prefect server, the crash automation, a worker, shutdown order) and the pure helpers
behind the UI artifacts."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from PIL import Image

from infimmr.tasks.artifacts import curve_rows, line_chart_png, table_rows, training_step
from tests.conftest import _free_port


def test_server_creates_automation_and_pool_and_stops_workers_first(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "home"), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "infimmr.flows.cli", "server", "--port", str(port),
                             "--worker", "infimmr-test-pool"], env=env, stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:  # drain stderr all along: a full pipe would block the server and its worker
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("prefect server:"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(180), "".join(lines)[-4000:]
        automations = httpx.post(f"{api}/automations/filter", json={}, timeout=30).json()
        [crash] = [a for a in automations if a["name"] == "infimmr: mark crashed when heartbeats stop"]
        assert crash["trigger"]["posture"] == "Proactive" and crash["actions"][0]["state"] == "CRASHED"
        assert httpx.get(f"{api}/work_pools/infimmr-test-pool", timeout=30).json()["type"] == "process"
        deadline = time.monotonic() + 60
        while not httpx.post(f"{api}/work_pools/infimmr-test-pool/workers/filter", json={}, timeout=30).json():
            assert time.monotonic() < deadline, "the worker never polled its pool"
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends; the server and worker are in sessions of their own
        proc.wait(timeout=90)
        reader.join(timeout=10)
    stops = [line.split(" (")[0] for line in lines if line.startswith("stopped")]
    assert stops == ["stopped worker", "stopped prefect server"]


def test_curve_rows_keep_training_steps_only():
    lines = [
        json.dumps({"loss": 0.1, "reward": 0.5, "rewards/accuracy/mean": 0.25, "step": 1, "grad_norm": 2.0}),
        "not json",
        json.dumps({"train_runtime": 12.0, "step": 2}),  # TRL's closing summary: no reward
        json.dumps({"reward": 0.75, "step": 2, "kl": 0.01}),
    ]
    assert curve_rows(lines) == [
        {"step": 1, "reward": 0.5, "rewards/accuracy/mean": 0.25, "loss": 0.1},
        {"step": 2, "reward": 0.75, "kl": 0.01},
    ]


@pytest.mark.parametrize(
    "table, rows",
    [
        # scores.json: one record per set; the protocol and per-model results are nested deeper.
        ({"a": {"n": 2, "accuracy": 50.0, "protocol": {"x": {"y": 1}}, "results": {"m": {"rule": {}}}}},
         [{"name": "a", "n": 2, "accuracy": 50.0}]),
        # curriculum.json: rows with a flat record of scores per benchmark.
        ({"schema": 1, "rows": [{"label": "phase3", "kind": "measured", "scores": {"mathverse": 41.2, "mathvista": None}}]},
         [{"label": "phase3", "kind": "measured", "scores.mathverse": 41.2, "scores.mathvista": None}]),
        ([{"a": 1}, "junk"], [{"a": 1}]),
        ({"a": {"n": 1}, "note": "text"}, [{"name": "a", "n": 1}]),
        ("not a table", []),
    ],
)
def test_table_rows(table, rows):
    assert table_rows(table) == rows


@pytest.mark.parametrize(
    "line, is_step",
    [
        ("{'loss': 0.0, 'reward': 0.25, 'epoch': 1.0}", True),
        ("{'train_runtime': 3.2, 'epoch': 1.0}", False),
        ("[phase1] {'reward': broken", False),
        ("reward 0.5", False),
    ],
)
def test_training_step_lines(line, is_step):
    assert training_step(line) is is_step


def test_line_chart_is_a_png_with_the_series_drawn():
    rows = [{"step": s, "reward": r} for s, r in [(1, 0.1), (2, 0.4), (3, 0.3)]]
    image = Image.open(io.BytesIO(line_chart_png(rows, ("reward",))))
    assert image.format == "PNG" and image.size == (480, 280)
    assert (0x1F, 0x77, 0xB4) in {colour for _, colour in image.convert("RGB").getcolors(1 << 16)}
    flat = Image.open(io.BytesIO(line_chart_png([{"step": 1, "reward": 0.0}], ("reward",))))  # one point, no range
    assert flat.size == (480, 280)


# A base stage's log as the warm-up writes it: the vision pre-warm, the dev checks, and the closing line.
WARMUP_LOG = "\n".join(json.dumps(e) for e in [
    {"stage": "vision", "step": 300, "loss": 0.0001, "label_accuracy": 1.0},
    {"stage": "warmup", "step": 25, "loss": 2.7, "weights": {"a": 1.0, "b": 1.0}, "dev_accuracy": {"a": 0.0, "b": 0.1}},
    {"stage": "warmup", "step": 50, "loss": 1.0, "weights": {"a": 0.0, "b": 1.0}, "dev_accuracy": {"a": 0.4, "b": 0.2}},
    {"stage": "warmup", "kept_step": 50, "steps": 50},
]) + "\n"
WARMUP_ROWS = [{"step": 25, "dev_accuracy.a": 0.0, "dev_accuracy.b": 0.1},
               {"step": 50, "dev_accuracy.a": 0.4, "dev_accuracy.b": 0.2}]


def test_warmup_rows_are_the_dev_checks():
    from infimmr.tasks.artifacts import warmup_rows

    assert warmup_rows(WARMUP_LOG) == WARMUP_ROWS
    assert warmup_rows("") == []


def test_stage_files_become_ui_artifacts(prefect_server, tmp_path):
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from infimmr.tasks.artifacts import stage_artifacts
    from infimmr_core.store import open_store

    store = open_store(str(tmp_path / "store"))
    files = {
        ("curate", "report.json"): json.dumps({
            "rows_in": 48, "kept": 40, "steps": [{"step": "load", "remaining": 44}], "filtered": {"empty answer": 4},
            "quarantined": {"missing field problem": 4}, "decontamination": {}, "pools": {"text": 20},
            "pass_rate_bins": [0.0, 0.5, 1.0], "pass_rate_histogram": [10, 30],
        }),
        ("phase1", "metrics.jsonl"): "\n".join(json.dumps({"step": s, "reward": r}) for s, r in [(1, 0.1), (2, 0.3)]),
        ("evaluate", "scores.json"): json.dumps({"geo": {"n": 4, "accuracy": 25.0, "protocol": {"decoding": "greedy"}}}),
        ("evaluate", "curriculum.json"): json.dumps({"rows": [{"label": "phase3", "scores": {"geo": 25.0}}]}),
        ("evaluate", "report.md"): "| model | geo |\n|---|---|\n| phase3 | 25.00 |",
        ("publish", "hub/README.md"): "# card",
        ("base", "warmup.jsonl"): WARMUP_LOG,
    }
    for (stage, name), text in files.items():
        path = tmp_path / "store" / stage / "k" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    @flow  # artifacts belong to a run, as they do in the pipeline
    def render() -> None:
        for stage in ("base", "curate", "phase1", "evaluate", "publish"):
            metrics = {"repo_id": "me/m", "repo_url": "http://hub.local/me/m"} if stage == "publish" else {}
            stage_artifacts(store, stage, "k", metrics)

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        run_id = str(render(return_state=True).state_details.flow_run_id)
    # The server is shared with the pipeline tests, which create artifacts under the same keys: read this run's only.
    query = {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    found = {a["key"]: a for a in httpx.post(f"{prefect_server}/artifacts/filter", json=query, timeout=30).json()}
    assert json.loads(found["curate-counts"]["data"]) == [
        {"kind": "rows in", "name": "", "count": 48}, {"kind": "after step", "name": "load", "count": 44},
        {"kind": "filtered", "name": "empty answer", "count": 4},
        {"kind": "quarantined", "name": "missing field problem", "count": 4}, {"kind": "pool", "name": "text", "count": 20},
    ]
    assert json.loads(found["curate-pass-rates"]["data"]) == [
        {"pass_rate": "0.0-0.5", "samples": 10, "bar": "#" * 7}, {"pass_rate": "0.5-1.0", "samples": 30, "bar": "#" * 20},
    ]
    assert json.loads(found["phase1-curve"]["data"]) == [{"step": 1, "reward": 0.1}, {"step": 2, "reward": 0.3}]
    assert found["phase1-plot"]["data"].startswith("![phase1 reward curve](data:image/png;base64,")
    assert json.loads(found["evaluate-scores"]["data"]) == [{"name": "geo", "n": 4, "accuracy": 25.0}]
    assert json.loads(found["evaluate-curriculum"]["data"]) == [{"label": "phase3", "scores.geo": 25.0}]
    assert '"decoding": "greedy"' in found["evaluate-protocol"]["data"] and "phase3" in found["evaluate-report"]["data"]
    assert found["publish-hub"]["data"] == "[me/m](http://hub.local/me/m)" and found["publish-card"]["data"] == "# card"
    assert json.loads(found["base-warmup"]["data"]) == WARMUP_ROWS

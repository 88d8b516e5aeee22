"""Curation shards are Prefect tasks of their own, each cached by its own key: when one shard's process dies, the
other shards are still stored, the stage fails naming the shard, and the rerun redoes that shard only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from test_pipeline import INFIMMR, run_json


def _worker_of(stage: str) -> int | None:
    """The pid of the running stage child process of `stage` (its spec lives in a temp dir named after the stage)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"infimmr_core.worker" in cmdline and any(f"infimmr-{stage}-".encode() in arg for arg in cmdline):
                return int(entry.name)
    return None


def test_a_killed_shard_is_the_only_one_redone(cli_env, tmp_path):
    args = ["stage", "curate", "--store", f"file://{tmp_path / 'store'}"]
    proc = subprocess.Popen(INFIMMR + args, env=cli_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if "shard-00001" in line and "running (key" in line:  # the task run of the second shard has started
            deadline = time.monotonic() + 60
            while (pid := _worker_of("curate-shard")) is None:
                assert time.monotonic() < deadline, "the shard's process never appeared"
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)  # as if its machine lost it
            break
    seen += proc.stderr.read()
    assert proc.wait(timeout=300) == 1
    text = "".join(seen)
    assert "1 of 3 curate-shard runs failed" in text and "shard-00001: stage curate-shard exited with code -9" in text
    assert "shard-00002" in text  # the shard after the failed one still ran

    summary = run_json(args, cli_env, tmp_path)
    assert summary["stages"]["curate"]["state"] == "completed"
    assert summary["stages"]["curate"]["parts"] == {
        "curate-collect": "cached", "shard-00000": "cached", "shard-00001": "completed", "shard-00002": "cached",
    }
    again = run_json(args, cli_env, tmp_path)
    assert again["stages"]["curate"]["state"] == "cached" and "parts" not in again["stages"]["curate"]

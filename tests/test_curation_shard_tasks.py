"""Curation shards are Prefect tasks of their own, each cached by its own key: when one shard's process dies, the
other shards are still stored, the stage fails naming the shard, and the rerun redoes that shard only."""

from __future__ import annotations

import subprocess
import time

from processes import signal_descendant
from test_pipeline import INFIMMR, run_json


def _is_worker(args: list[str]) -> bool:
    """Matches a stage process; curation's parts run one after another in one (runner's warm worker), so the one
    there is when a shard's own first line has been printed is the one running that shard."""
    return "infimmr_core.worker" in args


def test_a_killed_shard_is_the_only_one_redone(cli_env, tmp_path):
    args = ["stage", "curate", "--store", f"file://{tmp_path / 'store'}"]
    proc = subprocess.Popen(INFIMMR + args, env=cli_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if "shard-00001" in line and "[curate-shard] running on" in line:  # the second shard's work has started
            deadline = time.monotonic() + 60
            # Only below this test's own CLI process: another pipeline's shard on this machine looks the same.
            while signal_descendant(proc.pid, _is_worker) is None:  # SIGKILL: its machine is lost
                assert time.monotonic() < deadline, "the shard's process never appeared"
                time.sleep(0.05)
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

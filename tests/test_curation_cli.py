"""`infimmr curate`: one source outside the pipeline, the report as one JSON object, the artifact reused on rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from curation_fixtures import write_jsonl


def test_curate_command_json_report(tmp_path):
    source = write_jsonl(tmp_path / "mine.jsonl", [{"q": "What is 2+2?", "a": "4"}, {"q": "What is 3+3?", "a": ""}, {"a": "1"}])
    command = [
        sys.executable, "-m", "infimmr.flows.cli", "curate", "--source", str(source), "--mapping", "problem=q",
        "--mapping", "answer=a", "--out", f"file://{tmp_path / 'store'}", "--json",
        "--set", "curation.captioning.enabled=false", "--set", "phases.2.input=image",
        "--set", "curation.difficulty.enabled=false", "--set", "curation.max_quarantine_fraction=0.5",
    ]
    env = {**os.environ, "INFIMMR_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rows_in"], report["kept"]) == (3, 1)
    assert report["filtered"] == {"empty answer": 1}
    assert report["quarantined"] == {"missing field q": 1}
    assert report["artifacts"]["quarantine.jsonl"].startswith(report["uri"])
    # The stage ran in its parts: collect, one shard (one good row), the merge; with a progress bar over the shards.
    assert report.pop("parts") == {"curate-collect": "completed", "shard-00000": "completed", "curate": "completed"}
    assert "curate shards: 100%" in done.stderr
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    second = json.loads(again.stdout)
    assert second.pop("parts") == {"curate": "cached"}
    assert second == report


def test_curate_command_rejects_bad_mapping(tmp_path):
    done = subprocess.run([sys.executable, "-m", "infimmr.flows.cli", "curate", "--source", "x.jsonl", "--mapping", "problem",
                           "--out", f"file://{tmp_path}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not FIELD=COLUMN" in done.stderr

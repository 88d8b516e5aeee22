"""Poisoned Prefect result records in the shared store, end to end through the real CLI (issue 13, item 1).

Anyone who can write `<store>/_prefect/results/` once could run code in every `infimmr run` that uses the store: a
record declaring `{"type": "pickle"}` was unpickled by the CLI itself. Here each record is replaced by one that would
create a marker file when unpickled, or by a well-formed JSON record that lies about its artifact; the next run must
never run the payload, must name the refused record, and must come back with the stored artifacts unchanged. A genuine
record is still used (the stage shows Cached).

Self-contained on purpose (no imports from infimmr), so the same file can be run against an older checkout."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest

from test_pipeline import infimmr

pytestmark = pytest.mark.reliability

FAST = ["--set", "curation.captioning.enabled=false", "--set", "curation.difficulty.enabled=false",
        "--set", "phases.2.input=image"]
# For the whole pipeline also: one training step per phase, one evaluation set of two items for the last phase.
SMALL = [*FAST, *[arg for n in (1, 2, 3) for arg in ("--set", f"phases.{n}.max_steps=1")],
         "--set", "evaluation.models=[phase3]", "--set", "evaluation.reference_rows=[]",
         "--set", "evaluation.sets=[{name: synthetic-image, kind: synthetic_image, count: 2, seed: 10002, input: image}]"]


class Touch:
    """Unpickling this opens (creates) `path`."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def record_path(store: Path, store_uri: str, summary: dict, stage: str) -> Path:
    key = summary["stages"][stage]["uri"].rsplit("/", 1)[1]
    name = f"infimmr-{stage}-{hashlib.sha256((store_uri + '|' + key).encode()).hexdigest()[:40]}"
    return store / "_prefect" / "results" / name


def poison_with_pickle(path: Path, marker: Path) -> None:
    record = json.loads(path.read_text())
    record["metadata"]["serializer"] = {"type": "pickle", "picklelib": "pickle"}
    record["result"] = base64.encodebytes(pickle.dumps(Touch(marker))).decode()
    path.write_text(json.dumps(record))


def forge_digest(path: Path) -> None:
    """A record in exactly our format whose artifact reference names content the store does not hold."""
    record = json.loads(path.read_text())
    result = json.loads(record["result"])
    result["data"]["digest"] = "0" * 64
    record["result"] = json.dumps(result)
    path.write_text(json.dumps(record))


def run(args: list[str], env: dict, cwd: Path) -> tuple[dict, str]:
    proc = infimmr(args + ["--json"], env, cwd)
    return json.loads(proc.stdout), proc.stderr


def outcome(summary: dict) -> dict[str, tuple[str, str, str]]:
    return {name: (s["state"], s["prefect_state"], s["digest"]) for name, s in summary["stages"].items()}


@pytest.fixture(scope="module")
def pipeline_run(prefect_server, tmp_path_factory):
    """One `infimmr run` that both tests start from: its store holds every stage's artifact and genuine record, and
    each test leaves it so (a refused record is rewritten). Its environment is conftest's cli_env, for the module."""
    root = tmp_path_factory.mktemp("records-cli")
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(root / "prefect-home"),
           "INFIMMR_CACHE_DIR": str(root / "infimmr-cache"), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    store = root / "store"
    first, _ = run(["run", "--recipe", "smoke", "--store", f"file://{store}", *SMALL], env, root)
    return root, env, store, first


# `make test-reliability` and `make test-slow`; test_reliability_records checks records by default.
@pytest.mark.slow
def test_poisoned_and_forged_records_of_a_stage_are_refused(pipeline_run, tmp_path):
    """`infimmr stage curate` (about 20 s a run) on the pipeline's store: a pickled record, then a forged one, then
    the genuine one."""
    cwd, cli_env, store, first = pipeline_run
    store_uri = f"file://{store}"
    args = ["stage", "curate", "--recipe", "smoke", "--store", store_uri, *FAST]
    digest = first["stages"]["curate"]["digest"]
    record = record_path(store, store_uri, first, "curate")
    assert record.is_file()

    marker = tmp_path / "code-ran"
    poison_with_pickle(record, marker)
    second, log = run(args, cli_env, cwd)
    assert not marker.exists(), "a result record from the store was unpickled"
    assert "refused the Prefect result record" in log and "declares serializer 'pickle'" in log
    assert outcome(second) == {"curate": ("cached", "Completed", digest)}  # looked up in the store instead
    assert json.loads(record.read_text())["metadata"]["serializer"]["type"] == "json"  # and the record rewritten

    forge_digest(record)
    third, log = run(args, cli_env, cwd)
    assert "does not match the manifest of curate/" in log
    assert outcome(third) == {"curate": ("cached", "Completed", digest)}

    fourth, log = run(args, cli_env, cwd)
    assert "refused" not in log
    assert outcome(fourth) == {"curate": ("cached", "Cached", digest)}  # a genuine record is still used


@pytest.mark.slow
def test_poisoned_records_in_a_whole_pipeline_run(pipeline_run, tmp_path):
    """`infimmr run --recipe smoke`: curate's record pickled, phase 1's forged, phase 3's a compressed pickle; the
    rerun runs no payload, reuses every stored artifact and uses the genuine records of the other stages."""
    cwd, cli_env, store, first = pipeline_run
    store_uri = f"file://{store}"
    args = ["run", "--recipe", "smoke", "--store", store_uri, *SMALL]
    digests = {name: s["digest"] for name, s in first["stages"].items()}

    marker = tmp_path / "code-ran"
    poison_with_pickle(record_path(store, store_uri, first, "curate"), marker)
    forge_digest(record_path(store, store_uri, first, "phase1"))
    phase3 = record_path(store, store_uri, first, "phase3")
    poison_with_pickle(phase3, marker)
    compressed = json.loads(phase3.read_text())
    compressed["metadata"]["serializer"] = {"type": "compressed/pickle", "picklelib": "pickle"}
    phase3.write_text(json.dumps(compressed))

    again, log = run(args, cli_env, cwd)
    assert not marker.exists(), "a result record from the store was unpickled"
    assert log.count("refused the Prefect result record") == 3
    refused = {"curate", "phase1", "phase3"}
    assert outcome(again) == {
        name: ("cached", "Completed" if name in refused else "Cached", digests[name]) for name in digests}

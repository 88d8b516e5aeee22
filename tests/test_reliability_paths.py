"""Nothing derived from a URI, a key, a manifest or a caller's path resolves outside its root, and no setting is
infinite (issue 13, item 7). Row image paths are covered by test_reliability_rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infimmr_core import store_root
from infimmr_core.recipes import RecipeError, load_recipe
from infimmr_core.store import LocalStore, StoreError, open_store

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize("uri", [
    "s3://bucket/..", "s3://bucket/a/../../..", "s3://bucket/../../../../tmp/escape", "s3://bucket/a//b",
    "s3://bucket/./a", "s3://bucket/a\\..\\b", "s3://bucket/a\x00b", "s3://../x", "s3://.hidden/x",
])
def test_s3_locations_that_would_leave_the_cache_are_refused(uri, tmp_path):
    with pytest.raises(StoreError, match="invalid S3"):
        open_store(uri, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/runs", "s3://my.bucket/a/b.c/d-e_f", "s3://b/x/"])
def test_plain_s3_locations_cache_inside_the_cache_dir(uri, tmp_path):
    store = open_store(uri, cache_dir=tmp_path / "cache")
    assert store.cache_path("curate", "k1").resolve().is_relative_to((tmp_path / "cache").resolve())


def _stored(tmp_path: Path) -> LocalStore:
    store = open_store(f"file://{tmp_path}/store")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("inside")
    (src / "sub" / "b.txt").write_text("deeper")
    store.put_dir("curate", "k1", src, key_inputs={})
    (tmp_path / "outside.txt").write_text("secret")
    return store


@pytest.mark.parametrize("path", ["../../../outside.txt", "/etc/hostname", "sub/../../k1/a.txt", "a\\..\\b",
                                  "MANIFEST.json", "", "a\x00b"])
def test_read_file_stays_inside_its_artifact(tmp_path, path):
    store = _stored(tmp_path)
    with pytest.raises(StoreError, match="invalid file path"):
        store.read_file("curate", "k1", path)


def test_read_file_reads_inside_and_no_symlink_leads_out(tmp_path):
    store = _stored(tmp_path)
    assert store.read_file("curate", "k1", "sub/b.txt") == b"deeper"
    (store.root / "curate" / "k1" / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert store.read_file("curate", "k1", "link.txt") is None


def test_s3_read_file_refuses_escaping_paths(s3_env):
    store = open_store(f"s3://{s3_env}/runs")
    with pytest.raises(StoreError, match="invalid file path"):
        store.read_file("curate", "k1", "../../other/MANIFEST.json")


@pytest.mark.parametrize("stage,key", [("curate", "a\x00b"), ("curate", "k" * 300), ("..", "k"), ("curate", "a/b")])
def test_names_are_single_path_segments(tmp_path, stage, key):
    store = open_store(f"file://{tmp_path}/store")
    with pytest.raises(StoreError, match="invalid"):
        store.manifest(stage, key)


@pytest.mark.parametrize("root,says", [
    ("/etc", "system directory"), ("/", "top-level or home directory"), ("/usr/share/x", "system directory"),
    ("/proc/self", "system directory"), ("/tmp", "top-level or home directory"), ("~", "top-level or home directory"),
])
def test_system_and_top_level_directories_are_never_stores(root, says):
    with pytest.raises(StoreError, match=says):
        open_store(f"file://{root}")


def test_a_root_must_be_new_empty_or_a_store(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("a source checkout")
    with pytest.raises(StoreError, match="is not empty and is not an infimmr store"):
        open_store(f"file://{project}")
    with pytest.raises(StoreError, match="is not a directory"):
        open_store(f"file://{project / 'README.md'}")

    store = _stored(tmp_path)  # a new directory becomes a store (and is marked) on its first write
    assert (store.root / ".infimmr-store").is_file()
    assert open_store(store.uri).manifest("curate", "k1") is not None
    (tmp_path / "empty").mkdir()
    open_store(f"file://{tmp_path / 'empty'}")

    (store.root / ".infimmr-store").unlink()  # a store written before the marker: recognised by its shape
    assert open_store(store.uri).manifest("curate", "k1") is not None
    (store.root / "notes.txt").write_text("not a store's")
    with pytest.raises(StoreError, match="not an infimmr store"):
        open_store(store.uri)



def test_a_root_another_process_is_claiming_is_accepted(tmp_path, monkeypatch):
    """Several processes open one new store at once (a multi-node run, concurrent lease holders): while one looks
    for the marker, another claims the root and writes its first lease. The looker must see a store being born, not
    'a directory that is not empty' (a flaky CI failure of test_one_holder_at_a_time_among_processes)."""
    root = tmp_path / "store"
    root.mkdir()
    real_is_file = Path.is_file
    claimed = []

    def is_file_while_another_claims(path: Path) -> bool:
        found = real_is_file(path)
        if path == root / store_root.MARKER and not claimed:
            claimed.append(True)  # the other process acts right after this one looked
            store_root.claim(root)
            (root / "phase1" / "_lease").mkdir(parents=True)
        return found

    monkeypatch.setattr(Path, "is_file", is_file_while_another_claims)
    open_store(f"file://{root}")
    assert claimed


def test_cli_refuses_a_system_directory_as_store(tmp_path):
    done = subprocess.run([sys.executable, "-m", "infimmr.flows.cli", "stage", "curate", "--store", "file:///etc"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2 and "refusing the store file:///etc: /etc is a system directory" in done.stderr


@pytest.mark.parametrize("override", ["phases.1.learning_rate=.inf", "phases.2.learning_rate=.nan",
                                      "curation.max_quarantine_fraction=.nan", "rewards.timeout_seconds=.inf",
                                      "evaluation.generation.temperature=.inf"])
def test_infinite_and_nan_settings_are_refused(override):
    with pytest.raises(RecipeError, match="finite number"):
        load_recipe("smoke", [override])

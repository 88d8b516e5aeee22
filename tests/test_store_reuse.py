"""A forced recompute does not send again the files the store already holds (issue 15): counted on the wire (the S3
requests the store's own client sends to the moto server) and on disk (the local store's inodes), never by timing.

A held file is one still stored whole: on S3 with the ETag recorded at its commit, locally with its sha256. A file
damaged since its commit is sent again: a forced recompute is also how an operator repairs an artifact."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from conftest import STORE_PREFIX as PREFIX

from infimmr_core.store import MANIFEST_NAME, LocalStore, S3Store, open_store
from trees import read_tree, write_tree

STAGE = "phase1"
TREE = {
    "model.safetensors": bytes(range(256)) * 400,
    "tokenizer/vocab.json": b'{"a": 1}',
    "config.json": b'{"layers": 2}',
}


class WireLog:
    """The S3 requests a store's client sends: (method, object key below the artifact, whether it is a copy)."""

    def __init__(self, store: S3Store):
        self.requests: list[tuple[str, str, bool]] = []
        store._client.raw.meta.events.register("before-send.s3", self._record)

    def _record(self, request, **_kwargs) -> None:
        path = request.url.split("?")[0]
        self.requests.append((request.method, path, "x-amz-copy-source" in request.headers))

    def uploads(self) -> list[str]:
        """Paths of the objects whose bytes were sent (PUTs that are not copies inside the bucket), manifests too."""
        return sorted(path.rsplit("/", 1)[-1] for method, path, copy in self.requests if method == "PUT" and not copy)

    def copies(self) -> int:
        return sum(1 for method, _, copy in self.requests if method == "PUT" and copy)


def s3_store(bucket: str) -> S3Store:
    store = open_store(f"s3://{bucket}/{PREFIX}")
    assert isinstance(store, S3Store)
    return store


def test_s3_unchanged_forced_recompute_sends_only_the_manifest(s3_env, tmp_path):
    store = s3_store(s3_env)
    first = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", TREE), key_inputs={}, metrics={"run": 1})
    wire = WireLog(store)

    again = store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", TREE), key_inputs={}, metrics={"run": 2},
                          replace=True)

    assert wire.uploads() == [MANIFEST_NAME]
    assert wire.copies() == 0
    assert (store.last_put.uploaded_files, store.last_put.reused_files) == (0, len(TREE))
    assert again.digest == first.digest and again.version == first.version
    assert store.manifest(STAGE, "k1").metrics == {"run": 2}
    assert read_tree(store.get_dir(STAGE, "k1")) == TREE


def test_s3_forced_recompute_sends_only_the_changed_files(s3_env, tmp_path):
    store = s3_store(s3_env)
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", TREE), key_inputs={})
    changed = {**TREE, "config.json": b'{"layers": 3}', "new.txt": b"added"}
    wire = WireLog(store)

    new = store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", changed), key_inputs={}, replace=True)

    assert wire.uploads() == sorted(["config.json", "new.txt", MANIFEST_NAME])
    assert wire.copies() == 2  # the weights and the vocabulary, copied inside the bucket
    assert (store.last_put.uploaded_files, store.last_put.reused_files) == (2, 2)
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_env, Prefix=f"{PREFIX}/{STAGE}/k1/")["Contents"]
    assert sorted(o["Key"].split("/k1/")[1] for o in listed) == sorted(
        [MANIFEST_NAME] + [f"{new.version}/{p}" for p in changed])
    assert read_tree(store.get_dir(STAGE, "k1")) == changed


@pytest.mark.parametrize("damage", ["overwritten, same size", "removed"])
def test_s3_a_stored_file_damaged_since_its_commit_is_sent_again(s3_env, tmp_path, damage):
    store = s3_store(s3_env)
    first = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", TREE), key_inputs={})
    stored = f"{PREFIX}/{STAGE}/k1/{first.version + '/' if first.version else ''}model.safetensors"
    raw = boto3.client("s3")
    if damage == "removed":
        raw.delete_object(Bucket=s3_env, Key=stored)
    else:
        raw.put_object(Bucket=s3_env, Key=stored, Body=b"\x00" * len(TREE["model.safetensors"]))
    wire = WireLog(store)

    store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", TREE), key_inputs={}, replace=True)

    assert wire.uploads() == sorted(["model.safetensors", MANIFEST_NAME])
    assert read_tree(store.get_dir(STAGE, "k1")) == TREE


def test_local_forced_recompute_links_the_held_files(tmp_path):
    store = open_store(f"file://{tmp_path}/store")
    assert isinstance(store, LocalStore)
    first = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", TREE), key_inputs={})
    weights = store.get_dir(STAGE, "k1") / "model.safetensors"
    inode = weights.stat().st_ino

    same = store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", TREE), key_inputs={}, replace=True)
    assert same.version == first.version and store.last_put.uploaded_files == 0
    assert (store.get_dir(STAGE, "k1") / "model.safetensors").stat().st_ino == inode

    changed = {**TREE, "config.json": b'{"layers": 3}'}
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "c", changed), key_inputs={}, replace=True)
    out: Path = store.get_dir(STAGE, "k1")
    assert (out / "model.safetensors").stat().st_ino == inode  # a hard link, not a copy
    assert (store.last_put.uploaded_files, store.last_put.reused_files) == (1, 2)
    assert read_tree(out) == changed


def test_local_damaged_file_is_copied_again(tmp_path):
    store = open_store(f"file://{tmp_path}/store")
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", TREE), key_inputs={})
    weights = store.get_dir(STAGE, "k1", verify=False) / "model.safetensors"
    weights.write_bytes(b"\x00" * weights.stat().st_size)

    store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", TREE), key_inputs={}, replace=True)

    assert (store.last_put.uploaded_files, store.last_put.reused_files) == (1, 2)
    assert read_tree(store.get_dir(STAGE, "k1")) == TREE

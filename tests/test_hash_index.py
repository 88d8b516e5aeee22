"""The upload-side hash index (issue 15): a file whose stat identity is unchanged, and was hashed well after its last
write, is not read again; any change, a file hashed within the racy window, or a damaged index means hashing again.

Hashes are counted by a counting hasher handed to the index (or wrapped around the store's own hashing function),
never by timing. `clock` stands for the moment a hash is taken: `later` says it was taken 10 s after the file was
written, which is what a real upload of a directory written earlier sees, without the test waiting for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import astuple
from pathlib import Path

import pytest
from conftest import STORE_PREFIX as PREFIX

import infimmr_core.store as store_module
from infimmr_core.hash_index import (
    FORMAT,
    INDEX_DIR,
    RACY_MARGIN_NS,
    HashIndex,
    Seen,
    identity,
    index_path,
    load,
    parse_seen,
    prune,
    sha256_file,
    trusted,
)
from infimmr_core.store import ArtifactCorrupt, LocalStore, open_store
from trees import read_tree, write_tree

SHA = "ab" * 32
S = 1_000_000_000  # ns per second


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def later() -> int:
    return time.time_ns() + 10 * S


class CountingHasher:
    def __init__(self) -> None:
        self.paths: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.paths.append(path)
        return sha256_file(path)


@pytest.mark.parametrize("mtime, ctime, hashed_at, expected", [
    (100 * S, 100 * S, 100 * S - 1 * S, False),                 # hashed before the last write
    (100 * S, 100 * S, 100 * S, False),                         # in the same instant
    (100 * S, 100 * S, 100 * S + RACY_MARGIN_NS, False),        # at the margin: a same-tick write is still possible
    (100 * S, 100 * S, 100 * S + RACY_MARGIN_NS + 1, True),     # just past it
    (100 * S, 100 * S, 160 * S, True),                          # a minute later
    (100 * S, 159 * S, 160 * S, False),                         # an old mtime, but a status change (utime) just now
    (159 * S, 100 * S, 160 * S, False),                         # written just before the hash
])
def test_trusted_only_when_hashed_past_the_racy_margin(mtime, ctime, hashed_at, expected):
    assert trusted(Seen(10, mtime, ctime, 1, 1, hashed_at, SHA)) is expected


@pytest.mark.parametrize("value, expected", [
    ([10, 1, 2, 3, 4, 5, SHA], Seen(10, 1, 2, 3, 4, 5, SHA)),
    ([10, -1, -2, 3, 4, 5, SHA], Seen(10, -1, -2, 3, 4, 5, SHA)),  # files older than 1970 exist
    ([10, 1, 2, 3, 4, SHA], None),                   # one field short
    ([10, 1, 2, 3, 4, 5, SHA, 6], None),             # one too many
    ([True, 1, 2, 3, 4, 5, SHA], None),              # a bool is no size
    (["10", 1, 2, 3, 4, 5, SHA], None),
    ([10.0, 1, 2, 3, 4, 5, SHA], None),
    ([-1, 1, 2, 3, 4, 5, SHA], None),                # negative size
    ([10, 1, 2, -3, 4, 5, SHA], None),               # negative inode
    ([10, 1, 2, 3, 4, 5, SHA.upper()], None),
    ([10, 1, 2, 3, 4, 5, SHA[:-1]], None),
    ([10, 1, 2, 3, 4, 5, None], None),
    ({"size": 10}, None),
    (None, None),
    ("__import__('os')", None),
])
def test_parse_seen_accepts_only_well_formed_entries(value, expected):
    assert parse_seen(value) == expected


def _restore_mtime(path: Path, before: os.stat_result) -> None:
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def same_size_new_content(path: Path) -> None:
    before = path.stat()
    path.write_bytes(b"B" * before.st_size)
    _restore_mtime(path, before)


def new_size(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"!")


def replaced_by_copy(path: Path) -> None:  # same bytes, another inode (an editor's save, a `cp` over a temp name)
    tmp = path.with_name("copy.tmp")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


def touched(path: Path) -> None:
    os.utime(path)


def unchanged(path: Path) -> None:
    pass


@pytest.mark.parametrize("clock, change, hashed_again", [
    (later, unchanged, 0),
    (time.time_ns, unchanged, 1),   # hashed right after it was written: racy, so hashed again
    (later, same_size_new_content, 1),
    (later, new_size, 1),
    (later, replaced_by_copy, 1),
    (later, touched, 1),
])
def test_a_second_scan_hashes_only_what_may_have_changed(tmp_path, clock, change, hashed_again):
    folder, cache = tmp_path / "model", tmp_path / "cache"
    path = write_tree(folder, {"weights.bin": b"A" * 4096}) / "weights.bin"
    first = HashIndex(cache, folder, hasher=(count := CountingHasher()), clock=clock)
    assert first.sha256("weights.bin") == (sha(b"A" * 4096), 4096)
    first.save()
    change(path)

    second = HashIndex(cache, folder, hasher=count, clock=clock)
    got = second.sha256("weights.bin")

    assert len(count.paths) == 1 + hashed_again
    assert got == (sha(path.read_bytes()), path.stat().st_size)  # the content on disk now, whatever was remembered


def _index_with(cache: Path, folder: Path, rel: str, seen: Seen) -> None:
    path = index_path(cache, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, "dir": str(folder.resolve()), "files": {rel: list(astuple(seen))}}))


@pytest.mark.parametrize("hashed_after_write_ns, remembered_is_used", [
    (RACY_MARGIN_NS // 2, False),  # the racy case: written again in the same timestamp tick after being hashed
    (RACY_MARGIN_NS + S, True),    # hashed well after its last write: the identity stands for the content
])
def test_a_remembered_hash_from_the_racy_window_is_not_trusted(tmp_path, hashed_after_write_ns, remembered_is_used):
    # An entry with the file's exact stat identity but another content's sha256: what a write within the filesystem's
    # timestamp granularity after hashing leaves behind (no real clock makes that happen on demand).
    folder, cache = tmp_path / "model", tmp_path / "cache"
    path = write_tree(folder, {"f.txt": b"new content"}) / "f.txt"
    st = path.stat()
    stale = sha(b"old content")
    _index_with(cache, folder, "f.txt", Seen(*identity(st), max(st.st_mtime_ns, st.st_ctime_ns) + hashed_after_write_ns,
                                             stale))
    count = CountingHasher()

    got, _ = HashIndex(cache, folder, hasher=count).sha256("f.txt")

    assert (got == stale) is remembered_is_used
    assert len(count.paths) == (0 if remembered_is_used else 1)
    if not remembered_is_used:
        assert got == sha(b"new content")


@pytest.mark.parametrize("content", [
    b"",
    b"{not json",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"[" * 100_000,
    json.dumps({"format": 99, "dir": "DIR", "files": {}}).encode(),
    json.dumps({"format": FORMAT, "dir": "/another/directory", "files": {"f.txt": "ENTRY"}}).encode(),
    json.dumps({"format": FORMAT, "dir": "DIR", "files": []}).encode(),
    json.dumps({"format": FORMAT, "dir": "DIR", "files": {"f.txt": [1, 2, 3]}}).encode(),
    json.dumps({"format": FORMAT, "dir": "DIR", "files": {"f.txt": "ENTRY"}}).encode()[:-7],  # truncated
])
def test_a_damaged_or_foreign_index_is_ignored_and_rebuilt(tmp_path, content):
    folder, cache = tmp_path / "model", tmp_path / "cache"
    path = write_tree(folder, {"f.txt": b"hello"}) / "f.txt"
    st = path.stat()
    # "ENTRY" stands for the file's real identity with a wrong hash: trusted, it would give a wrong answer.
    entry = json.dumps([*identity(st), st.st_mtime_ns + 10 * S, SHA])
    raw = content.replace(b"DIR", str(folder.resolve()).encode()).replace(b'"ENTRY"', entry.encode())
    index_path(cache, folder).parent.mkdir(parents=True)
    index_path(cache, folder).write_bytes(raw)
    count = CountingHasher()

    index = HashIndex(cache, folder, hasher=count, clock=later)
    assert index.sha256("f.txt") == (sha(b"hello"), 5)
    index.save()

    assert len(count.paths) == 1
    assert set(load(index_path(cache, folder), str(folder.resolve()))) == {"f.txt"}  # rebuilt, valid


def test_the_index_lives_outside_the_directory_and_holds_only_its_latest_files(tmp_path):
    folder, cache = tmp_path / "model", tmp_path / "cache"
    tree = {"a.bin": b"a" * 100, "sub/b.json": b"{}", "c.txt": b"c"}
    write_tree(folder, tree)
    index = HashIndex(cache, folder, clock=later)
    for rel in tree:
        index.sha256(rel)
    index.save()
    (folder / "c.txt").unlink()
    index = HashIndex(cache, folder, clock=later)
    for rel in ("a.bin", "sub/b.json"):
        index.sha256(rel)
    index.save()

    assert read_tree(folder) == {"a.bin": b"a" * 100, "sub/b.json": b"{}"}  # nothing was added to the directory
    assert index.path.is_relative_to(cache / INDEX_DIR)
    assert set(load(index.path, str(folder.resolve()))) == {"a.bin", "sub/b.json"}  # the deleted file is dropped


def test_prune_keeps_the_most_recently_used_indexes_and_removes_dead_temp_files(tmp_path):
    now = time.time_ns()
    for i in range(5):
        (tmp_path / f"{i}.json").write_text("{}")
        os.utime(tmp_path / f"{i}.json", ns=(now - i * S, now - i * S))  # 0.json used last
    for name, age in ((".x.json.tmp-old", 2 * 3600 * S), (".y.json.tmp-new", S)):
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, ns=(now - age, now - age))

    removed = prune(tmp_path, keep=2, now_ns=now)

    assert sorted(p.name for p in removed) == [".x.json.tmp-old", "2.json", "3.json", "4.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".y.json.tmp-new", "0.json", "1.json"]


def test_an_index_that_cannot_be_saved_costs_only_the_shortcut(tmp_path):
    folder = write_tree(tmp_path / "model", {"f.txt": b"x"})
    cache = tmp_path / "not-a-dir"
    cache.write_text("a file where the cache dir should be")
    index = HashIndex(cache, folder)

    assert index.sha256("f.txt") == (sha(b"x"), 1)
    index.save()  # logs a warning, raises nothing


def test_concurrent_writers_leave_a_valid_index(tmp_path):
    folder, cache = tmp_path / "model", tmp_path / "cache"
    tree = {f"f{i}.txt": bytes([i]) * i for i in range(20)}
    write_tree(folder, tree)
    errors: list[BaseException] = []

    def scan(rels: list[str]) -> None:
        try:
            for _ in range(10):
                index = HashIndex(cache, folder, clock=later)
                for rel in rels:
                    index.sha256(rel)
                index.save()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=scan, args=(sorted(tree)[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    saved = load(index_path(cache, folder), str(folder.resolve()))
    assert saved and all(seen.sha256 == sha(tree[rel]) for rel, seen in saved.items())  # one writer's whole index


# Store level: put_dir's scan goes through the index; downloads and verification still hash every byte.
TREE = {
    "model.safetensors": bytes(range(256)) * 400,
    "tokenizer/vocab.json": b'{"a": 1}',
    "config.json": b'{"layers": 2}',
}


@pytest.fixture(scope="module")
def aged_tree(tmp_path_factory):
    """TREE written more than the racy margin ago (read only by the tests that use it)."""
    folder = write_tree(tmp_path_factory.mktemp("aged") / "model", TREE)
    time.sleep(RACY_MARGIN_NS / S + 0.2)
    return folder


@pytest.fixture
def hash_calls(monkeypatch):
    """The paths the store hashes, through its own hashing function (wrapped, not replaced)."""
    calls: list[Path] = []
    real = store_module._sha256_file

    def counting(path: Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(store_module, "_sha256_file", counting)
    return calls


def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    if kind == "local":
        return LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    bucket = request.getfixturevalue("s3_env")  # a fresh bucket, and INFIMMR_CACHE_DIR under tmp_path
    return open_store(f"s3://{bucket}/{PREFIX}")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_put_dir_of_an_unchanged_directory_hashes_none_of_its_files_again(kind, aged_tree, hash_calls, tmp_path,
                                                                          request):
    store = _make_store(kind, tmp_path, request)
    first = store.put_dir("phase1", "k1", aged_tree, key_inputs={})
    sources = [p for p in hash_calls if p.is_relative_to(aged_tree)]
    assert len(sources) == len(TREE)
    hash_calls.clear()

    again = store.put_dir("phase1", "k1", aged_tree, key_inputs={}, replace=True)

    assert [p for p in hash_calls if p.is_relative_to(aged_tree)] == []
    assert (again.digest, again.files, again.version) == (first.digest, first.files, first.version)
    assert store.last_put.uploaded_files == 0
    assert read_tree(store.get_dir("phase1", "k1")) == TREE


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_put_dir_uploads_a_file_changed_in_place_with_its_mtime_restored(kind, tmp_path, request):
    store = _make_store(kind, tmp_path, request)
    folder = write_tree(tmp_path / "model", TREE)
    store.put_dir("phase1", "k1", folder, key_inputs={})
    path = folder / "config.json"
    same_size_new_content(path)

    again = store.put_dir("phase1", "k1", folder, key_inputs={}, replace=True)

    assert {f.path: f.sha256 for f in again.files}["config.json"] == sha(b"B" * len(TREE["config.json"]))
    assert store.last_put.uploaded_files == 1
    assert read_tree(store.get_dir("phase1", "k1"))["config.json"] == b"B" * len(TREE["config.json"])


def test_verifying_a_local_artifact_still_hashes_every_file(aged_tree, hash_calls, tmp_path):
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    store.put_dir("phase1", "k1", aged_tree, key_inputs={})
    hash_calls.clear()
    folder = store.get_dir("phase1", "k1", verify=True)
    assert sorted(p.relative_to(folder).as_posix() for p in hash_calls) == sorted(TREE)

    stored = folder / "config.json"  # damaged in place, same size, mtime restored
    stored.chmod(0o644)
    same_size_new_content(stored)
    with pytest.raises(ArtifactCorrupt, match="config.json"):
        store.get_dir("phase1", "k1", verify=True)

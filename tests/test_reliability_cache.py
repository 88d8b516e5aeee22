"""The local S3 download cache (issue 13, item 6): verified by content before it is handed back, bounded with LRU
eviction of whole artifacts, and cleaned of what interrupted downloads leave behind.

The store is real (moto S3 server); requests are counted by the fault proxy (no faults injected here)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from faulty_s3_proxy import FaultyS3Proxy
from infimmr_core import download_cache, store as store_module
from infimmr_core.store import MANIFEST_NAME, S3Store, open_store
from trees import read_tree, write_tree

pytestmark = pytest.mark.reliability

STAGE = "curate"
TREE = {"model.bin": bytes(range(256)) * 40, "sub/config.json": b'{"layers": 2}\n'}  # 10,254 bytes
SIZE = sum(len(v) for v in TREE.values())


@pytest.fixture(scope="module")
def counter(s3_server):
    with FaultyS3Proxy(s3_server.endpoint_url) as proxy:  # rate 0: it only counts
        yield proxy


@pytest.fixture(autouse=True)
def fresh_process():
    """Each test starts as a process that has handed out no cache directory yet."""
    store_module._HANDED_OUT.clear()
    yield
    store_module._HANDED_OUT.clear()



def s3(bucket: str, cache: Path, endpoint: str | None = None, **kwargs) -> S3Store:
    store = open_store(f"s3://{bucket}/runs", cache_dir=cache, endpoint_url=endpoint, **kwargs)
    assert isinstance(store, S3Store)
    return store


def tamper_same_size(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_cached_file_of_the_same_size_is_downloaded_again(s3_env, tmp_path):
    store = s3(s3_env, tmp_path / "cache")
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "src", TREE), key_inputs={})
    out = store.get_dir(STAGE, "k1")
    tamper_same_size(out / "model.bin")
    assert (out / "model.bin").stat().st_size == len(TREE["model.bin"])

    again = s3(s3_env, tmp_path / "cache").get_dir(STAGE, "k1")  # another process, the same cache
    assert again == out and read_tree(again) == TREE


def test_a_tampered_single_cached_file_is_downloaded_again(s3_env, tmp_path):
    store = s3(s3_env, tmp_path / "cache")
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "src", TREE), key_inputs={})
    path = store.get_file(STAGE, "k1", "model.bin")
    tamper_same_size(path)
    assert s3(s3_env, tmp_path / "cache").get_file(STAGE, "k1", "model.bin").read_bytes() == TREE["model.bin"]


def test_an_unchanged_cache_hit_is_neither_downloaded_nor_hashed_again(s3_env, tmp_path, counter, monkeypatch):
    store = s3(s3_env, tmp_path / "cache", counter.url)
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "src", TREE), key_inputs={})
    out = store.get_dir(STAGE, "k1")

    hashed = []
    real = download_cache._sha256
    monkeypatch.setattr(download_cache, "_sha256", lambda path: hashed.append(path) or real(path))
    counter.reset()
    assert s3(s3_env, tmp_path / "cache", counter.url).get_dir(STAGE, "k1") == out
    assert hashed == []  # (size, mtime_ns, inode) still what was verified
    assert counter.requests == 2  # HEAD bucket and the manifest: no file was fetched

    os.utime(out / "sub/config.json")  # touched, not changed: hashed again, found intact, kept
    counter.reset()
    assert s3(s3_env, tmp_path / "cache", counter.url).get_dir(STAGE, "k1") == out
    assert hashed == [out / "sub/config.json"] and counter.requests == 2


def test_the_verification_record_lives_outside_the_artifact_and_only_the_store_writes_it(s3_env, tmp_path):
    store = s3(s3_env, tmp_path / "cache")
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "src", TREE), key_inputs={})
    out = store.get_dir(STAGE, "k1")
    record = download_cache.record_path(tmp_path / "cache", out)
    assert record.is_relative_to(tmp_path / "cache" / download_cache.RECORDS)
    data = json.loads(record.read_text())
    assert data["bytes"] == SIZE and set(data["files"]) == set(TREE)
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, "model.bin", "sub"])



def put_three(store: S3Store, tmp_path: Path) -> None:
    for i, key in enumerate(("k1", "k2", "k3")):
        store.put_dir(STAGE, key, write_tree(tmp_path / f"src{i}", {**TREE, "id.txt": key.encode()}), key_inputs={})


def test_the_cache_is_bounded_and_evicts_the_least_recently_used_artifact(s3_env, tmp_path):
    cache = tmp_path / "cache"
    put_three(s3(s3_env, cache), tmp_path)
    bound = int(2.5 * (SIZE + 2))

    def use(key: str) -> Path:  # one process: get_dir, then it exits
        out = s3(s3_env, cache, cache_max_bytes=bound).get_dir(STAGE, key)
        store_module._HANDED_OUT.clear()
        time.sleep(0.02)  # distinct last-use times
        return out

    k1, k2 = use("k1"), use("k2")
    use("k1")  # k1 is now more recent than k2
    k3 = use("k3")  # three artifacts exceed the bound: the least recently used one goes
    assert k1.is_dir() and k3.is_dir() and not k2.exists()
    assert not download_cache.record_path(cache, k2).exists()
    assert not [p for p in k2.parent.iterdir() if p.name.startswith(".")]  # nothing half-deleted left
    assert read_tree(use("k2"))["id.txt"] == b"k2"  # evicted means downloaded again when needed
    assert not k1.exists()  # ... which evicted the then least recently used, k1


def test_a_directory_this_process_handed_out_is_never_evicted(s3_env, tmp_path):
    cache = tmp_path / "cache"
    put_three(s3(s3_env, cache), tmp_path)
    store = s3(s3_env, cache, cache_max_bytes=SIZE)  # room for less than one artifact
    outs = [store.get_dir(STAGE, key) for key in ("k1", "k2", "k3")]
    assert all(out.is_dir() for out in outs)  # all still in use by this process
    store_module._HANDED_OUT.clear()
    s3(s3_env, cache, cache_max_bytes=SIZE).get_file(STAGE, "k1", "id.txt")  # the next download applies the bound
    assert not any(out.exists() for out in outs)


def test_an_unbounded_cache_evicts_nothing(s3_env, tmp_path):
    cache = tmp_path / "cache"
    put_three(s3(s3_env, cache), tmp_path)
    outs = []
    for key in ("k1", "k2", "k3"):
        outs.append(s3(s3_env, cache).get_dir(STAGE, key))
        store_module._HANDED_OUT.clear()
    assert all(out.is_dir() for out in outs)


def test_stale_temp_dirs_of_interrupted_downloads_are_removed_fresh_ones_kept(s3_env, tmp_path):
    cache = tmp_path / "cache"
    store = s3(s3_env, cache)
    store.put_dir(STAGE, "k1", write_tree(tmp_path / "src", TREE), key_inputs={})
    stage_dir = store.cache_path(STAGE, "k1").parent
    day_old = time.time() - 2 * 24 * 3600
    stale = [stage_dir / ".k0.tmp-dead", stage_dir / ".k9.old-dead", stage_dir / ".k8.evict-dead"]
    for path in stale:
        write_tree(path, {"part.bin": b"x" * 100})
        for p in (path / "part.bin", path):
            os.utime(p, (day_old, day_old))
    fresh = write_tree(stage_dir / ".k7.tmp-alive", {"part.bin": b"y"})  # a download in progress elsewhere
    other = write_tree(stage_dir / "k5", {"a": b"z"})  # not ours to judge

    s3(s3_env, cache).get_dir(STAGE, "k1")
    assert not any(p.exists() for p in stale)
    assert fresh.is_dir() and other.is_dir()


@pytest.mark.parametrize("age, removed", [(10, False), (23 * 3600, False), (25 * 3600, True)])
def test_remove_stale_judges_by_the_newest_file_inside(tmp_path, age, removed):
    folder = tmp_path / "stage"
    tmp = write_tree(folder / ".k.tmp-1", {"big.bin": b"0" * 10})
    now = time.time()
    os.utime(tmp, (now - 10 * 24 * 3600,) * 2)  # the dir itself is old; a file still being written is not
    os.utime(tmp / "big.bin", (now - age,) * 2)
    assert (download_cache.remove_stale([folder], now=now) == [tmp]) is removed

"""ArtifactStore contract, run against both backends (local dir and S3 via a moto server)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import boto3
import pytest
from conftest import STORE_PREFIX as PREFIX  # where the `store` fixture lives in its bucket
from pydantic import ValidationError

from infimmr_core.store import (
    MANIFEST_NAME,
    ArtifactCorrupt,
    ArtifactMissing,
    FileEntry,
    LocalStore,
    S3Store,
    StoreError,
    open_store,
)

STAGE = "curate"
BINARY = bytes(range(256)) * 64 + b"\x00\xff"

TREE = {
    "a.txt": b"hello\n",
    "sub/b.json": b'{"x": 1}',
    "sub/deep/c.bin": BINARY,
    "sub/empty": b"",
}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under root except the manifest, by relative POSIX path."""
    files = (p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def raw_s3():
    """A client built only from the environment (s3_env), independent of the store's own client."""
    return boto3.client("s3")


def stored_names(store, stage: str, key: str) -> set[str]:
    """What really sits in the backing storage for (stage, key), looked at behind the store's back."""
    if isinstance(store, LocalStore):
        root = store.root / stage / key
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    base = f"{store.prefix}/{stage}/{key}/"
    listing = raw_s3().list_objects_v2(Bucket=store.bucket, Prefix=base)
    return {obj["Key"][len(base):] for obj in listing.get("Contents", [])}


def overwrite_stored(store, stage: str, key: str, rel: str, data: bytes) -> None:
    if isinstance(store, LocalStore):
        (store.root / stage / key / rel).write_bytes(data)
    else:
        raw_s3().put_object(Bucket=store.bucket, Key=f"{store.prefix}/{stage}/{key}/{rel}", Body=data)


def remove_stored(store, stage: str, key: str, rel: str) -> None:
    if isinstance(store, LocalStore):
        (store.root / stage / key / rel).unlink()
    else:
        raw_s3().delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{stage}/{key}/{rel}")


@pytest.fixture
def src(tmp_path) -> Path:
    return write_tree(tmp_path / "src", TREE)


def put_dir_crashing_before_commit(store, stage: str, key: str, src: Path) -> None:
    """Run put_dir but die after the files are uploaded, before the manifest is written."""

    def crash(manifest, **kwargs):
        raise RuntimeError("simulated crash before commit")

    # A private MonkeyPatch: undoing the test's own one would also drop s3_env's env vars.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "_write_manifest", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            store.put_dir(stage, key, src, key_inputs={})


# --- contract, both backends -------------------------------------------------------------------


def test_round_trip_nested_and_binary_files(store, src):
    manifest = store.put_dir(STAGE, "k1", src, key_inputs={"seed": 1}, metrics={"n": 4}, producer={"flow": "test"})

    assert store.has(STAGE, "k1")
    assert store.manifest(STAGE, "k1") == manifest
    assert [f.path for f in manifest.files] == sorted(TREE)
    assert {f.path: f.size for f in manifest.files} == {rel: len(data) for rel, data in TREE.items()}
    assert manifest.key_inputs == {"seed": 1} and manifest.metrics == {"n": 4}
    assert {"host", "infimmr_version", "created_at", "flow"} <= manifest.producer.keys()

    out = store.get_dir(STAGE, "k1")
    assert read_tree(out) == TREE
    assert json.loads((out / MANIFEST_NAME).read_text())["digest"] == manifest.digest


def test_get_file_fetches_one_verified_file(store, src):
    store.put_dir(STAGE, "k1", src, key_inputs={})
    for rel, data in TREE.items():
        assert store.get_file(STAGE, "k1", rel).read_bytes() == data
    with pytest.raises(ArtifactMissing, match="no file 'absent.bin'"):
        store.get_file(STAGE, "k1", "absent.bin")
    with pytest.raises(ArtifactMissing, match="not found"):
        store.get_file(STAGE, "nope", sorted(TREE)[0])


def test_get_file_refuses_a_damaged_file(store, src, tmp_path):
    store.put_dir(STAGE, "k1", src, key_inputs={})
    rel = sorted(TREE)[0]
    damaged = write_tree(tmp_path / "damaged", {**TREE, rel: b"X" * len(TREE[rel])})
    # Same sizes, other bytes: replace the stored file behind the manifest's back.
    if isinstance(store, LocalStore):
        (store.root / STAGE / "k1" / rel).write_bytes((damaged / rel).read_bytes())
    else:
        boto3.client("s3").put_object(Bucket=store.bucket, Key=f"{store.prefix}/{STAGE}/k1/{rel}", Body=(damaged / rel).read_bytes())
    with pytest.raises(ArtifactCorrupt, match="sha256"):
        store.get_file(STAGE, "k1", rel)


def test_absent_artifact(store):
    assert not store.has(STAGE, "nope")
    assert store.manifest(STAGE, "nope") is None
    with pytest.raises(ArtifactMissing, match=f"{STAGE}/nope"):
        store.get_dir(STAGE, "nope")


def test_crash_before_manifest_leaves_artifact_absent_and_retry_overwrites(store, src, tmp_path):
    put_dir_crashing_before_commit(store, STAGE, "k1", src)
    # The files really were uploaded: only the missing manifest hides them.
    assert stored_names(store, STAGE, "k1") == set(TREE)
    assert not store.has(STAGE, "k1")
    assert store.list_keys(STAGE) == []
    with pytest.raises(ArtifactMissing):
        store.get_dir(STAGE, "k1")

    retry = write_tree(tmp_path / "retry", {"a.txt": b"second attempt"})
    store.put_dir(STAGE, "k1", retry, key_inputs={})
    assert read_tree(store.get_dir(STAGE, "k1")) == {"a.txt": b"second attempt"}
    assert stored_names(store, STAGE, "k1") == {"a.txt", MANIFEST_NAME}


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: overwrite_stored(s, STAGE, "k1", "sub/deep/c.bin", b"X" + BINARY[1:]), "sha256"),
        (lambda s: overwrite_stored(s, STAGE, "k1", "sub/deep/c.bin", BINARY[:-1]), "bytes"),
        (lambda s: remove_stored(s, STAGE, "k1", "sub/deep/c.bin"), "missing"),
    ],
    ids=["same-size", "truncated", "deleted"],
)
def test_corrupted_file_is_detected(store, src, damage, message):
    store.put_dir(STAGE, "k1", src, key_inputs={})
    damage(store)
    with pytest.raises(ArtifactCorrupt, match=message) as err:
        store.get_dir(STAGE, "k1")
    assert f"{STAGE}/k1" in str(err.value) and "sub/deep/c.bin" in str(err.value)


def test_unreadable_manifest_commits_nothing_and_is_replaced(store, src):
    """A truncated manifest (a crash, a full disk) is no commit: the artifact counts as absent and the next put_dir
    replaces it, instead of every rerun failing on it (issue 13, item 8)."""
    store.put_dir(STAGE, "k1", src, key_inputs={})
    overwrite_stored(store, STAGE, "k1", MANIFEST_NAME, b"{not json")
    assert store.manifest(STAGE, "k1") is None and not store.has(STAGE, "k1")
    with pytest.raises(ArtifactMissing, match="no valid MANIFEST.json"):
        store.get_dir(STAGE, "k1")
    assert store.put_dir(STAGE, "k1", src, key_inputs={}) == store.manifest(STAGE, "k1")


def test_replacing_an_artifact(store, src, tmp_path):
    first = store.put_dir(STAGE, "k1", src, key_inputs={"v": 1})
    new_tree = {"a.txt": b"new", "other/z.bin": b"\x01\x02"}
    # A forced recompute (without replace the committed artifact is kept: tests/test_reliability_concurrency.py).
    second = store.put_dir(STAGE, "k1", write_tree(tmp_path / "new", new_tree), key_inputs={"v": 2}, replace=True)

    assert second.digest != first.digest
    assert store.manifest(STAGE, "k1") == second
    assert read_tree(store.get_dir(STAGE, "k1")) == new_tree
    assert stored_names(store, STAGE, "k1") == {f"{second.version}/{p}" for p in new_tree} | {MANIFEST_NAME}


def test_digest_identifies_content_not_key_or_metadata(store, src, tmp_path):
    # Same files written in another order (other mtimes, other directory order).
    again = write_tree(tmp_path / "again", dict(reversed(TREE.items())))
    m1 = store.put_dir(STAGE, "k1", src, key_inputs={"a": 1}, metrics={"m": 1})
    m2 = store.put_dir(STAGE, "k2", again, key_inputs={"a": 2})
    changed = store.put_dir(STAGE, "k3", write_tree(tmp_path / "changed", {**TREE, "a.txt": b"hello!"}), key_inputs={})

    assert m1.digest == m2.digest
    assert changed.digest != m1.digest


def test_list_keys_and_delete(store, src):
    store.put_dir(STAGE, "k2", src, key_inputs={})
    store.put_dir(STAGE, "k1", src, key_inputs={})
    store.put_dir("train", "k9", src, key_inputs={})
    put_dir_crashing_before_commit(store, STAGE, "k3", src)

    assert store.list_keys(STAGE) == ["k1", "k2"]
    assert store.list_keys("train") == ["k9"]
    assert store.list_keys("eval") == []

    store.delete(STAGE, "k1")
    store.delete(STAGE, "never-existed")
    assert store.list_keys(STAGE) == ["k2"]
    assert not store.has(STAGE, "k1")
    assert stored_names(store, STAGE, "k1") == set()


def test_artifact_uri(store, tmp_path):
    if isinstance(store, LocalStore):
        assert store.artifact_uri(STAGE, "k1") == f"file://{tmp_path.resolve()}/store/{STAGE}/k1"
    else:
        assert store.artifact_uri(STAGE, "k1") == f"s3://{store.bucket}/{PREFIX}/{STAGE}/k1"


def test_store_survives_pickling(store, src):
    # Prefect hashes task inputs and ships them to worker processes by pickling.
    store.put_dir(STAGE, "k1", src, key_inputs={})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.uri == store.uri
    assert read_tree(clone.get_dir(STAGE, "k1")) == TREE


@pytest.mark.parametrize("bad", ["", "../up", "a/b", ".hidden", "with space"])
def test_invalid_stage_or_key_rejected(store, src, bad):
    with pytest.raises(StoreError, match="invalid key"):
        store.put_dir(STAGE, bad, src, key_inputs={})
    with pytest.raises(StoreError, match="invalid stage"):
        store.has(bad, "k1")


def test_reserved_manifest_name_in_source_rejected(store, tmp_path):
    src = write_tree(tmp_path / "src", {MANIFEST_NAME: b"{}"})
    with pytest.raises(StoreError, match="reserved"):
        store.put_dir(STAGE, "k1", src, key_inputs={})


def test_manifest_paths_cannot_escape_the_artifact_dir():
    for bad in ("../evil", "/abs", "a/../../b", MANIFEST_NAME, ""):
        with pytest.raises(ValidationError):
            FileEntry(path=bad, size=0, sha256="0" * 64)


# --- local backend -----------------------------------------------------------------------------


def test_local_uri_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = tmp_path.resolve() / "store"
    for uri in (f"file://{tmp_path}/store", "file://./store", "./store", str(expected)):
        store = open_store(uri)
        assert isinstance(store, LocalStore) and store.root == expected, uri
        assert store.uri == f"file://{expected}"


def test_local_get_dir_returns_artifact_in_place(tmp_path, src):
    store = open_store(f"file://{tmp_path}/store")
    store.put_dir(STAGE, "k1", src, key_inputs={})
    assert store.get_dir(STAGE, "k1") == tmp_path.resolve() / "store" / STAGE / "k1"


def test_local_verify_false_skips_hashing_but_checks_sizes(tmp_path, src):
    store = open_store(f"file://{tmp_path}/store")
    store.put_dir(STAGE, "k1", src, key_inputs={})
    overwrite_stored(store, STAGE, "k1", "a.txt", b"HELLO\n")
    assert store.get_dir(STAGE, "k1", verify=False)
    overwrite_stored(store, STAGE, "k1", "a.txt", b"HELLO")
    with pytest.raises(ArtifactCorrupt, match="bytes"):
        store.get_dir(STAGE, "k1", verify=False)


def test_local_put_from_inside_the_store_is_refused(tmp_path, src):
    store = open_store(f"file://{tmp_path}/store")
    store.put_dir(STAGE, "k1", src, key_inputs={})
    with pytest.raises(StoreError, match="overlaps"):
        store.put_dir(STAGE, "k1", store.get_dir(STAGE, "k1"), key_inputs={})
    assert read_tree(store.get_dir(STAGE, "k1")) == TREE


def test_unsupported_scheme():
    with pytest.raises(StoreError, match="unsupported"):
        open_store("gs://bucket/x")


# --- S3 backend --------------------------------------------------------------------------------


def s3_store(bucket: str, **kwargs) -> S3Store:
    store = open_store(f"s3://{bucket}/{PREFIX}", **kwargs)
    assert isinstance(store, S3Store)
    return store


def file_ids(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) per file: a re-download replaces files, changing both."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def test_s3_objects_really_in_bucket(s3_env, src):
    store = s3_store(s3_env)
    manifest = store.put_dir(STAGE, "k1", src, key_inputs={"seed": 1})

    listing = raw_s3().list_objects_v2(Bucket=s3_env)
    assert {o["Key"] for o in listing["Contents"]} == {f"{PREFIX}/{STAGE}/k1/{rel}" for rel in [*TREE, MANIFEST_NAME]}
    body = raw_s3().get_object(Bucket=s3_env, Key=f"{PREFIX}/{STAGE}/k1/{MANIFEST_NAME}")["Body"].read()
    assert json.loads(body)["digest"] == manifest.digest
    binary = raw_s3().get_object(Bucket=s3_env, Key=f"{PREFIX}/{STAGE}/k1/sub/deep/c.bin")["Body"].read()
    assert binary == BINARY


def test_s3_bucket_root_without_prefix(s3_env, src, tmp_path):
    store = open_store(f"s3://{s3_env}")
    store.put_dir(STAGE, "k1", src, key_inputs={})
    assert store.artifact_uri(STAGE, "k1") == f"s3://{s3_env}/{STAGE}/k1"
    assert store.list_keys(STAGE) == ["k1"]
    assert store.get_dir(STAGE, "k1") == tmp_path / "infimmr-cache" / s3_env / STAGE / "k1"
    assert f"{STAGE}/k1/{MANIFEST_NAME}" in {o["Key"] for o in raw_s3().list_objects_v2(Bucket=s3_env)["Contents"]}


def test_s3_cache_location_and_reuse(s3_env, src, tmp_path):
    store = s3_store(s3_env)
    store.put_dir(STAGE, "k1", src, key_inputs={})

    out = store.get_dir(STAGE, "k1")
    assert out == tmp_path / "infimmr-cache" / s3_env / PREFIX / STAGE / "k1"  # INFIMMR_CACHE_DIR
    before = file_ids(out)
    assert store.get_dir(STAGE, "k1") == out
    assert file_ids(out) == before  # nothing re-downloaded
    # The cache is trusted after a cheap size check, so a second get stays local even for a fresh store.
    assert s3_store(s3_env).get_dir(STAGE, "k1") == out and file_ids(out) == before


def test_s3_cache_invalidated_when_content_changes(s3_env, src, tmp_path):
    store = s3_store(s3_env)
    store.put_dir(STAGE, "k1", src, key_inputs={})
    out = store.get_dir(STAGE, "k1")

    new_tree = {"a.txt": b"replaced"}
    replaced = store.put_dir(STAGE, "k1", write_tree(tmp_path / "new", new_tree), key_inputs={}, replace=True)
    assert store.get_dir(STAGE, "k1") == out
    assert read_tree(out) == new_tree
    assert json.loads((out / MANIFEST_NAME).read_text())["digest"] == replaced.digest
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_s3_cache_keeps_files_when_only_metadata_changes(s3_env, src):
    store = s3_store(s3_env)
    store.put_dir(STAGE, "k1", src, key_inputs={}, metrics={"acc": 0.1})
    out = store.get_dir(STAGE, "k1")
    before = file_ids(out)

    store.put_dir(STAGE, "k1", src, key_inputs={}, metrics={"acc": 0.2}, replace=True)
    assert store.get_dir(STAGE, "k1") == out
    assert json.loads((out / MANIFEST_NAME).read_text())["metrics"] == {"acc": 0.2}
    assert {rel: ids for rel, ids in file_ids(out).items() if rel != MANIFEST_NAME} == {
        rel: ids for rel, ids in before.items() if rel != MANIFEST_NAME
    }


def test_s3_damaged_cache_is_downloaded_again(s3_env, src):
    store = s3_store(s3_env)
    store.put_dir(STAGE, "k1", src, key_inputs={})
    out = store.get_dir(STAGE, "k1")
    (out / "sub/deep/c.bin").write_bytes(b"truncated")
    assert read_tree(store.get_dir(STAGE, "k1")) == TREE


def test_s3_concurrent_download_keeps_the_copy_installed_first(s3_env, src, monkeypatch):
    store, other = s3_store(s3_env), s3_store(s3_env)
    store.put_dir(STAGE, "k1", src, key_inputs={})
    fetch = store._fetch_files
    winner = {}

    def other_process_wins_meanwhile(*args):
        winner.update(file_ids(other.get_dir(STAGE, "k1")))
        fetch(*args)

    monkeypatch.setattr(store, "_fetch_files", other_process_wins_meanwhile)
    out = store.get_dir(STAGE, "k1")
    assert winner and file_ids(out) == winner  # the loser discarded its own copy
    assert [p.name for p in out.parent.iterdir()] == ["k1"]


def test_s3_corrupt_download_never_lands_in_cache(s3_env, src):
    store = s3_store(s3_env)
    store.put_dir(STAGE, "k1", src, key_inputs={})
    overwrite_stored(store, STAGE, "k1", "a.txt", b"HELLO\n")
    with pytest.raises(ArtifactCorrupt):
        store.get_dir(STAGE, "k1")
    assert not store.cache_path(STAGE, "k1").exists()


@pytest.mark.parametrize("how", ["argument", "AWS_ENDPOINT_URL_S3", "argument-overrides-env"])
def test_s3_endpoint_configuration(s3_env, s3_server, src, monkeypatch, how):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    kwargs = {}
    if how == "AWS_ENDPOINT_URL_S3":
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    else:
        kwargs["endpoint_url"] = s3_server.endpoint_url
    if how == "argument-overrides-env":
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    store = s3_store(s3_env, **kwargs)

    assert store.endpoint_url == s3_server.endpoint_url
    store.put_dir(STAGE, "k1", src, key_inputs={})
    assert read_tree(store.get_dir(STAGE, "k1")) == TREE


@pytest.mark.parametrize("via", ["AWS_ENDPOINT_URL", "argument"])
def test_s3_custom_endpoint_is_addressed_path_style(s3_env, s3_server, monkeypatch, via):
    # MinIO has no '<bucket>.<host>' DNS names: requests must go to <endpoint>/<bucket>/...
    kwargs = {}
    if via == "argument":
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        kwargs["endpoint_url"] = s3_server.endpoint_url
    store = s3_store(s3_env, **kwargs)
    urls = []
    store._client.meta.events.register("before-send.s3", lambda request, **_: urls.append(request.url))
    store.has(STAGE, "k1")
    assert urls and all(url.startswith(f"{s3_server.endpoint_url}/{s3_env}") for url in urls)


def test_s3_missing_bucket_error_names_bucket_and_endpoint(s3_env, s3_server, src):
    store = s3_store("no-such-bucket-4711")
    for call in (lambda: store.has(STAGE, "k1"), lambda: store.put_dir(STAGE, "k1", src, key_inputs={})):
        with pytest.raises(StoreError, match="no-such-bucket-4711") as err:
            call()
        assert s3_server.endpoint_url in str(err.value)


def test_s3_missing_credentials_error_says_how_to_configure(s3_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match="AWS_ACCESS_KEY_ID"):
        s3_store(s3_env).has(STAGE, "k1")


def test_s3_unknown_profile_is_a_store_error(s3_env):
    with pytest.raises(StoreError, match="nonexistent-profile"):
        s3_store(s3_env, profile="nonexistent-profile")

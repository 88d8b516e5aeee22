"""Nothing read from the shared store is unpickled or executed: Prefect result records under `<store>/_prefect/results/`
are checked before Prefect deserializes them (issue 13, item 1). Each hostile record below is refused, and the payloads
are real: Prefect's own deserializer runs them (the first test proves it), ours never does."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import boto3
import pytest
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
from prefect.serializers import JSONSerializer

from infimmr_core.stages import ArtifactRef
from infimmr_core.store import LocalStore, open_store
from infimmr.tasks.cache import record_name
from infimmr.tasks.results import MAX_RECORD_BYTES, RecordRefused, StoreResults, checked_record

pytestmark = pytest.mark.reliability


class Touch:
    """Unpickling this creates `path`: proof that a record's code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def genuine(store: LocalStore, stage: str, key: str) -> tuple[str, bytes, ArtifactRef]:
    """A record exactly as the stage task writes it, for an artifact that is in the store."""
    ref = ArtifactRef.from_manifest(store, store.manifest(stage, key), reused=False)
    name = record_name(store.uri, stage, key)
    record = ResultRecord(metadata=ResultRecordMetadata(storage_key=name, serializer=JSONSerializer()), result=ref)
    return name, record.serialize(), ref


@pytest.fixture
def stored(tmp_path):
    store = open_store(f"file://{tmp_path}/store")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    store.put_dir("curate", "k1", src, key_inputs={}, metrics={"kept": 3, "filtered": {"empty answer": 1}})
    (src / "a.txt").write_text("other")
    store.put_dir("phase1", "k2", src, key_inputs={})
    return store


def pickled(marker: Path) -> bytes:
    return json.dumps({
        "metadata": {"storage_key": "x", "expiration": None, "serializer": {"type": "pickle", "picklelib": "pickle"},
                     "prefect_version": "3.8.8", "storage_block_id": None},
        "result": __import__("base64").encodebytes(pickle.dumps(Touch(marker))).decode(),
    }).encode()


def with_record(raw: bytes, **changes) -> bytes:
    record = json.loads(raw)
    for dotted, value in changes.items():
        node, *path, last = [record, *dotted.split("__")]
        for part in path:
            node = node[part]
        node[last] = value
    return json.dumps(record).encode()


def with_result(raw: bytes, change) -> bytes:
    record = json.loads(raw)
    result = json.loads(record["result"])
    change(result)
    record["result"] = json.dumps(result)
    return json.dumps(record).encode()


def test_prefect_itself_would_run_the_pickled_payload(tmp_path):
    """The hostile record is not hypothetical: Prefect's ResultRecord.deserialize executes it."""
    marker = tmp_path / "pwned"
    ResultRecord.deserialize(pickled(marker))
    assert marker.exists()


def hostile_records(raw: bytes, marker: Path, other: bytes) -> dict[str, tuple[bytes, str]]:
    """Name -> (record bytes, what the refusal says)."""
    serializer = json.loads(raw)["metadata"]["serializer"]
    return {
        "pickle": (pickled(marker), "declares serializer 'pickle'"),
        "compressed pickle": (with_record(raw, metadata__serializer={"type": "compressed/pickle"}),
                              "compressed/pickle"),
        "json with another jsonlib": (with_record(raw, metadata__serializer={**serializer, "jsonlib": "antigravity"}),
                                      "declares serializer 'json' with settings other than"),
        "json with another decoder": (
            with_record(raw, metadata__serializer={**serializer, "object_decoder": "os.system"}),
            "settings other than"),
        "no serializer (Prefect's default is pickle)": (with_record(raw, metadata__serializer=None),
                                                        "declares serializer"),
        "old record format": (json.dumps({"data": "x", "serializer": {"type": "pickle"}}).encode(),
                              "not a Prefect result record"),
        "another class": (with_result(raw, lambda r: r.update({"__class__": "pathlib.PosixPath"})),
                          "is not an infimmr_core.stages.ArtifactRef"),
        "an exception": (with_record(raw, result=json.dumps({"__exc_type__": "os.error", "message": "x"})),
                         "is not an"),
        "a class nested in the metrics": (
            with_result(raw, lambda r: r["data"]["metrics"].update({"x": {"__class__": "antigravity.X", "data": 1}})),
            "names a Python class"),
        "the result as a JSON object, not text": (with_record(raw, result={"__class__": "x"}), "not JSON text"),
        "a digest the manifest does not have": (with_result(raw, lambda r: r["data"].update(digest="0" * 64)),
                                                "does not match the manifest of curate/k1"),
        "metrics the manifest does not have": (with_result(raw, lambda r: r["data"]["metrics"].update(kept=99)),
                                               "does not match the manifest"),
        "a uri outside the store": (with_result(raw, lambda r: r["data"].update(uri="file:///elsewhere/curate/k1")),
                                    "does not match the manifest"),
        "another stage's record under this name": (other, "whose record in"),
        "an artifact that is not stored": (with_result(raw, lambda r: r["data"].update(key="k9")), "whose record in"),
        "truncated": (raw[: len(raw) // 2], "not JSON"),
        "empty": (b"", "not JSON"),
        "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "not JSON (RecursionError)"),
        "oversized": (b" " * (MAX_RECORD_BYTES + 1), "more than a record holds"),
        "an expiration": (with_record(raw, metadata__expiration="2000-01-01T00:00:00Z"), "has an expiration"),
        "a bad block id": (with_record(raw, metadata__storage_block_id="../../x"), "invalid storage_block_id"),
        "wrong ref types": (with_result(raw, lambda r: r["data"].update(reused="yes")),
                            "not a valid artifact reference"),
    }


def test_hostile_records_are_refused_and_never_run(stored, tmp_path):
    name, raw, _ = genuine(stored, "curate", "k1")
    _, other, _ = genuine(stored, "phase1", "k2")
    marker = tmp_path / "pwned"
    cases = hostile_records(raw, marker, other)
    assert len(cases) >= 20
    for what, (record, says) in cases.items():
        with pytest.raises(RecordRefused) as refused:
            checked_record(record, name, stored, stored.uri)
        assert says in str(refused.value), (what, str(refused.value))
    assert not marker.exists()


def test_a_genuine_record_reads_back_as_the_stored_artifact(stored):
    name, raw, ref = genuine(stored, "curate", "k1")
    checked = checked_record(raw, name, stored, stored.uri)
    assert ResultRecord.deserialize(checked).result == ref


def test_the_result_storage_refuses_on_read_and_writes_atomically(stored, tmp_path):
    block = StoreResults(uri=stored.uri, root=str(stored.root))
    name, raw, ref = genuine(stored, "curate", "k1")
    block.write_path(name, raw, _sync=True)
    assert ResultRecord.deserialize(block.read_path(name, _sync=True)).result == ref
    folder = stored.root / "_prefect" / "results"
    assert [p.name for p in folder.iterdir()] == [name]  # no temp file left beside it

    marker = tmp_path / "pwned"
    (folder / name).write_bytes(pickled(marker))
    with pytest.raises(RecordRefused, match=f"result record {folder / name} refused: declares serializer 'pickle'"):
        block.read_path(name, _sync=True)
    for bad_name in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(RecordRefused, match="invalid record name"):
            block.read_path(bad_name, _sync=True)
    assert not marker.exists()


def test_s3_result_storage_refuses_a_pickled_record(s3_env, tmp_path):
    store = open_store(f"s3://{s3_env}/runs")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    store.put_dir("curate", "k1", src, key_inputs={})
    block = StoreResults(uri=store.uri)
    ref = ArtifactRef.from_manifest(store, store.manifest("curate", "k1"), reused=False)
    name = record_name(store.uri, "curate", "k1")
    good = ResultRecord(metadata=ResultRecordMetadata(storage_key=name, serializer=JSONSerializer()), result=ref)
    block.write_path(name, good.serialize(), _sync=True)
    assert ResultRecord.deserialize(block.read_path(name, _sync=True)).result == ref

    # Someone who can write the bucket replaces the record (our own writer refuses to store anything but an
    # artifact's record, so the poison goes in through S3 itself).
    marker = tmp_path / "pwned"
    boto3.client("s3").put_object(Bucket=s3_env, Key=f"runs/_prefect/results/{name}", Body=pickled(marker))
    with pytest.raises(RecordRefused, match="declares serializer 'pickle'"):
        block.read_path(name, _sync=True)
    assert not marker.exists()

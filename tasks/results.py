"""Prefect's task results and cache records live in the artifact store itself, under `_prefect/results/`.

So the cache travels with the store: a brand-new Prefect database, a fresh PREFECT_HOME or another machine that points
at the same store finds the same records and shows finished stages as Cached. A record holds only the small
ArtifactRef (JSON); the artifact itself stays where the store put it.

Whoever can write the store can write these records, and a Prefect record names its own serializer: `pickle` (code
runs on load), or a JSON one whose decoder imports any class a record names. `result_serializer="json"` on the task
does not stop that. So every record is checked before Prefect sees a byte of it (`checked_record`): exactly the JSON
serializer this project writes, a result that is an ArtifactRef and nothing else, the name Prefect's cache gives
that stage and key in this store, and the same uri, digest and metrics as the artifact's manifest. What Prefect then
reads is rebuilt from the checked values, not the stored bytes. Any other record is refused: logged, and treated as
absent, so the stage runs, finds its artifact in the store (or computes it) and writes a fresh record over it.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
from prefect.filesystems import WritableFileSystem
from prefect.logging import get_logger
from prefect.serializers import JSONSerializer
from pydantic import Field, PrivateAttr, ValidationError

from infimmr_core.atomic import write_atomic
from infimmr_core.config import StoreConfig
from infimmr_core.keys import sha256_text
from infimmr_core.stages import ArtifactRef
from infimmr_core.store import ArtifactStore, StoreError, open_store, store_from_config
from infimmr.tasks.cache import record_name

RESULTS_PREFIX = "_prefect/results"
# A record holds one ArtifactRef (a few KB with its metrics); anything far bigger is not ours.
MAX_RECORD_BYTES = 4 * 1024 * 1024
_REF_CLASS = f"{ArtifactRef.__module__}.{ArtifactRef.__qualname__}"
# The one serializer our records may declare: Prefect's JSON serializer with its defaults, as the task writes it.
_SERIALIZER = JSONSerializer().model_dump(mode="json")
# Record names are Prefect cache keys (ours: infimmr-<stage>-<hex>) or Prefect's own uuid storage keys: one segment.
_RECORD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")

logger = get_logger("infimmr.results")


class RecordRefused(ValueError):
    """A result record that must not be deserialized; the message says why."""


def checked_record(raw: bytes, name: str, store: ArtifactStore, store_uri: str) -> bytes:
    """The bytes Prefect may deserialize for record `name`, rebuilt from a checked ArtifactRef, or RecordRefused.

    `store_uri` is the store as the recipe names it (what the cache key hashes); `store` is that store, opened."""
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordRefused(f"{len(raw)} bytes, more than a record holds ({MAX_RECORD_BYTES})")
    try:  # plain JSON: no object hooks, no imports
        record = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise RecordRefused(f"not JSON ({type(err).__name__})") from err
    if not isinstance(record, dict) or set(record) != {"metadata", "result"}:
        raise RecordRefused("not a Prefect result record")
    if not isinstance(record["metadata"], dict):
        raise RecordRefused("not a Prefect result record")
    metadata = record["metadata"]
    if metadata.get("serializer") != _SERIALIZER:
        declared = metadata.get("serializer")
        kind = declared.get("type") if isinstance(declared, dict) else declared
        raise RecordRefused(f"declares serializer {str(kind)[:80]!r} with settings other than infimmr's JSON records; "
                            "only those are ever read")
    if metadata.get("expiration") is not None:
        raise RecordRefused("has an expiration; infimmr's records never do")
    ref = _artifact_ref(record["result"])
    expected_name = record_name(store_uri, ref.stage, ref.key)
    if name != expected_name:
        raise RecordRefused(f"holds {ref.stage}/{ref.key}, whose record in {store_uri} is {expected_name}")
    try:
        manifest = store.manifest(ref.stage, ref.key)
    except StoreError as err:
        raise RecordRefused(f"cannot check {ref.stage}/{ref.key} against its manifest: {err}") from err
    if manifest is None:
        raise RecordRefused(f"points at {ref.stage}/{ref.key}, which is not in the store")
    stored = ArtifactRef.from_manifest(store, manifest, reused=ref.reused)
    if ref.model_dump(mode="json") != stored.model_dump(mode="json"):
        raise RecordRefused(f"does not match the manifest of {ref.stage}/{ref.key} (record digest {ref.digest[:12]}, "
                            f"manifest digest {manifest.digest[:12]})")
    block_id = metadata.get("storage_block_id")
    try:
        block_id = uuid.UUID(block_id) if block_id is not None else None
    except (TypeError, ValueError, AttributeError) as err:
        raise RecordRefused("has an invalid storage_block_id") from err
    storage_key = metadata.get("storage_key")
    rebuilt = ResultRecord(
        metadata=ResultRecordMetadata(
            storage_key=storage_key if isinstance(storage_key, str) else name,
            serializer=JSONSerializer(),
            storage_block_id=block_id,
        ),
        result=stored,
    )
    return rebuilt.serialize()


def is_artifact_record(raw: bytes) -> bool:
    """Is this a record of a finished stage (its result an ArtifactRef, as `checked_record` reads it back), rather than
    the record of a failed or crashed task run (an exception), which nothing ever reads?"""
    try:
        record = json.loads(raw)
        _artifact_ref(record["result"])
    except (ValueError, RecursionError, TypeError, KeyError, RecordRefused):
        return False
    return True


def _artifact_ref(result: Any) -> ArtifactRef:
    """The ArtifactRef a record's result holds, parsed without Prefect's decoder (which imports what a record names)."""
    if not isinstance(result, str):
        raise RecordRefused("its result is not JSON text")
    try:
        value = json.loads(result)
    except (ValueError, RecursionError) as err:
        raise RecordRefused(f"its result is not JSON ({type(err).__name__})") from err
    if not isinstance(value, dict) or set(value) != {"__class__", "data"} or value["__class__"] != _REF_CLASS:
        raise RecordRefused(f"its result is not an {_REF_CLASS}")
    if _names_a_type(value["data"]):
        raise RecordRefused("its result names a Python class or exception inside the artifact reference")
    try:
        return ArtifactRef.model_validate(value["data"], strict=True)
    except ValidationError as err:
        raise RecordRefused(f"its result is not a valid artifact reference: {err.errors()[0]['msg']}") from err


def _names_a_type(value: Any) -> bool:
    """Would Prefect's JSON decoder import something for this value (a nested {"__class__": ...} or exception)?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__class__" in item or "__exc_type__" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StoreResults(WritableFileSystem):
    """Prefect result storage next to the artifacts of one store, which only ever hands Prefect checked records.
    S3 is configured like the store (boto3's standard chain: env vars, profiles; never a secret in the block)."""

    _block_type_name = "infimmr store results"
    _block_type_slug = "infimmr-store-results"
    _description = "Prefect task results and cache records of the infimmr pipeline, kept in its artifact store."

    uri: str = Field(description="The artifact store as the recipe names it: file://PATH or s3://BUCKET/PREFIX.")
    root: str | None = Field(None, description="A local store's directory (resolved when the block was made).")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None = boto3's own configuration.")
    region: str | None = Field(None, description="S3 region; None = boto3's own configuration.")
    profile: str | None = Field(None, description="AWS profile; None = boto3's own configuration.")

    _store: ArtifactStore | None = PrivateAttr(None)

    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_store(self.root or self.uri, endpoint_url=self.endpoint_url, region=self.region,
                                     profile=self.profile)
        return self._store

    def _check_name(self, path: str) -> None:
        if not _RECORD_NAME.match(path) or ".." in path:
            raise RecordRefused(f"invalid record name {path[:80]!r}")

    def _local(self, path: str) -> Path:
        return Path(self.root) / RESULTS_PREFIX / path

    def _read_raw(self, path: str) -> bytes:
        if self.root is not None:
            try:
                with self._local(path).open("rb") as f:
                    return f.read(MAX_RECORD_BYTES + 1)
            except FileNotFoundError as err:
                raise ValueError(f"no result at {self._local(path)}") from err
        # Through the store: its retries (a reset or truncated body is read again) and its error types.
        raw = self.store().read_object(f"{RESULTS_PREFIX}/{path}", max_bytes=MAX_RECORD_BYTES + 1)
        if raw is None:
            raise ValueError(f"no result at {self.uri}/{RESULTS_PREFIX}/{path}")
        return raw

    def _read(self, path: str) -> bytes:
        self._check_name(path)
        raw = self._read_raw(path)
        try:
            return checked_record(raw, path, self.store(), self.uri)
        except RecordRefused as err:
            where = self._local(path) if self.root is not None else f"{self.uri}/{RESULTS_PREFIX}/{path}"
            logger.warning("refused the Prefect result record %s: %s. It is never deserialized; the stage looks its "
                           "artifact up in the store instead and writes a fresh record.", where, err)
            raise RecordRefused(f"result record {where} refused: {err}") from err

    def _write(self, path: str, content: bytes) -> str:
        self._check_name(path)
        if not is_artifact_record(content):
            # A failed task run's record (its exception), under a random name that no cache lookup ever asks for:
            # written, it would only pile up in the shared store. Prefect logs the failure itself.
            return path
        if self.root is not None:
            write_atomic(self._local(path), content)  # a reader never sees half a record
            return path
        self.store().write_object(f"{RESULTS_PREFIX}/{path}", content)
        return path

    # Prefect calls these both ways (sync with `_sync=True`, and async), as it does LocalFileSystem's.
    async def aread_path(self, path: str) -> bytes:
        return await asyncio.to_thread(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._read(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return await asyncio.to_thread(self._write, path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        return self._write(path, content)


def results_block(cfg: StoreConfig) -> StoreResults:
    """The (unsaved) result storage of this store."""
    if cfg.uri.startswith("s3://"):
        return StoreResults(uri=cfg.uri, endpoint_url=cfg.endpoint_url, region=cfg.region, profile=cfg.profile)
    return StoreResults(uri=cfg.uri, root=store_from_config(cfg).root.as_posix())


def result_storage(cfg: StoreConfig) -> StoreResults:
    """Where this store's Prefect records go: next to its artifacts, through a block saved (idempotently, under a name
    derived from the store) on the Prefect server, so a record's storage_block_id leads back to this checked storage
    whichever process reads it."""
    block = results_block(cfg)
    name = "infimmr-results-" + sha256_text(block.model_dump_json())[:16]
    try:
        return StoreResults.load(name)
    except ValueError:  # not saved on this Prefect server yet
        block.save(name, overwrite=True)  # overwrite: a concurrent first save of the same store is the same block
        return block

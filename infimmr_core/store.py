"""Immutable, content-verified artifacts in object storage.

Every pipeline stage writes one artifact (a directory of files) addressed by (stage, key):

    <root>/<stage>/<key>/<relative files...>
    <root>/<stage>/<key>/MANIFEST.json

The manifest is written LAST and is the commit point: no manifest means the artifact is
absent, so a crashed upload is invisible and the next attempt simply overwrites it.
`open_store` returns a `LocalStore` for file:// URIs (or bare paths) and an `S3Store` for
s3:// URIs (AWS, MinIO, R2, Ceph, ...).

Nothing derived from a URI, a stage, a key, a manifest or a caller's path resolves outside its root: names are single
path segments, S3 prefixes have no '..' or empty segments, file paths are relative and inside their artifact, and a
local store's root is a directory that is (or becomes) a store, never a system directory or someone's home
(`check_local_root`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from urllib3.exceptions import HTTPError as Urllib3Error
from pydantic import BaseModel, Field, ValidationError, field_validator

from infimmr_core import download_cache
from infimmr_core.atomic import fsync_dir, write_atomic, write_temp
from infimmr_core.config import StoreConfig
from infimmr_core.hash_index import HashIndex
from infimmr_core.s3_retry import BodyMismatch, RetriesExhausted, RetryBudget, RetryingClient, describe
from infimmr_core.store_root import NotAStoreRoot, check_local_root, claim

MANIFEST_NAME = "MANIFEST.json"
_MiB = 1024 * 1024
_log = logging.getLogger(__name__)


class StoreError(Exception):
    """Any failure talking to an artifact store."""


class ArtifactMissing(StoreError):
    """No committed artifact (no manifest) at (stage, key)."""


class ArtifactCorrupt(StoreError):
    """The artifact's files do not match its manifest (or the manifest is unreadable)."""


class StoreUnavailable(StoreError):
    """An S3 operation kept failing transiently (resets, 5xx, SlowDown, truncated bodies) until its retry budget ran
    out. Names the operation, the object and how hard the store tried."""

    def __init__(self, operation: str, location: str, attempts: int, elapsed: float, last: BaseException):
        super().__init__(f"{operation} ({location}) failed after {attempts} attempts over {elapsed:.1f}s: "
                         f"{describe(last)}")
        self.operation, self.location, self.attempts, self.elapsed = operation, location, attempts, elapsed


class FileEntry(BaseModel):
    path: str = Field(description="POSIX path relative to the artifact directory.")
    size: int
    sha256: str
    etag: str = Field("", description="The S3 object's ETag as listed right after the upload (empty for a local "
                      "store): a forced recompute reuses the stored object only while it still has this ETag, so an "
                      "object overwritten or truncated since is uploaded again, never kept.")

    @field_validator("path")
    @classmethod
    def _relative_inside(cls, path: str) -> str:
        # Manifests come from remote storage; a '../' path would write outside the cache dir.
        if not is_relative_inside(path):
            raise ValueError(f"invalid artifact file path {path!r}")
        return path


def is_relative_inside(path: str) -> bool:
    """Is `path` a file path that stays inside the directory it is joined to (and is not the manifest)?"""
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\\" not in path \
        and "\x00" not in path and path != MANIFEST_NAME


class Manifest(BaseModel):
    """What an artifact contains and where it came from.

    `digest` identifies the CONTENT only (not the key or metadata): sha256 over the JSON
    list of [path, sha256] pairs sorted by path, so identical files give the same digest on
    any machine and under any key.
    """

    stage: str
    key: str
    files: list[FileEntry]
    digest: str
    producer: dict[str, Any]
    key_inputs: dict[str, Any]
    metrics: dict[str, Any] = Field(default_factory=dict)
    version: str = Field("", description="The folder inside the artifact's directory that holds its files; empty for "
                         "the directory itself. A forced recompute commits its files beside the artifact it replaces, "
                         "in a new version folder, so the old files stay whole until the new manifest is committed.")

    @field_validator("version")
    @classmethod
    def _version_name(cls, version: str) -> str:
        if version and not _VERSION.match(version):
            raise ValueError(f"invalid artifact version {version[:80]!r}")
        return version


_VERSION = re.compile(r"^\.version-[0-9a-f]{32}$")  # hidden: never a stage's own file name in practice


def _new_version() -> str:
    return f".version-{uuid.uuid4().hex}"


def content_digest(files: list[FileEntry]) -> str:
    """The manifest digest of these files (see Manifest)."""
    pairs = sorted([f.path, f.sha256] for f in files)
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _scan_dir(local_dir: Path, cache_dir: Path) -> list[FileEntry]:
    """Every regular file under local_dir (symlinked dirs are not followed), sorted by path. A file unchanged since
    an earlier scan (its stat identity, remembered under cache_dir: see hash_index) is not read again."""
    rels = []
    for dirpath, _, filenames in os.walk(local_dir):
        for name in filenames:
            rel = Path(dirpath, name).relative_to(local_dir).as_posix()
            if rel == MANIFEST_NAME:
                raise StoreError(f"{local_dir}: a top-level {MANIFEST_NAME} is reserved for the store")
            rels.append(rel)
    index = HashIndex(cache_dir, local_dir, hasher=_sha256_file)
    # hashlib releases the GIL while it hashes, so a model's shards are hashed on every core at once.
    hashed = _parallel(index.sha256, rels)
    index.save()
    entries = [FileEntry(path=rel, size=size, sha256=sha) for rel, (sha, size) in zip(rels, hashed)]
    return sorted(entries, key=lambda e: e.path)


def _workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) * 2))


def _parallel(fn: Callable[[Any], Any], items: list[Any], workers: int | None = None) -> list[Any]:
    """[fn(item) for item in items], several at once (files: I/O and hashing release the GIL). The first error is
    re-raised once the calls already started have ended; the others never start."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers or _workers(), len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


@dataclass
class PutReport:
    """What the latest put_dir of a store object sent: files uploaded, and files the store already held (kept in
    place, or copied inside the store) and so did not send again."""

    uploaded_files: int = 0
    uploaded_bytes: int = 0
    reused_files: int = 0
    reused_bytes: int = 0

    def add(self, size: int, *, reused: bool) -> None:
        if reused:
            self.reused_files, self.reused_bytes = self.reused_files + 1, self.reused_bytes + size
        else:
            self.uploaded_files, self.uploaded_bytes = self.uploaded_files + 1, self.uploaded_bytes + size


_BAD_NAME = re.compile(r"^\.|[/\\\s\x00]|^$")
_MAX_NAME = 200  # a path segment; filesystems stop at 255 bytes


def _check_name(what: str, value: str) -> None:
    # stage and key become path segments: a '/', '..' or hidden name would escape or collide.
    if not isinstance(value, str) or _BAD_NAME.search(value) or len(value) > _MAX_NAME:
        raise StoreError(f"invalid {what} {str(value)[:80]!r}: must be non-empty, at most {_MAX_NAME} characters, not "
                         "start with '.', no '/', '\\', spaces or NUL")


def _check_file_path(stage: str, key: str, path: str) -> None:
    if not isinstance(path, str) or not is_relative_inside(path):
        raise StoreError(f"invalid file path {str(path)[:80]!r} in {stage}/{key}: must be relative and stay inside "
                         "the artifact")


def _default_producer() -> dict[str, Any]:
    try:
        version = metadata.version("infimmr")
    except metadata.PackageNotFoundError:  # running from a source checkout via PYTHONPATH
        version = "unknown"
    return {
        "host": socket.gethostname(),
        "infimmr_version": version,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }


def _parse_manifest(raw: bytes, stage: str, key: str, where: str) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as e:
        raise ArtifactCorrupt(f"{where}: unreadable {MANIFEST_NAME}: {e}") from e
    if (manifest.stage, manifest.key) != (stage, key):
        raise ArtifactCorrupt(f"{where}: {MANIFEST_NAME} belongs to {manifest.stage}/{manifest.key}")
    if manifest.digest != content_digest(manifest.files):
        raise ArtifactCorrupt(f"{where}: {MANIFEST_NAME} digest does not match its file list")
    return manifest


def _committed(raw: bytes, stage: str, key: str, where: str) -> Manifest | None:
    """The manifest in `raw`, or None when it is damaged (truncated by a crash, emptied, edited): a commit point that
    cannot be read commits nothing, so the artifact counts as absent and the next put_dir replaces it, instead of
    every rerun failing on it."""
    try:
        return _parse_manifest(raw, stage, key, where)
    except ArtifactCorrupt as err:
        _log.warning("%s; the artifact counts as absent and is computed again", str(err).splitlines()[0])
        return None


def _verify_files(root: Path, manifest: Manifest, where: str, *, hashes: bool) -> None:
    """Raise ArtifactCorrupt unless every manifest file exists under root with its size (and sha256)."""
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            raise ArtifactCorrupt(f"{where}: file {entry.path!r} is missing")
        size = path.stat().st_size
        if size != entry.size:
            raise ArtifactCorrupt(f"{where}: file {entry.path!r} has {size} bytes, manifest says {entry.size}")
        if hashes and (sha := _sha256_file(path)) != entry.sha256:
            raise ArtifactCorrupt(f"{where}: file {entry.path!r} has sha256 {sha}, manifest says {entry.sha256}")


@dataclass(frozen=True)
class Reuse:
    """A file the store already holds: its path inside the artifact's folder `version`, and its entry there."""

    version: str
    entry: FileEntry


def _reusable(files: list[FileEntry], held: dict[str, FileEntry], version: str) -> dict[str, Reuse]:
    """The new files that are byte for byte a held file of the replaced version (same path, size and sha256)."""
    return {f.path: Reuse(version, held[f.path]) for f in files
            if f.path in held and (held[f.path].size, held[f.path].sha256) == (f.size, f.sha256)}


def _with_etags(files: list[FileEntry], etags: dict[str, str] | None) -> list[FileEntry]:
    etags = etags or {}
    return [f.model_copy(update={"etag": etags.get(f.path, "")}) for f in files]


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers never see a half-written file, and after a crash the file is the old one or the whole new one."""
    write_atomic(path, data)


class ArtifactStore(ABC):
    """Base class: the commit protocol (manifest last, deleted first) lives here once."""

    uri: str
    cache_dir: Path  # local downloads, scratch work directories and model caches

    @abstractmethod
    def has(self, stage: str, key: str) -> bool: ...

    @abstractmethod
    def manifest(self, stage: str, key: str) -> Manifest | None: ...

    @abstractmethod
    def artifact_uri(self, stage: str, key: str) -> str: ...

    @abstractmethod
    def delete(self, stage: str, key: str) -> None:
        """Remove the artifact: manifest first (so it vanishes atomically), then its files."""

    @abstractmethod
    def list_keys(self, stage: str) -> list[str]:
        """Sorted keys of `stage` that have a manifest (committed artifacts only)."""

    last_put: PutReport = PutReport()  # what the latest put_dir sent (per store object; tests, benchmarks, logs)

    @abstractmethod
    def _upload_files(self, stage: str, key: str, local_dir: Path, files: list[FileEntry], version: str = "", *,
                      reuse: dict[str, Reuse] | None = None) -> dict[str, str] | None:
        """Store `files` of local_dir in folder `version` of (stage, key), except those in `reuse`, which are taken
        from where the store already holds them; returns each stored file's ETag where the backend has one."""

    @abstractmethod
    def _held_files(self, manifest: Manifest) -> dict[str, FileEntry]:
        """The files of a committed manifest that the store still holds whole (present, its size, and on S3 the ETag
        recorded at commit); their entries."""

    @abstractmethod
    def _write_manifest(self, manifest: Manifest, *, exclusive: bool = False) -> bool:
        """Commit the manifest; with `exclusive`, only if no manifest exists (atomically), else return False."""

    @abstractmethod
    def _remove_other_versions(self, stage: str, key: str, version: str) -> None:
        """Delete every file of (stage, key) that is neither its manifest nor in folder `version`."""

    @abstractmethod
    def _remove_version(self, stage: str, key: str, version: str) -> None:
        """Delete folder `version` of (stage, key) (an upload that failed), best effort."""

    @abstractmethod
    def _materialize(self, manifest: Manifest, *, verify: bool) -> Path: ...

    def put_dir(
        self,
        stage: str,
        key: str,
        local_dir: str | Path,
        *,
        key_inputs: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        producer: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> Manifest:
        """Upload every file under local_dir, then commit the manifest; returns the committed manifest.

        A committed artifact is never replaced in place: when (stage, key) already has one, that one is returned and
        nothing is uploaded (two runs that computed the same key agree on one digest, and whatever cites it keeps
        finding it). With `replace` (a forced recompute), the files go to a new version folder beside the old ones,
        the manifest switches over once they are all there, and only then are the old files removed: a reader finds
        the old artifact or the new one, whole. A file the replaced version already holds whole (same path, size and
        sha256; on S3 still with the ETag recorded at its commit) is not sent again: it is copied inside the bucket
        (hard-linked locally) into the new folder, and when no file changed the new manifest keeps the old folder.
        `last_put` says what was sent. `producer` entries are merged over the defaults (host, infimmr_version,
        created_at).
        """
        _check_name("stage", stage)
        _check_name("key", key)
        src = Path(local_dir)
        if not src.is_dir():
            raise StoreError(f"put_dir {stage}/{key}: {src} is not a directory")
        if (src / MANIFEST_NAME).exists():
            raise StoreError(f"{src}: a top-level {MANIFEST_NAME} is reserved for the store")
        self.last_put = PutReport()
        existing = self.manifest(stage, key)
        if existing is not None and not replace:  # checked before hashing: a kept artifact needs no digest
            _log.info("%s is already committed (digest %s); kept, not replaced", self._where(stage, key), existing.digest)
            return existing
        files = _scan_dir(src, self.cache_dir)
        manifest = Manifest(
            stage=stage,
            key=key,
            files=files,
            digest=content_digest(files),
            producer={**_default_producer(), **(producer or {})},
            key_inputs=key_inputs,
            metrics=metrics or {},
        )
        if existing is not None:
            # Files whose content the store already holds (same path, size and sha256, still stored whole) are not
            # sent again. When every file is unchanged, the new manifest keeps the old version folder: readers of
            # the old manifest and of the new one find the same whole files, so nothing is replaced in place.
            held = self._held_files(existing)
            unchanged = {f.path: held[f.path] for f in files if f.path in held}
            same = existing.digest == manifest.digest and len(unchanged) == len(existing.files) == len(files)
            if same:
                manifest.version = existing.version
                manifest.files = [f.model_copy(update={"etag": unchanged[f.path].etag}) for f in files]
                self.last_put = PutReport(reused_files=len(files), reused_bytes=sum(f.size for f in files))
                self._write_manifest(manifest)
                _log.info("%s: the recomputed files are the stored ones; none uploaded", self._where(stage, key))
                return manifest
            manifest.version = _new_version()
            try:
                etags = self._upload_files(stage, key, src, files, manifest.version,
                                           reuse=_reusable(files, unchanged, existing.version))
            except BaseException:
                self._remove_version(stage, key, manifest.version)  # the old artifact stays, and stays alone
                raise
            manifest.files = _with_etags(files, etags)
            self._write_manifest(manifest)
            self._remove_other_versions(stage, key, manifest.version)
            return manifest
        # No manifest: whatever is there is debris of a crashed attempt, which nobody reads.
        self.delete(stage, key)
        etags = self._upload_files(stage, key, src, files)
        manifest.files = _with_etags(files, etags)
        if self._write_manifest(manifest, exclusive=True):
            return manifest
        # Another producer committed this key while we uploaded (one that lost its lease: see infimmr_core.lease).
        winner = self.manifest(stage, key)
        if winner is None:
            raise StoreError(f"{self._where(stage, key)}: another producer's manifest vanished while committing")
        _log.warning("%s was committed by another run first (digest %s); kept, not replaced", self._where(stage, key),
                     winner.digest)
        return winner

    def get_dir(self, stage: str, key: str, *, verify: bool = True) -> Path:
        """A local directory holding the artifact's files (and its MANIFEST.json), checked against the manifest.

        Raises ArtifactMissing when not committed, ArtifactCorrupt when files do not match.
        """
        manifest = self.manifest(stage, key)
        if manifest is None:
            raise ArtifactMissing(f"artifact {stage}/{key} not found in {self.uri} (no valid {MANIFEST_NAME})")
        return self._materialize(manifest, verify=verify)

    def get_file(self, stage: str, key: str, path: str) -> Path:
        """A local copy of one file of an artifact, checked against its manifest entry (size and sha256), without
        fetching the rest: a curation shard needs its own Parquet file, not every shard beside it."""
        manifest = self.manifest(stage, key)
        if manifest is None:
            raise ArtifactMissing(f"artifact {stage}/{key} not found in {self.uri} (no valid {MANIFEST_NAME})")
        entry = next((f for f in manifest.files if f.path == path), None)
        if entry is None:
            raise ArtifactMissing(f"{self._where(stage, key)} has no file {path!r}")
        return self._materialize_file(manifest, entry)

    @abstractmethod
    def _materialize_file(self, manifest: Manifest, entry: FileEntry) -> Path: ...

    def _where(self, stage: str, key: str) -> str:
        return f"artifact {stage}/{key} in {self.uri}"

    @abstractmethod
    def read_file(self, stage: str, key: str, path: str) -> bytes | None:
        """One file of an artifact, unverified and without downloading the rest (e.g. a report beside model
        weights, for display); None when absent. Use get_dir for inputs a stage computes with."""


class LocalStore(ArtifactStore):
    """Artifacts in a local (or network-mounted) directory; get_dir returns them in place."""

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None):
        self.root = Path(root).expanduser().resolve()
        self.uri = f"file://{self.root}"
        try:
            check_local_root(self.root)
        except NotAStoreRoot as err:
            raise StoreError(f"refusing the store {self.uri}: {err}") from err
        # Nothing is downloaded for a local store, but stages still need scratch and model caches.
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()

    def _dir(self, stage: str, key: str) -> Path:
        _check_name("stage", stage)
        _check_name("key", key)
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        return self.manifest(stage, key) is not None

    def read_file(self, stage: str, key: str, path: str) -> bytes | None:
        _check_file_path(stage, key, path)
        committed = self.manifest(stage, key)
        folder = self._dir(stage, key) / (committed.version if committed else "")
        target = folder / path
        # A symlink in the store must not lead a reader out of it either.
        if not target.is_file() or not target.resolve().is_relative_to(folder.resolve()):
            return None
        return target.read_bytes()

    def manifest(self, stage: str, key: str) -> Manifest | None:
        try:
            raw = (self._dir(stage, key) / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            return None
        return _committed(raw, stage, key, self._where(stage, key))

    def artifact_uri(self, stage: str, key: str) -> str:
        return f"file://{self._dir(stage, key)}"

    def delete(self, stage: str, key: str) -> None:
        target = self._dir(stage, key)
        (target / MANIFEST_NAME).unlink(missing_ok=True)
        shutil.rmtree(target, ignore_errors=True)

    def list_keys(self, stage: str) -> list[str]:
        _check_name("stage", stage)
        stage_dir = self.root / stage
        if not stage_dir.is_dir():
            return []
        return sorted(p.parent.name for p in stage_dir.glob(f"*/{MANIFEST_NAME}") if not p.parent.name.startswith("."))

    def put_dir(self, stage: str, key: str, local_dir: str | Path, **kwargs: Any) -> Manifest:
        # Replacing deletes the target first: uploading from (or around) it would destroy the source.
        src, target = Path(local_dir).resolve(), self._dir(stage, key)
        if src == target or target in src.parents or src in target.parents:
            raise StoreError(f"put_dir {stage}/{key}: {src} overlaps the artifact directory {target}")
        claim(self.root)
        return super().put_dir(stage, key, local_dir, **kwargs)

    def _upload_files(self, stage: str, key: str, local_dir: Path, files: list[FileEntry], version: str = "", *,
                      reuse: dict[str, Reuse] | None = None) -> dict[str, str] | None:
        target = self._dir(stage, key) / version
        folders = set()
        reuse = reuse or {}
        for entry in files:
            dst = target / entry.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp-{uuid.uuid4().hex}")
            if entry.path in reuse:  # a hard link: stored files are never written in place, only removed
                held = reuse[entry.path]
                os.link(self._dir(stage, key) / held.version / held.entry.path, tmp)
                os.replace(tmp, dst)
                folders.add(dst.parent)
                self.last_put.add(entry.size, reused=True)
                continue
            self.last_put.add(entry.size, reused=False)
            with (local_dir / entry.path).open("rb") as fin, tmp.open("wb") as fout:
                shutil.copyfileobj(fin, fout, 8 * _MiB)
                # Durable before the manifest commits them, or a power cut could leave a manifest over holes.
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, dst)
            folders.add(dst.parent)
        for folder in folders:  # ... and so are their names
            fsync_dir(folder)
        return None

    def _held_files(self, manifest: Manifest) -> dict[str, FileEntry]:
        folder = self._files_dir(manifest)
        held = {}
        for entry in manifest.files:
            path = folder / entry.path
            # Hashed, not trusted: a forced recompute may be what repairs a damaged file.
            if path.is_file() and path.stat().st_size == entry.size and _sha256_file(path) == entry.sha256:
                held[entry.path] = entry
        return held

    def _write_manifest(self, manifest: Manifest, *, exclusive: bool = False) -> bool:
        target = self._dir(manifest.stage, manifest.key)
        target.mkdir(parents=True, exist_ok=True)
        data = manifest.model_dump_json(indent=2).encode()
        if not exclusive:
            _write_atomic(target / MANIFEST_NAME, data)
            return True
        return _link_exclusive(target / MANIFEST_NAME, data)

    def _remove_other_versions(self, stage: str, key: str, version: str) -> None:
        for entry in self._dir(stage, key).iterdir():
            if entry.name in (MANIFEST_NAME, version):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def _remove_version(self, stage: str, key: str, version: str) -> None:
        shutil.rmtree(self._dir(stage, key) / version, ignore_errors=True)

    def _files_dir(self, manifest: Manifest) -> Path:
        return self._dir(manifest.stage, manifest.key) / manifest.version

    def _materialize(self, manifest: Manifest, *, verify: bool) -> Path:
        target = self._files_dir(manifest)
        _verify_files(target, manifest, self._where(manifest.stage, manifest.key), hashes=verify)
        return target

    def _materialize_file(self, manifest: Manifest, entry: FileEntry) -> Path:
        one = manifest.model_copy(update={"files": [entry]})
        _verify_files(self._files_dir(manifest), one, self._where(manifest.stage, manifest.key), hashes=True)
        return self._files_dir(manifest) / entry.path

    # Leases (infimmr_core.lease): <root>/.leases/<stage>/<key>.json, outside every artifact ('.' starts no stage).
    def _lease_path(self, stage: str, key: str) -> Path:
        _check_name("stage", stage)
        _check_name("key", key)
        return self.root / LEASES / stage / f"{key}.json"

    @contextmanager
    def _lease_lock(self) -> Iterator[None]:
        """Serialises compare-and-swap on lease records (held for a read and a rename, never while a stage runs)."""
        path = self.root / LEASES / ".lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def lease_read(self, stage: str, key: str) -> tuple[bytes, str] | None:
        try:
            raw = self._lease_path(stage, key).read_bytes()
        except FileNotFoundError:
            return None
        return raw, hashlib.sha256(raw).hexdigest()

    def lease_create(self, stage: str, key: str, data: bytes) -> str | None:
        claim(self.root)  # a root holding only a lease must still be recognised as a store
        path = self._lease_path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return hashlib.sha256(data).hexdigest() if _link_exclusive(path, data) else None

    def lease_swap(self, stage: str, key: str, data: bytes, token: str) -> str | None:
        with self._lease_lock():
            current = self.lease_read(stage, key)
            if current is None or current[1] != token:
                return None
            _write_atomic(self._lease_path(stage, key), data)
        return hashlib.sha256(data).hexdigest()

    def lease_delete(self, stage: str, key: str, token: str) -> bool:
        with self._lease_lock():
            current = self.lease_read(stage, key)
            if current is None or current[1] != token:
                return False
            self._lease_path(stage, key).unlink()
        return True


LEASES = ".leases"


def _link_exclusive(path: Path, data: bytes) -> bool:
    """Write `path` only if it does not exist, atomically: the whole file appears at once (a hard link of a complete,
    fsynced temp file), or not at all when another writer was first."""
    tmp = write_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _default_cache_dir() -> Path:
    return Path(os.environ.get("INFIMMR_CACHE_DIR") or "~/.cache/infimmr").expanduser()


def _make_s3_client(endpoint_url: str | None, region: str | None, profile: str | None, request_attempts: int = 3) -> Any:
    """An S3 client from boto3's standard configuration chain; explicit arguments override it.

    botocore addresses any custom endpoint (argument, AWS_ENDPOINT_URL[_S3] or a profile's
    endpoint_url) path-style unless the profile asks for 'virtual': what MinIO/R2/Ceph need.
    botocore's own retries are set here, explicitly (standard mode, `request_attempts` per request), rather than
    left to AWS_MAX_ATTEMPTS or a profile: the store's retry loop (s3_retry) multiplies them.
    """
    retries = BotoConfig(retries={"mode": "standard", "total_max_attempts": request_attempts})
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client("s3", endpoint_url=endpoint_url, config=retries)
    except BotoCoreError as e:  # unknown profile, bad region or endpoint syntax
        raise StoreError(f"cannot configure the S3 client: {e}") from e


_CREDENTIALS_HELP = (
    "configure AWS credentials the standard boto3 way: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(for MinIO/R2/Ceph: the access key pair of that service), or AWS_PROFILE with ~/.aws/credentials"
)
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


class S3Store(ArtifactStore):
    """Artifacts in an S3(-compatible) bucket; get_dir downloads into a verified local cache.

    A download is always checked against the manifest (sizes + sha256) before it becomes
    visible in the cache, so `verify` only matters for the local store; a cache hit is
    handed back only when its files match the manifest's sha256 (download_cache: a file unchanged since it was
    verified is not hashed again). The cache is bounded (`cache_max_bytes`, LRU over whole artifacts).

    Every S3 call, the reading of its response body included, is retried under `retry` (s3_retry); what leaves the
    store is a StoreError (StoreUnavailable once the budget is spent), never a botocore or urllib3 exception.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        cache_dir: str | Path | None = None,
        retry: RetryBudget | None = None,
        cache_max_bytes: int | None = None,
    ):
        if not bucket:
            raise StoreError("S3 store URI needs a bucket: s3://bucket[/prefix]")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        _check_s3_location(bucket, self.prefix)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
        self.retry = retry or RetryBudget()
        self.cache_max_bytes = cache_max_bytes
        self._client_settings = {"endpoint_url": endpoint_url, "region": region, "profile": profile,
                                 "retry": self.retry, "cache_max_bytes": cache_max_bytes}
        # Every API call through self._client is retried (s3_retry.RetryingClient); self._client.raw is boto3's.
        self._client = RetryingClient(_make_s3_client(endpoint_url, region, profile, self.retry.request_attempts),
                                      self.retry, _log)
        # s3transfer retries a broken download stream itself: bounded like botocore's per-request retries.
        self._transfer = TransferConfig(multipart_threshold=64 * _MiB, multipart_chunksize=64 * _MiB, max_concurrency=8,
                                        num_download_attempts=self.retry.request_attempts)
        self._bucket_checked = False
        self._cache_cleaned = False

    def __reduce__(self) -> tuple[Any, ...]:
        # boto3 clients do not pickle; rebuild from the same settings (e.g. in a Prefect worker
        # process, or when Prefect hashes task inputs), letting that process's env configure the rest.
        return (partial(S3Store, **self._client_settings, cache_dir=self.cache_dir), (self.bucket, self.prefix))

    @property
    def endpoint_url(self) -> str:
        return self._client.meta.endpoint_url

    def read_file(self, stage: str, key: str, path: str) -> bytes | None:
        _check_file_path(stage, key, path)
        committed = self.manifest(stage, key)
        base = self._files_prefix(committed) if committed else self._key_prefix(stage, key)
        return self._get_object(base + path)

    def _files_prefix(self, manifest: Manifest) -> str:
        base = self._key_prefix(manifest.stage, manifest.key)
        return base + manifest.version + "/" if manifest.version else base

    def _key_prefix(self, stage: str, key: str) -> str:
        _check_name("stage", stage)
        _check_name("key", key)
        return "/".join(p for p in (self.prefix, stage, key) if p) + "/"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn botocore failures into StoreErrors that say what to fix."""
        try:
            yield
        except NoCredentialsError as e:
            raise StoreError(f"{action} in {self.uri}: no S3 credentials found; {_CREDENTIALS_HELP}") from e
        except EndpointConnectionError as e:
            raise StoreError(f"{action} in {self.uri}: cannot reach endpoint {self.endpoint_url}: {e}") from e
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise self._no_bucket_error() from e
            if code in _CREDENTIAL_CODES:
                rejected = f"credentials rejected by {self.endpoint_url} ({code})"
                raise StoreError(f"{action} in {self.uri}: {rejected}; {_CREDENTIALS_HELP}") from e
            raise StoreError(f"{action} in {self.uri} (endpoint {self.endpoint_url}) failed: {e}") from e
        except (BotoCoreError, Boto3Error) as e:
            raise StoreError(f"{action} in {self.uri} (endpoint {self.endpoint_url}) failed: {e}") from e
        except RetriesExhausted as e:
            if isinstance(e.last, BodyMismatch):  # whole bodies, repeatedly not what the manifest says: damaged at rest
                raise ArtifactCorrupt(f"{action} in {self.uri}: s3://{e.location}: {e.last} ({e.attempts} attempts)") from e
            where = f"s3://{e.location} at {self.endpoint_url}, {e.operation}"
            raise StoreUnavailable(f"{action} in {self.uri}", where, e.attempts, e.elapsed, e.last) from e
        except (Urllib3Error, OSError) as e:  # a socket or local file error that no retry absorbed
            raise StoreError(f"{action} in {self.uri} (endpoint {self.endpoint_url}) failed: {describe(e)}") from e

    @property
    def retries(self) -> int:
        """Transient failures this store object has retried so far."""
        return self._client.retries

    def _no_bucket_error(self) -> StoreError:
        return StoreError(f"S3 bucket {self.bucket!r} does not exist at endpoint {self.endpoint_url}; create it first")

    def _ensure_bucket(self) -> None:
        """Check once that the bucket exists: otherwise a missing bucket would look like a missing artifact."""
        if self._bucket_checked:
            return
        with self._errors("checking the bucket"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                    raise self._no_bucket_error() from e
                # 403: credentials may be scoped to objects only; real problems surface on the next call.
                if code not in {"403", "AccessDenied"}:
                    raise
        self._bucket_checked = True

    def _get_object(self, key: str) -> bytes | None:
        # The body is read inside the retried attempt (RetryingClient.get_object): a reset or short body is requested
        # again. Its own _errors: read_file has no other, and raw botocore errors never leave the store.
        with self._errors(f"reading s3://{self.bucket}/{key}"):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as e:
                if e.response.get("Error", {}).get("Code", "") in _NOT_FOUND_CODES:
                    return None
                raise

    def _list(self, prefix: str) -> Iterator[str]:
        yield from self._client.list_all(self.bucket, prefix)  # a failed page restarts the listing

    def _object_key(self, rel: str) -> str:
        if not is_relative_inside(rel):
            raise StoreError(f"invalid object path {rel[:80]!r} in {self.uri}")
        return "/".join(p for p in (self.prefix, rel) if p)

    def read_object(self, rel: str, max_bytes: int | None = None) -> bytes | None:
        """The object at <prefix>/<rel> that is no artifact (a Prefect record), at most its first max_bytes, with the
        store's retries; None when absent."""
        key = self._object_key(rel)
        ranged = {"Range": f"bytes=0-{max_bytes - 1}"} if max_bytes else {}
        with self._errors(f"reading s3://{self.bucket}/{key}"):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=key, **ranged)["Body"].read()
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in _NOT_FOUND_CODES:
                    return None
                if code == "InvalidRange":  # an empty object has no byte 0
                    return b""
                raise

    def write_object(self, rel: str, data: bytes) -> None:
        """Write the object at <prefix>/<rel> (see read_object), with the store's retries."""
        key = self._object_key(rel)
        with self._errors(f"writing s3://{self.bucket}/{key}"):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def has(self, stage: str, key: str) -> bool:
        return self.manifest(stage, key) is not None  # a damaged manifest commits nothing (see _committed)

    def manifest(self, stage: str, key: str) -> Manifest | None:
        manifest_key = self._key_prefix(stage, key) + MANIFEST_NAME
        self._ensure_bucket()
        with self._errors(f"reading the manifest of {stage}/{key}"):
            raw = self._get_object(manifest_key)
        return None if raw is None else _committed(raw, stage, key, self._where(stage, key))

    def artifact_uri(self, stage: str, key: str) -> str:
        return f"s3://{self.bucket}/{self._key_prefix(stage, key).rstrip('/')}"

    def delete(self, stage: str, key: str) -> None:
        base = self._key_prefix(stage, key)
        self._ensure_bucket()
        with self._errors(f"deleting {stage}/{key}"):
            self._client.delete_object(Bucket=self.bucket, Key=base + MANIFEST_NAME)
            # One DeleteObject per file, not DeleteObjects: the batch call needs request checksums
            # that several S3-compatible servers reject, and artifacts hold few files.
            for obj_key in list(self._list(base)):
                self._client.delete_object(Bucket=self.bucket, Key=obj_key)

    def list_keys(self, stage: str) -> list[str]:
        _check_name("stage", stage)
        stage_prefix = "/".join(p for p in (self.prefix, stage) if p) + "/"
        self._ensure_bucket()
        with self._errors(f"listing {stage}"):
            rels = [k[len(stage_prefix):] for k in self._list(stage_prefix)]
        return sorted(r.split("/")[0] for r in rels if r.count("/") == 1 and r.endswith("/" + MANIFEST_NAME))

    def _upload_files(self, stage: str, key: str, local_dir: Path, files: list[FileEntry], version: str = "", *,
                      reuse: dict[str, Reuse] | None = None) -> dict[str, str] | None:
        base = self._key_prefix(stage, key) + (version + "/" if version else "")
        reuse = reuse or {}

        def store_one(entry: FileEntry) -> bool:
            """Stores one file; True when it was copied inside the bucket rather than sent."""
            held = reuse.get(entry.path)
            if held is not None and self._copy_held(stage, key, held, base + entry.path):
                return True
            self._client.upload_file(str(local_dir / entry.path), self.bucket, base + entry.path,
                                     Config=self._transfer)
            return False

        with self._errors(f"uploading {stage}/{key}"):
            # Several files at once (largest first): a model's many small files cost a round trip each.
            ordered = sorted(files, key=lambda f: -f.size)
            copied = _parallel(store_one, ordered)
            listed = self._list_sized(base)
        for entry, was_copied in zip(ordered, copied):
            self.last_put.add(entry.size, reused=was_copied)
        return {rel: etag for rel, (_, etag) in ((k[len(base):], v) for k, v in listed.items())}

    def _copy_held(self, stage: str, key: str, held: Reuse, dest_key: str) -> bool:
        """Copy a held file inside the bucket (no bytes through this machine), only while the object still has the
        ETag recorded at its commit; False when it changed or vanished meanwhile (then it is uploaded)."""
        if held.entry.size > _MAX_COPY:
            return False
        source = self._key_prefix(stage, key) + held.version + "/" + held.entry.path if held.version else \
            self._key_prefix(stage, key) + held.entry.path
        try:
            self._client.copy_object(Bucket=self.bucket, Key=dest_key, CopySourceIfMatch=held.entry.etag,
                                     CopySource={"Bucket": self.bucket, "Key": source})
        except ClientError as e:
            if _precondition_failed(e) or e.response.get("Error", {}).get("Code", "") in _NOT_FOUND_CODES:
                return False
            raise
        return True

    def _held_files(self, manifest: Manifest) -> dict[str, FileEntry]:
        base = self._files_prefix(manifest)
        with self._errors(f"listing {manifest.stage}/{manifest.key}"):
            listed = self._list_sized(base)
        # The ETag recorded at commit, still there: the object was not overwritten, truncated or removed since.
        return {f.path: f for f in manifest.files
                if f.etag and listed.get(base + f.path) == (f.size, f.etag)}

    def _list_sized(self, prefix: str) -> dict[str, tuple[int, str]]:
        """{object key: (size, ETag)} of every object under prefix, one listing (restarted whole if a page fails)."""

        def listing() -> dict[str, tuple[int, str]]:
            pages = self._client.raw.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return {obj["Key"]: (obj["Size"], obj["ETag"]) for page in pages for obj in page.get("Contents", [])}

        return self._client.call("list_objects_v2", f"{self.bucket}/{prefix}", listing)

    def _write_manifest(self, manifest: Manifest, *, exclusive: bool = False) -> bool:
        manifest_key = self._key_prefix(manifest.stage, manifest.key) + MANIFEST_NAME
        # If-None-Match: '*' makes the PUT create-only (S3 and MinIO honour it); a 412 means another producer won.
        condition = {"IfNoneMatch": "*"} if exclusive else {}
        with self._errors(f"committing {manifest.stage}/{manifest.key}"):
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=manifest_key,
                    Body=manifest.model_dump_json(indent=2).encode(),
                    ContentType="application/json",
                    **condition,
                )
            except ClientError as e:
                if _precondition_failed(e):
                    return False
                raise
        return True

    def _remove_other_versions(self, stage: str, key: str, version: str) -> None:
        base = self._key_prefix(stage, key)
        keep = (base + MANIFEST_NAME, base + version + "/")
        with self._errors(f"removing the replaced files of {stage}/{key}"):
            for obj_key in list(self._list(base)):
                if obj_key != keep[0] and not obj_key.startswith(keep[1]):
                    self._client.delete_object(Bucket=self.bucket, Key=obj_key)

    def _remove_version(self, stage: str, key: str, version: str) -> None:
        try:
            for obj_key in list(self._list(self._key_prefix(stage, key) + version + "/")):
                self._client.delete_object(Bucket=self.bucket, Key=obj_key)
        except Exception as err:  # the failure being reported matters more; a later forced commit removes these
            _log.warning("could not remove the failed upload %s of %s/%s: %s", version, stage, key, err)

    # Leases (infimmr_core.lease): <prefix>/.leases/<stage>/<key>.json, outside every artifact; the version token is
    # the ETag, and every change is a conditional request, so S3 itself decides who wins.
    def _lease_key(self, stage: str, key: str) -> str:
        _check_name("stage", stage)
        _check_name("key", key)
        return "/".join(p for p in (self.prefix, LEASES, stage, f"{key}.json") if p)

    def lease_read(self, stage: str, key: str) -> tuple[bytes, str] | None:
        self._ensure_bucket()
        with self._errors(f"reading the lease of {stage}/{key}"):
            try:
                got = self._client.get_object(Bucket=self.bucket, Key=self._lease_key(stage, key))
                return got["Body"].read(), got["ETag"]
            except ClientError as e:
                if e.response.get("Error", {}).get("Code", "") in _NOT_FOUND_CODES:
                    return None
                raise

    def _lease_put(self, stage: str, key: str, data: bytes, condition: dict[str, str]) -> str | None:
        self._ensure_bucket()
        with self._errors(f"writing the lease of {stage}/{key}"):
            try:
                put = self._client.put_object(Bucket=self.bucket, Key=self._lease_key(stage, key), Body=data,
                                              ContentType="application/json", **condition)
            except ClientError as e:
                if _precondition_failed(e) or e.response.get("Error", {}).get("Code", "") in _NOT_FOUND_CODES:
                    return None
                raise
        return put["ETag"]

    def lease_create(self, stage: str, key: str, data: bytes) -> str | None:
        return self._lease_put(stage, key, data, {"IfNoneMatch": "*"})

    def lease_swap(self, stage: str, key: str, data: bytes, token: str) -> str | None:
        return self._lease_put(stage, key, data, {"IfMatch": token})

    def lease_delete(self, stage: str, key: str, token: str) -> bool:
        self._ensure_bucket()
        with self._errors(f"releasing the lease of {stage}/{key}"):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self._lease_key(stage, key), IfMatch=token)
            except ClientError as e:
                if _precondition_failed(e) or e.response.get("Error", {}).get("Code", "") in _NOT_FOUND_CODES:
                    return False
                raise
        return True

    def cache_path(self, stage: str, key: str) -> Path:
        """Where get_dir puts (stage, key): <cache_dir>/<bucket>/<prefix>/<stage>/<key>."""
        path = self.cache_dir / self.bucket / self._key_prefix(stage, key).rstrip("/")
        # Bucket, prefix, stage and key were each checked to be plain segments; this keeps it so whatever changes.
        if not os.path.normpath(path).startswith(os.path.normpath(self.cache_dir) + os.sep):
            raise StoreError(f"{self.uri}: {stage}/{key} would be cached outside {self.cache_dir}")
        return path

    def _materialize(self, manifest: Manifest, *, verify: bool) -> Path:
        target = self.cache_path(manifest.stage, manifest.key)
        self._clean_cache_once(target)
        cached = self._cached_manifest(target)
        if cached is None or cached.digest != manifest.digest:
            self._download(manifest, target)
            download_cache.remember(self.cache_dir, target, manifest.digest, manifest.files)
            self._bound_cache(target)
        elif cached != manifest:  # same files, newer metadata (metrics, producer)
            _write_atomic(target / MANIFEST_NAME, manifest.model_dump_json(indent=2).encode())
        _HANDED_OUT.add(target)
        return target

    def _clean_cache_once(self, target: Path) -> None:
        """Remove what killed downloads left in this store's part of the cache (temp dirs untouched for a day)."""
        if self._cache_cleaned:
            return
        self._cache_cleaned = True
        store_dir = target.parent.parent  # <cache_dir>/<bucket>/<prefix>: its children are the stages
        stages = [p for p in store_dir.iterdir() if p.is_dir()] if store_dir.is_dir() else []
        for path in download_cache.remove_stale(stages):
            _log.info("removed %s, left behind by an interrupted download", path)

    def _bound_cache(self, just_downloaded: Path) -> None:
        if self.cache_max_bytes is not None:
            download_cache.evict(self.cache_dir, self.cache_max_bytes, _HANDED_OUT | {just_downloaded})

    def _materialize_file(self, manifest: Manifest, entry: FileEntry) -> Path:
        # Single files live beside (never inside) the whole-artifact cache dir, whose MANIFEST.json marks it complete.
        folder = self.cache_path(manifest.stage, manifest.key).with_name(f"{manifest.key}.files")
        target = folder / entry.path
        _HANDED_OUT.add(folder)
        if download_cache.verified(self.cache_dir, folder, manifest.digest, [entry]):  # content, not just size
            return target
        data = self.read_file(manifest.stage, manifest.key, entry.path)
        where = self._where(manifest.stage, manifest.key)
        if data is None:
            raise ArtifactCorrupt(f"{where}: file {entry.path!r} is missing from the bucket")
        if (sha := hashlib.sha256(data).hexdigest()) != entry.sha256:
            raise ArtifactCorrupt(f"{where}: file {entry.path!r} has sha256 {sha}, manifest says {entry.sha256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, data)
        download_cache.remember(self.cache_dir, folder, manifest.digest, [entry])
        self._bound_cache(folder)
        return target

    def _cached_manifest(self, target: Path) -> Manifest | None:
        """The manifest of a verified cache dir whose files all still hold their sha256, else None.

        The cached MANIFEST.json says which content the directory holds (_download writes it only after the files
        checked out); download_cache re-hashes any file changed since it was verified, so a tampered file of the
        same size is downloaded again, never handed back.
        """
        try:
            cached = Manifest.model_validate_json((target / MANIFEST_NAME).read_bytes())
        except (OSError, ValidationError):
            return None
        return cached if download_cache.verified(self.cache_dir, target, cached.digest, cached.files) else None

    def _download(self, manifest: Manifest, target: Path) -> None:
        """Download into a sibling temp dir, verify, then swap it in, so the cache is never half-written."""
        stage, key = manifest.stage, manifest.key
        target.parent.mkdir(parents=True, exist_ok=True)
        # Hidden names cannot collide with keys, which never start with '.'.
        tmp = target.with_name(f".{key}.tmp-{uuid.uuid4().hex}")
        try:
            self._fetch_files(manifest, self._files_prefix(manifest), tmp)
            # Each file's sha256 was checked as it arrived (download_verified): sizes and presence suffice here.
            _verify_files(tmp, manifest, self._where(stage, key), hashes=False)
            _write_atomic(tmp / MANIFEST_NAME, manifest.model_dump_json(indent=2).encode())
            self._install(tmp, target, manifest.digest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _install(self, tmp: Path, target: Path, digest: str) -> None:
        """Move a verified download into place without pulling files from under a concurrent reader."""
        try:
            tmp.rename(target)  # atomic, and refused while target exists
            return
        except OSError:
            pass
        current = self._cached_manifest(target)
        if current is not None and current.digest == digest:
            return  # a concurrent get_dir installed the same content first; its readers keep it
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)

    def _fetch_files(self, manifest: Manifest, base: str, dest: Path) -> None:
        dest.mkdir(parents=True)

        def fetch_one(entry: FileEntry) -> None:
            path = dest / entry.path
            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # repeated until the bytes on disk have the manifest's size and sha256: never a short body
                self._client.download_verified(self.bucket, base + entry.path, str(path), entry.size, entry.sha256,
                                               Config=self._transfer)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code", "") in _NOT_FOUND_CODES:
                    where = self._where(manifest.stage, manifest.key)
                    raise ArtifactCorrupt(f"{where}: file {entry.path!r} is missing from the bucket") from e
                raise

        with self._errors(f"downloading {manifest.stage}/{manifest.key}"):
            # Several files at once (largest first), as uploads.
            _parallel(fetch_one, sorted(manifest.files, key=lambda f: -f.size))


def _precondition_failed(e: ClientError) -> bool:
    """A conditional request (If-None-Match / If-Match) lost: the object exists, or changed since we read it."""
    error = e.response.get("Error", {})
    return error.get("Code", "") in ("PreconditionFailed", "412", "ConditionalRequestConflict") or \
        e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)


# Cache directories this process has handed out (get_dir, get_file): a stage may still be reading them, so the LRU
# bound never evicts them.
_HANDED_OUT: set[Path] = set()

_MAX_COPY = 5 * 1024 ** 3  # CopyObject's limit; a larger held file is uploaded again

_S3_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def _check_s3_location(bucket: str, prefix: str) -> None:
    """Bucket and prefix become directories of the download cache: each must be a plain name, never '..'."""
    if not _S3_BUCKET.match(bucket) or ".." in bucket:
        raise StoreError(f"invalid S3 bucket name {bucket[:80]!r}")
    for segment in prefix.split("/") if prefix else ():
        if segment in ("", ".", "..") or "\\" in segment or "\x00" in segment:
            raise StoreError(f"invalid S3 prefix {prefix[:200]!r}: segment {segment[:80]!r} (no '.', '..', empty "
                             "segments, '\\' or NUL)")


def _local_root(uri: str) -> Path:
    # file:///abs/path, file://./rel or file://~/x, or a bare path; relative ones resolve against the CWD.
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return Path(path).expanduser().resolve()


def open_store(
    uri: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    cache_dir: str | Path | None = None,
    retry: RetryBudget | None = None,
    cache_max_bytes: int | None = None,
) -> ArtifactStore:
    """Open the store at `uri`: file://..., a bare local path, or s3://bucket[/prefix].

    For s3://, boto3's standard configuration applies (AWS_ENDPOINT_URL[_S3], AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_DEFAULT_REGION, ~/.aws/*); the explicit arguments
    override it. cache_dir (default $INFIMMR_CACHE_DIR or ~/.cache/infimmr) holds downloads; `retry` and
    `cache_max_bytes` (None: unbounded) apply to S3 only.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(
            parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region, profile=profile, cache_dir=cache_dir,
            retry=retry, cache_max_bytes=cache_max_bytes,
        )
    if parsed.scheme in ("file", ""):
        return LocalStore(_local_root(uri), cache_dir=cache_dir)
    raise StoreError(f"unsupported store URI {uri!r}: use file:///path, a local path or s3://bucket/prefix")


def store_from_config(cfg: StoreConfig) -> ArtifactStore:
    retry = RetryBudget(attempts=cfg.retry_attempts, seconds=cfg.retry_seconds, request_attempts=cfg.request_attempts)
    return open_store(cfg.uri, endpoint_url=cfg.endpoint_url, region=cfg.region, profile=cfg.profile, cache_dir=cfg.cache_dir,
                      retry=retry, cache_max_bytes=cfg.cache_max_bytes)

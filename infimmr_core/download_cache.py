"""The S3 download cache's bookkeeping: content verification that stays cheap, an LRU size bound, and clean-up.

A downloaded artifact lives at <cache_dir>/<bucket>/<prefix>/<stage>/<key> (see S3Store.cache_path). Beside the
cache, under <cache_dir>/.infimmr-verified/ (a name no bucket can have: buckets start with a letter or digit), the
store keeps one small JSON record per cached directory, written only by the store:

    {"digest": <manifest digest>, "bytes": <total size>, "files": {path: [size, mtime_ns, inode], ...}}

A cached file is handed back only when it matches the manifest's sha256. Hashing a model on every use would be slow,
so a file whose (size, mtime_ns, inode) is still what the record saw right after verifying it is trusted; any change
(an edit, a copy over it, a truncation) makes the file be hashed again, and a mismatch makes the whole artifact be
downloaded again. The record's mtime is the directory's last use, which orders the LRU eviction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from infimmr_core.atomic import write_atomic

RECORDS = ".infimmr-verified"
STALE_SECONDS = 24 * 3600  # a temp dir untouched this long belongs to a download that died
_TEMP_MARKERS = (".tmp-", ".old-", ".evict-")
_log = logging.getLogger(__name__)


class Entry(Protocol):
    path: str
    size: int
    sha256: str


def record_path(cache_dir: Path, target: Path) -> Path:
    """Where the verification record of the cached directory `target` lives."""
    rel = target.relative_to(cache_dir)
    return cache_dir / RECORDS / rel.parent / f"{rel.name}.json"


def _stat_id(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _load(record: Path) -> dict[str, Any]:
    try:
        data = json.loads(record.read_bytes())
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}
    except (OSError, ValueError):
        return {}


def remember(cache_dir: Path, target: Path, digest: str, entries: Iterable[Entry]) -> None:
    """Record that the files of `entries` under `target` were just checked against their sha256 (and mark the
    directory used now). Entries already recorded for the same digest are kept (a single-file cache grows)."""
    record = record_path(cache_dir, target)
    old = _load(record)
    files = old["files"] if old.get("digest") == digest else {}
    for entry in entries:
        stat = _stat_id(target / entry.path)
        if stat is not None:
            files[entry.path] = stat
    total = sum(stat[0] for stat in files.values())
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, json.dumps({"digest": digest, "bytes": total, "files": files}).encode())


def verified(cache_dir: Path, target: Path, digest: str, entries: Iterable[Entry]) -> bool:
    """Do the files of `entries` under `target` all hold their sha256? Files unchanged since they were verified (by
    size, mtime_ns and inode, per the store's record) are not hashed again. A True answer marks the directory used."""
    record = record_path(cache_dir, target)
    seen = _load(record)
    known = seen["files"] if seen.get("digest") == digest else {}
    entries = list(entries)
    rehashed = False
    for entry in entries:
        path = target / entry.path
        stat = _stat_id(path)
        if stat is None or stat[0] != entry.size:
            return False
        if known.get(entry.path) == stat:
            continue
        if _sha256(path) != entry.sha256:
            _log.warning("cached file %s does not match its sha256 in the manifest; downloading it again", path)
            return False
        rehashed = True
    if rehashed or not record.is_file():
        remember(cache_dir, target, digest, entries)
    else:
        os.utime(record)  # last use, for the LRU order
    return True


def forget(cache_dir: Path, target: Path) -> None:
    record_path(cache_dir, target).unlink(missing_ok=True)


def _remove_dir(path: Path) -> None:
    """Rename, then delete: the directory vanishes at once, and a crash leaves a hidden temp dir for clean-up."""
    doomed = path.with_name(f".{path.name}.evict-{uuid.uuid4().hex}")
    try:
        path.rename(doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def evict(cache_dir: Path, max_bytes: int, keep: Iterable[Path]) -> list[Path]:
    """Delete least recently used cached directories until the recorded total is at most max_bytes. Directories in
    `keep` (handed out by this process, or just downloaded) are never evicted. Returns what was evicted."""
    root = cache_dir / RECORDS
    if not root.is_dir():
        return []
    keep = {Path(p) for p in keep}
    units = []
    for record in root.rglob("*.json"):
        rel = record.relative_to(root)
        target = cache_dir / rel.parent / rel.name[: -len(".json")]
        try:
            used = record.stat().st_mtime_ns
        except OSError:
            continue
        units.append((used, target, record, int(_load(record).get("bytes", 0))))
    total = sum(size for *_, size in units)
    evicted = []
    for _, target, record, size in sorted(units, key=lambda u: u[0]):
        if total <= max_bytes:
            break
        if target in keep:
            continue
        # The manifest first: a directory without it is no cache hit for anyone, then the record, then the files.
        (target / "MANIFEST.json").unlink(missing_ok=True)
        record.unlink(missing_ok=True)
        _remove_dir(target)
        total -= size
        evicted.append(target)
    if evicted:
        _log.info("download cache over %d bytes: evicted %d least recently used artifacts", max_bytes, len(evicted))
    return evicted


def newest_mtime(path: Path) -> float:
    """The newest modification time in a file or directory tree (the top included; links not followed)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames + filenames:
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
                except OSError:
                    pass
    return newest


def remove_stale(folders: Iterable[Path], older_than: float = STALE_SECONDS, now: float | None = None) -> list[Path]:
    """Delete the temp and half-replaced directories (`.<key>.tmp-*`, `.old-*`, `.evict-*`) in `folders` that nothing
    has written to for `older_than` seconds: what a killed download leaves behind."""
    now = time.time() if now is None else now
    removed = []
    for folder in folders:
        try:
            children = list(folder.iterdir())
        except OSError:
            continue
        for child in children:
            if not (child.name.startswith(".") and any(m in child.name for m in _TEMP_MARKERS)):
                continue
            try:
                if now - newest_mtime(child) < older_than:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            except OSError:
                continue
            removed.append(child)
    return removed

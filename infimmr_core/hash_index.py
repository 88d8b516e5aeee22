"""Remembered sha256 of the files of a directory that is uploaded again, so an unchanged file is not read again.

put_dir must know every file's sha256 to write the manifest and to see that the store already holds it; for a ~1 GB
model directory that hashing is nearly all an unchanged re-upload costs (issue 15). Like git's index, this module
remembers each file's hash by its stat identity, (size, mtime_ns, ctime_ns, inode, device) under its absolute path,
and a file whose identity has not changed since it was hashed is not read again. Any write, truncation, copy over it,
`os.utime` (which sets ctime) or replacement by another file changes the identity, and the file is hashed again.

The racy case: a file written within the filesystem's timestamp granularity after it was hashed can keep its size and
timestamps. So a remembered hash is trusted only when the file's mtime and ctime were older than the moment the hash
was taken by RACY_MARGIN_NS; a file hashed right after it was written is hashed again on the next scan (and then
trusted, since by then its hash is younger than its timestamps by more than the margin).

One small JSON file per uploaded directory, under <cache_dir>/.infimmr-hash-index/ (outside every uploaded directory,
and a name no bucket of the download cache can have), holds only the files of that directory's latest scan; the
least recently used indexes beyond MAX_INDEXES are removed. It is written atomically; a missing, corrupt or foreign
index is ignored (everything is hashed, as without it), never an error, and concurrent writers each replace it whole
(a lost update costs a rehash). It is plain, validated JSON: nothing read from it is executed or used as a path.

Only the upload side uses this shortcut: verifying a download or a cached artifact always hashes the bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from infimmr_core.atomic import write_atomic

INDEX_DIR = ".infimmr-hash-index"
FORMAT = 1
# Filesystem timestamps come from the kernel's coarse clock, truncated to the filesystem's granularity (1 s on ext3
# and HFS+, 2 s on FAT; network mounts stamp with the server's clock): 2 s covers all of these, and a file written
# within that margin of being hashed only costs one more hash.
RACY_MARGIN_NS = 2_000_000_000
MAX_INDEXES = 256  # directories remembered per cache dir (each a few hundred bytes per file)
MAX_INDEX_BYTES = 64 * 1024 * 1024  # a larger file is not an index this module wrote for any sane directory
_STALE_TEMP_NS = 3600 * 1_000_000_000  # a temp file this old belongs to a writer that died
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """A file's stat identity when it was hashed, when that was, and its sha256."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    hashed_at_ns: int
    sha256: str

    def same_file(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.ctime_ns, self.ino, self.dev) == identity(st)


def identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def trusted(seen: Seen, margin_ns: int = RACY_MARGIN_NS) -> bool:
    """Can this remembered hash stand for the file's content while its identity is unchanged? Only when the hash was
    taken more than `margin_ns` after the file's last write (mtime) and last status change (ctime)."""
    return max(seen.mtime_ns, seen.ctime_ns) + margin_ns < seen.hashed_at_ns


def parse_seen(value: Any) -> Seen | None:
    """A stored entry, [size, mtime_ns, ctime_ns, ino, dev, hashed_at_ns, sha256], or None when it is not one."""
    if not isinstance(value, list) or len(value) != 7:
        return None
    *numbers, sha = value
    if not all(type(n) is int for n in numbers) or not isinstance(sha, str) or not _SHA256.match(sha):
        return None
    size, _, _, ino, dev, _ = numbers
    if min(size, ino, dev) < 0:
        return None
    return Seen(*numbers, sha)


def index_path(cache_dir: Path, directory: Path) -> Path:
    """Where the index of `directory` (any spelling of it: it is resolved) lives under cache_dir."""
    name = hashlib.sha256(str(Path(directory).resolve()).encode()).hexdigest()[:32]
    return Path(cache_dir) / INDEX_DIR / f"{name}.json"


def load(path: Path, directory: str) -> dict[str, Seen]:
    """The valid entries of the index at `path` for `directory`; {} when it is missing, unreadable, not ours, or
    not JSON. Invalid entries are left out one by one."""
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("dir") != directory \
            or not isinstance(data.get("files"), dict):
        return {}
    files = {}
    for rel, value in data["files"].items():
        if isinstance(rel, str) and (seen := parse_seen(value)) is not None:
            files[rel] = seen
    return files


def prune(index_dir: Path, keep: int = MAX_INDEXES, now_ns: int | None = None) -> list[Path]:
    """Remove the least recently used indexes beyond `keep` and temp files of writers that died; returns them."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    indexes, removed = [], []
    try:
        children = list(index_dir.iterdir())
    except OSError:
        return []
    for child in children:
        try:
            used = child.stat().st_mtime_ns
        except OSError:
            continue
        if child.name.startswith(".") and ".tmp-" in child.name:
            if now_ns - used > _STALE_TEMP_NS:
                removed.append(child)
        elif child.suffix == ".json":
            indexes.append((used, child))
    indexes.sort(reverse=True)
    removed += [child for _, child in indexes[keep:]]
    for child in removed:
        child.unlink(missing_ok=True)
    return removed


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class HashIndex:
    """The remembered hashes of one directory's files, for one scan: look each file up (from several threads at
    once if wanted), then `save`. The saved index holds the files looked up in this scan, and no others."""

    def __init__(self, cache_dir: Path, directory: Path, *, hasher: Callable[[Path], str] = sha256_file,
                 clock: Callable[[], int] = time.time_ns, margin_ns: int = RACY_MARGIN_NS):
        self.directory = Path(directory)
        self.path = index_path(cache_dir, self.directory)
        self._key = str(self.directory.resolve())
        self._hasher, self._clock, self._margin_ns = hasher, clock, margin_ns
        self._old = load(self.path, self._key)
        self._new: dict[str, Seen] = {}  # one key per file, each written by the one thread that looks it up

    def sha256(self, rel: str) -> tuple[str, int]:
        """(sha256, size) of the file `rel` (a path relative to the directory): remembered while its stat identity
        is unchanged and trusted, else hashed now."""
        path = self.directory / rel
        before = os.stat(path)
        seen = self._old.get(rel)
        if seen is not None and seen.same_file(before) and trusted(seen, self._margin_ns):
            self._new[rel] = seen
            return seen.sha256, before.st_size
        hashed_at = self._clock()  # before the first byte is read: a write during the hash is after it
        sha = self._hasher(path)
        after = os.stat(path)
        if identity(after) == identity(before):  # else it changed while being read: remember nothing
            self._new[rel] = Seen(*identity(before), hashed_at, sha)
        return sha, after.st_size

    def save(self) -> None:
        """Write the index of this scan (best effort: a failure only costs the next scan its shortcut)."""
        try:
            if self._new == self._old and self.path.is_file():
                os.utime(self.path)  # used now, for the LRU order
                return
            data = {"format": FORMAT, "dir": self._key, "files": {rel: list(astuple(seen))
                                                                  for rel, seen in sorted(self._new.items())}}
            write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode())
            prune(self.path.parent)
        except OSError as err:
            _log.warning("could not save the hash index %s (the next upload hashes every file): %s", self.path, err)

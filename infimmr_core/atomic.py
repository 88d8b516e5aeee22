"""Files that a rerun reads: written so a crash at any instant leaves the old file or the whole new one, and read so
that a damaged one counts as absent (recomputed) instead of failing every rerun.

A rename alone is not enough: after a power cut the renamed file can be empty if its data never reached the disk
(the zero-length checkpoint that once failed every rerun). So: write a temp file beside the target, fsync it, rename
it over the target, fsync the directory (so the rename itself is durable).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_temp(path: Path, data: bytes) -> Path:
    """A complete, fsynced copy of `data` beside `path`, under a unique temp name (two writers of the same file never
    write into each other's temp file); the caller moves or links it into place and removes it."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on directories; the rename is still atomic there
    finally:
        os.close(fd)


def write_json_atomic(path: Path, value: Any) -> None:
    write_atomic(path, json.dumps(value).encode())


def read_json_or_none(path: Path) -> Any | None:
    """The JSON in `path`; None when it is missing, empty, truncated or otherwise not JSON (so the caller recomputes
    it). Files written by older code without fsync can be any of these after a crash."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None

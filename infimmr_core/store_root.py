"""Which local directories may be a store's root.

A store writes, replaces and deletes whole directories under its root, and `--store file:///etc` or a typo such as
`--store file://.` (a source checkout) was accepted silently. The rule: a root is a directory that does not exist yet,
is empty, or already is a store; never a system directory, a top-level directory such as /home or /tmp, or a home
directory itself. A directory becomes a store when the store first writes into it: it gets a marker file. Stores
written before the marker existed are recognised by their shape (only stage directories, at least one committed
artifact or Prefect's records) and get the marker on their next write.
"""

from __future__ import annotations

import json
from pathlib import Path

from infimmr_core.atomic import write_atomic

MARKER = ".infimmr-store"
# Never a store, nor anything inside them.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys", "/usr",
)
# Never a store themselves (somewhere below them is fine: /tmp/run1, /home/me/store, /var/lib/infimmr).
TOP_LEVEL = ("/", "/home", "/root", "/tmp", "/var", "/opt", "/srv", "/mnt", "/media", "/run", "/var/tmp", "/var/lib")
PREFECT_RECORDS = "_prefect"


class NotAStoreRoot(ValueError):
    """The directory may not be used as a store root; the message says why and what to do."""


def check_local_root(root: Path) -> None:
    """Raise NotAStoreRoot unless `root` (absolute, resolved) may be a store's root."""
    text = root.as_posix()
    for tree in SYSTEM_TREES:
        if text == tree or text.startswith(tree + "/"):
            raise NotAStoreRoot(f"{root} is a system directory; a store needs a directory of its own")
    if text in TOP_LEVEL or root == _home():
        raise NotAStoreRoot(f"{root} is a top-level or home directory; use a directory of its own inside it, "
                            f"e.g. {root / 'infimmr-store'}")
    if not root.exists():
        return
    if not root.is_dir():
        raise NotAStoreRoot(f"{root} is not a directory")
    # The entries are listed before the marker is looked for: a claim writes the marker before anything else, so an
    # entry a concurrent claim made is always seen with its marker. Looked at the other way round, a process that
    # found no marker yet then saw the claimer's marker and first lease, and refused a store being born (CI, stop 23).
    entries = list(root.iterdir())
    if (root / MARKER).is_file() or is_legacy_store(root):
        return
    # A concurrent claim's temp marker (write_atomic's `.<name>.tmp-*`) means another process is making it a store.
    if any(not entry.name.startswith(f".{MARKER}.tmp-") for entry in entries):
        raise NotAStoreRoot(f"{root} is not empty and is not an infimmr store (no {MARKER}); a store replaces and "
                            "deletes directories in its root, so give it an empty or new directory")


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError):  # no HOME and no password entry (some containers)
        return None


def is_legacy_store(root: Path) -> bool:
    """A store from before the marker: nothing but stage directories, and some committed artifact or Prefect record."""
    entries = list(root.iterdir())
    if not entries or any(not entry.is_dir() for entry in entries if not entry.name.startswith(".")):
        return False
    names = {entry.name for entry in entries}
    return PREFECT_RECORDS in names or any(next(entry.glob("*/MANIFEST.json"), None) for entry in entries)


def claim(root: Path) -> None:
    """Mark `root` as a store (creating it), before the store's first write there."""
    if not (root / MARKER).is_file():
        root.mkdir(parents=True, exist_ok=True)
        write_atomic(root / MARKER, json.dumps({"infimmr_store": 1}).encode())

"""Folders as {relative path: bytes}: how the store tests write an artifact's files and read them back."""

from __future__ import annotations

from pathlib import Path

from infimmr_core.store import MANIFEST_NAME


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for rel, data in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` but the manifest."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME}

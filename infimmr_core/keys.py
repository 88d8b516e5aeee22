"""The one key function. An artifact's address is a hash of everything that can change its content:
the stage, its slice of the recipe, the digests of its inputs, the source of the code it runs and the versions of
the libraries that shape its output. Nothing else (no run id, time, host or path), so any machine finds the same key.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE = "infimmr_core"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_of(key_inputs: dict[str, Any]) -> str:
    return sha256_text(canonical_json(key_inputs))[:32]


PACKAGE_ROOT = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _module_file(module: str) -> Path:
    """The source file of an infimmr_core module, found by path: importlib's find_spec would import the parent
    packages (and with them torch), which the orchestrator must never do just to compute a key."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise ImportError(f"{module} is not part of {PACKAGE}")
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in ([base.with_suffix(".py")] if parts[1:] else []) + [base / "__init__.py"]:
        if candidate.is_file():
            return candidate
    raise ImportError(f"cannot locate module {module}")


def _imported_package_modules(module: str) -> set[str]:
    """infimmr_core modules imported anywhere in `module`'s source (static: nothing is executed)."""
    path = _module_file(module)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, is_package, node.module, node.level)
            if base is None or base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            # `from infimmr_core.data import prompts` imports a module, not a name: include it when it is one.
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if _is_module(candidate):
                    found.add(candidate)
    return found


def _is_module(name: str) -> bool:
    try:
        _module_file(name)
    except ImportError:
        return False
    return True


def _resolve_from(module: str, is_package: bool, target: str | None, level: int) -> str | None:
    if level == 0:
        return target
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join(anchor + ([target] if target else [])) or None


@lru_cache(maxsize=None)
def code_closure(module: str) -> tuple[str, ...]:
    """`module` and every infimmr_core module it imports, transitively, sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imported_package_modules(name) - seen)
    # Parent packages run their __init__ on import: they are code too.
    for name in list(seen):
        parts = name.split(".")
        seen.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def code_hash(module: str) -> str:
    """Hash of the source of `module` and its infimmr_core imports: editing a helper it uses changes the key,
    editing an unrelated module does not."""
    digest = hashlib.sha256()
    for name in code_closure(module):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(_module_file(name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def library_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for dist in distributions:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions

"""The one key function. An artifact's address is a hash of everything that can change its content:
the stage, its slice of the recipe, the digests of its inputs, the code it runs and the versions of the libraries
that shape its output. Nothing else (no run id, time, host or path), so any machine finds the same key.

Code identity is the code's *structure*: its token stream without comments, docstrings, `description="..."`
arguments (the recipe fields' and flows' documentation), blank lines, line breaks inside brackets or the width of
indentation. A comment edit must not cost days of GPU recomputing a phase.

Nothing here calls `ast.parse` (or anything built on it): CPython 3.11's AST constructor keeps one recursion counter
per interpreter, so two threads parsing at once (the flow's thread computing a key and Prefect's heartbeat thread)
fail with "SystemError: AST constructor recursion depth mismatch". The tokenizer shares no such state.
"""

from __future__ import annotations

import hashlib
import io
import json
import tokenize
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

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


def _is_module(name: str) -> bool:
    try:
        _module_file(name)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# The code's structure, from its tokens
# ---------------------------------------------------------------------------------------------------------------

Token = tuple[str, str]  # (token type name, text): names, not numbers, which differ between Python versions
_IGNORED = {"COMMENT", "NL", "ENCODING", "ENDMARKER"}


def _tokens(source: str) -> Iterator[tokenize.TokenInfo]:
    return tokenize.generate_tokens(io.StringIO(source).readline)


def _statements(source: str) -> list[list[Token]]:
    """The source as logical lines of significant tokens. Indentation is kept as structure (INDENT / DEDENT), not as
    its width; an f-string is one STRING token whatever the Python version's tokenizer makes of it (3.12 splits it)."""
    lines = source.splitlines(keepends=True)

    def text(start: tuple[int, int], end: tuple[int, int]) -> str:
        (row0, col0), (row1, col1) = start, end
        if row0 == row1:
            return lines[row0 - 1][col0:col1]
        return lines[row0 - 1][col0:] + "".join(lines[row0:row1 - 1]) + lines[row1 - 1][:col1]

    statements: list[list[Token]] = []
    current: list[Token] = []
    fstring_depth, fstring_start = 0, (0, 0)
    for tok in _tokens(source):
        kind = tokenize.tok_name[tok.type]
        if kind == "FSTRING_START":
            fstring_depth += 1
            if fstring_depth == 1:
                fstring_start = tok.start
            continue
        if fstring_depth:
            if kind == "FSTRING_END":
                fstring_depth -= 1
                if not fstring_depth:
                    current.append(("STRING", text(fstring_start, tok.end)))
            continue
        if kind in _IGNORED:
            continue
        if kind in ("INDENT", "DEDENT"):
            statements.append([(kind, "")])
        elif kind == "NEWLINE":
            statements.append(current)
            current = []
        else:
            current.append((kind, tok.string))
    if current:
        statements.append(current)
    return statements


def _is_bare_string(statement: list[Token]) -> bool:
    # A statement that is only a string literal does nothing: docstrings, and strings used as comments.
    return bool(statement) and all(kind == "STRING" for kind, _ in statement)


def _without_descriptions(statement: list[Token]) -> list[Token]:
    """Drop `description="..." "..."` keyword arguments (and their comma): documentation, like a docstring."""
    kept: list[Token] = []
    i = 0
    while i < len(statement):
        if statement[i] == ("NAME", "description") and statement[i + 1:i + 2] == [("OP", "=")]:
            end = i + 2
            while end < len(statement) and statement[end][0] == "STRING":
                end += 1
            closes = end < len(statement) and statement[end] in (("OP", ","), ("OP", ")"))
            if end > i + 2 and closes and kept and kept[-1] in (("OP", ","), ("OP", "(")):
                end += statement[end] == ("OP", ",")
                if statement[end:end + 1] == [("OP", ")")] and kept[-1] == ("OP", ","):
                    kept.pop()  # it was the last argument: the comma before it goes too (this is a call, no tuple)
                i = end
                continue
        kept.append(statement[i])
        i += 1
    return kept


def code_structure(source: str) -> str:
    """What the code does, as text: equal for two sources that differ only in comments, docstrings, descriptions
    or layout."""
    return "\n".join(
        " ".join(f"{kind}:{text}" for kind, text in _without_descriptions(statement))
        for statement in _statements(source) if not _is_bare_string(statement)
    )


# ---------------------------------------------------------------------------------------------------------------
# Which infimmr_core modules a module imports (static: nothing is executed)
# ---------------------------------------------------------------------------------------------------------------


def _split_top_level(statement: list[Token]) -> list[list[Token]]:
    """Simple statements of a logical line: `a; b` and `if x: import y` both hold more than one."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for kind, text in statement:
        if kind == "OP" and text in "([{":
            depth += 1
        elif kind == "OP" and text in ")]}":
            depth -= 1
        if depth == 0 and kind == "OP" and text in (";", ":"):
            parts.append([])
        else:
            parts[-1].append((kind, text))
    return parts


def _dotted(tokens: list[Token]) -> tuple[int, str]:
    """Leading dots (the relative level) and the dotted name that follows: `..a.b as c` -> (2, "a.b")."""
    level, name, expect_name = 0, "", True
    for kind, text in tokens:
        if kind == "OP" and set(text) <= {"."} and not name:
            level += len(text)
        elif kind == "NAME" and expect_name:
            name, expect_name = name + text, False
        elif kind == "OP" and text == "." and not expect_name:
            name, expect_name = name + text, True
        else:
            break
    return level, name


def _imported_names(statement: list[Token]) -> Iterator[tuple[int, str, list[str]]]:
    """(level, module, imported names) for each import statement: `import a.b as c` -> (0, "a.b", []);
    `from ..x import y, z` -> (2, "x", ["y", "z"])."""
    for part in _split_top_level(statement):
        words = [text for kind, text in part if kind == "NAME"]
        if not words or words[0] not in ("import", "from"):
            continue
        if words[0] == "import":
            for clause in _split_commas(part[1:]):
                yield 0, _dotted(clause)[1], []
        else:
            cut = next(i for i, (kind, text) in enumerate(part) if kind == "NAME" and text == "import")
            level, module = _dotted(part[1:cut])
            names = [clause[0][1] for clause in _split_commas(part[cut + 1:]) if clause and clause[0][0] == "NAME"]
            yield level, module, names


def _split_commas(tokens: list[Token]) -> list[list[Token]]:
    clauses: list[list[Token]] = [[]]
    for kind, text in tokens:
        if kind == "OP" and text in ("(", ")"):
            continue
        if kind == "OP" and text == ",":
            clauses.append([])
        else:
            clauses[-1].append((kind, text))
    return [clause for clause in clauses if clause]


def _resolve_from(module: str, is_package: bool, target: str, level: int) -> str | None:
    if level == 0:
        return target
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join(anchor + ([target] if target else [])) or None


@lru_cache(maxsize=None)  # the stages' closures share most modules: each file is read once per process
def _imported_package_modules(module: str) -> frozenset[str]:
    path = _module_file(module)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for statement in _statements(path.read_text(encoding="utf-8")):
        for level, target, names in _imported_names(statement):
            base = _resolve_from(module, is_package, target, level)
            if base is None or base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            # `from infimmr_core.data import prompts` imports a module, not a name: include it when it is one.
            found.update(f"{base}.{name}" for name in names if _is_module(f"{base}.{name}"))
    return frozenset(found)


@lru_cache(maxsize=None)
def code_closure(module: str, exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """`module` and every infimmr_core module it imports, transitively, sorted; `exclude`d modules and what only
    they import are left out (see `stages.CONDITIONAL_CODE`)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name in exclude:
            continue
        seen.add(name)
        todo.extend(_imported_package_modules(name) - seen)
    # Parent packages run their __init__ on import: they are code too.
    for name in list(seen):
        parts = name.split(".")
        seen.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def module_structure_hash(module: str) -> str:
    return sha256_text(code_structure(_module_file(module).read_text(encoding="utf-8")))


def code_hash(modules: tuple[str, ...]) -> str:
    """Hash of the structure of `modules` (a closure): editing a helper a stage uses changes its key, editing a
    comment, a docstring or an unrelated module does not."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(f"{name}\0{module_structure_hash(name)}\0".encode())
    return digest.hexdigest()[:32]


def library_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    return dict(_library_versions(distributions))


@lru_cache(maxsize=None)  # reading installed metadata costs tens of ms a package, and every stage's key asks
def _library_versions(distributions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    versions = {}
    for dist in distributions:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return tuple(versions.items())

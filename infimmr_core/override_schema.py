"""A JSON Schema for one `KEY=VALUE` recipe override (the CLI's `--set`), built from the recipe's pydantic models.

A Prefect server checks flow-run parameters against the deployment's JSON Schema before it creates the run, and the
UI's run form checks them as they are typed. With this schema as the type of each `overrides` item, an unknown key or
a value of the wrong type is refused there, before any run exists, and the refusal names the item. The schema can only
speak of one item at a time, so what depends on the recipe as a whole (a list index out of range, `min_pass_rate >
max_pass_rate`, an upper bound) is checked when the flow loads the recipe, by the same code as the CLI's `--set`.

The schema must never refuse what `--set` accepts: each value pattern accepts everything that YAML, then pydantic's
lax mode, turn into the field's type (tests/test_override_schema.py checks this against `load_recipe`).

How it reads (an override is `KEY=VALUE`, KEY dotted, VALUE parsed as YAML):
- per section, one rule: a key that enters `phases.1.` must go on with a name of that section, so a typo is refused
  with a pattern that lists the names the section has;
- per setting, one rule: a key that is exactly `phases.1.learning_rate` must have a value that reads as a float
  (positive, for a field with `gt=0`).
Lists are entered by index (`curation.sources.0.path`), mappings by name (`curation.sources.0.mapping.problem`), and
sections of the same model side by side share their rules (`phases.1|2|3`).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, replace
from typing import Any, Literal, Union

import annotated_types
import yaml
from pydantic import BaseModel

# The scalars PyYAML (YAML 1.1) resolves to something other than a string: a string field given one of these is
# refused by pydantic, so the schema refuses it too. These follow PyYAML's own resolver patterns.
YAML_NULL = r"~|null|Null|NULL"
YAML_BOOL = r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
YAML_INT = (r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
            r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+")
YAML_FLOAT = (r"[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
              r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
YAML_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}.*"
# Text pydantic's lax mode reads as a number or a bool (YAML leaves `1e-6`, `t` and `'1'` strings; pydantic parses them).
NUMBER_TEXT = (r"[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])")
INT_TEXT = r"[-+]?[0-9][0-9_]*(?:\.0*)?"
BOOL_TEXT = r"[tT][rR][uU][eE]|[fF][aA][lL][sS][eE]|[yY](?:[eE][sS])?|[nN][oO]?|[oO][nN]|[oO][fF][fF]|[tTfF]|0|1"
# YAML numbers that are whole (pydantic takes them as an int), or 0 or 1 (pydantic takes them as a bool too).
WHOLE = r"[-+]?[0-9][0-9_]*\.0*|[-+]?[0-9][0-9_]*\.[0-9_]*[eE][-+][0-9]+"
ZERO_OR_ONE = r"[-+]?0*[01](?:\.0*)?|[-+]?0*\.0+|[-+]?0[bx]0*[01]"


def _quoted(text: str) -> str:
    inner = rf"\s*(?:{text})\s*"
    return f"'{inner}'|\"{inner}\""  # quotes unescaped: `\"` is a syntax error in a browser's unicode regex


NULL = YAML_NULL
BOOL = f"{YAML_BOOL}|{BOOL_TEXT}|{ZERO_OR_ONE}|{_quoted(BOOL_TEXT)}"
INT = f"{YAML_INT}|{WHOLE}|{YAML_BOOL}|{_quoted(INT_TEXT)}"
FLOAT = f"{YAML_INT}|{YAML_FLOAT}|{YAML_BOOL}|{NUMBER_TEXT}|{_quoted(NUMBER_TEXT)}"
STR = rf"(?!(?:{YAML_NULL}|{YAML_BOOL}|{YAML_INT}|{YAML_FLOAT}|{YAML_DATE})\s*$)(?![\[{{]).*"
LIST = r"\[.*\]"
MAPPING = r"\{.*\}"
ANY = r".*"

# A number with a minus sign that is not zero; a number that is zero (so "> 0" refuses both).
NEGATIVE = r"-(?!(?:0*\.?0*(?:[eE][-+]?[0-9]+)?)\s*$)"
ZERO = r"[-+]?(?:0+\.?0*|\.0+)(?:[eE][-+]?[0-9]+)?\s*$"

INDEX = "-?[0-9]+"  # a list index, as apply_override takes it (negative counts from the end)
NAME = r"[^.=\s]+"  # a key in a free-form mapping


@dataclass(frozen=True)
class Setting:
    """One key an override may set: where it sits (regexes), how it reads in docs, and what its value must read as."""

    parent: str  # regex of the enclosing section's key; "" at the top
    segment: str  # regex of the last part of the key
    label: str  # readable form: phases.1|2|3.learning_rate, curation.sources.N.path
    value: str  # regex of the text after `=`
    kind: str  # readable: "float", "int or null", "one of grpo, dapo", "section"
    example: str  # a concrete key of this form (list index 0, mapping name "x"), for tests

    @property
    def key(self) -> str:
        return rf"{self.parent}\.{self.segment}" if self.parent else self.segment


def _escape(text: str) -> str:
    # Only the characters that are special in both Python's and ECMAScript's regexes: browsers compile these patterns
    # in unicode mode, where an escaped `-` or `#` (as re.escape writes them) is a syntax error.
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def _alternation(options: list[str]) -> str:
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _literal_value(options: tuple[Any, ...]) -> str:
    forms = []
    for option in options:
        text = str(option)
        quoted = [f'"{_escape(text)}"', f"'{_escape(text)}'"]
        # A literal that YAML reads as a string may also be written bare; `on`, `1` or `null` need quotes.
        forms += ([_escape(text)] if yaml.safe_load(text) == text else []) + quoted
    return _alternation(forms)


def _bounds(metadata: list[Any]) -> str:
    """A lookahead refusing the numbers a lower bound of 0 excludes: negatives for `ge >= 0`, also 0 for `gt >= 0`."""
    lower = [m for m in metadata if isinstance(m, (annotated_types.Ge, annotated_types.Gt))]
    if not lower:
        return ""
    bound = lower[0]
    floor = bound.ge if isinstance(bound, annotated_types.Ge) else bound.gt
    if floor < 0:
        return ""
    positive = isinstance(bound, annotated_types.Gt) or floor > 0
    return f"(?!{NEGATIVE})" + (f"(?!{ZERO})" if positive else "")


def _scalar(annotation: Any, metadata: list[Any]) -> tuple[str, str]:
    """(value regex, kind) of a scalar annotation; anything else takes any value here and is checked by pydantic."""
    if typing.get_origin(annotation) is Literal:
        options = typing.get_args(annotation)
        return _literal_value(options), "one of " + ", ".join(map(str, options))
    if annotation is bool:
        return BOOL, "bool"
    if annotation is int:
        return f"{_bounds(metadata)}(?:{INT})", "int"
    if annotation is float:
        return f"{_bounds(metadata)}(?:{FLOAT})", "float"
    if annotation is str:
        return STR, "text"
    return ANY, "value"


def _settings(annotation: Any, metadata: list[Any], at: Setting) -> list[Setting]:
    """The setting `at` (its value still to fill in) for a field of this annotation, and every setting below it."""
    annotation, nullable = _unwrap_optional(annotation)

    def this(value: str, kind: str) -> Setting:
        return replace(at, value="|".join(([NULL] if nullable else []) + [f"(?:{value})"]),
                       kind=kind + (" or null" if nullable else ""))

    def below(segment: str, label: str, example: str) -> Setting:
        return Setting(at.key, segment, f"{at.label}.{label}", "", "", f"{at.example}.{example}")

    if _is_model(annotation):
        return [this(MAPPING, "section"), *_model_settings(annotation, at)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return [this(LIST, "list"), *_settings(args[0], [], below(INDEX, "N", "0"))]
    if origin is dict:
        return [this(MAPPING, "mapping"), *_settings(args[1], [], below(NAME, "NAME", "x"))]
    return [this(*_scalar(annotation, metadata))]


def _model_settings(model: type[BaseModel], at: Setting | None) -> list[Setting]:
    # Fields of one model type side by side (phases 1, 2, 3) share their rules: one regex alternation per group.
    groups: dict[Any, list[tuple[str, Any]]] = {}
    for name, field in model.model_fields.items():
        groups.setdefault(field.annotation if _is_model(field.annotation) else name, []).append((field.alias or name, field))
    settings = []
    for members in groups.values():
        names = [name for name, _ in members]
        field = members[0][1]
        segment, label = _alternation([_escape(n) for n in names]), "|".join(names)
        if at is None:
            child = Setting("", segment, label, "", "", names[0])
        else:
            child = Setting(at.key, segment, f"{at.label}.{label}", "", "", f"{at.example}.{names[0]}")
        settings += _settings(field.annotation, field.metadata, child)
    return settings


def recipe_settings(model: type[BaseModel]) -> list[Setting]:
    """Every key an override may set in a recipe of this model: sections, lists, mappings and their members."""
    return _model_settings(model, None)


def override_item_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of one `KEY=VALUE` override of a recipe of `model` (see the module docstring)."""
    settings = recipe_settings(model)
    sections = {s.parent for s in settings}
    rules: list[dict[str, Any]] = []
    for parent in sorted(sections, key=len):
        inside = rf"^\s*{parent}\." if parent else r"^\s*"
        children = [s for s in settings if s.parent == parent]
        deeper = [s.segment for s in children if s.key in sections]  # may go on with `.`: sections, lists, mappings
        leaves = [s.segment for s in children if s.key not in sections]
        names = ([rf"{_alternation(deeper)}(?:\.|\s*=)"] if deeper else []) + ([rf"{_alternation(leaves)}\s*="] if leaves else [])
        rules.append({"if": {"pattern": inside}, "then": {"pattern": rf"{inside}{_alternation(names)}"}})
    # One rule per kind of value: the key decides the kind, the text after the first `=` must read as it.
    by_value: dict[str, list[str]] = {}
    for setting in settings:
        by_value.setdefault(setting.value, []).append(setting.key)
    for value, keys in by_value.items():
        rules.append({"if": {"pattern": rf"^\s*{_alternation(keys)}\s*="},
                      "then": {"pattern": rf"^[^=]*=\s*(?:{value})\s*$"}})
    return {"type": "string", "title": "KEY=VALUE", "pattern": r"^\s*[^=\s][^=]*=", "allOf": rules}

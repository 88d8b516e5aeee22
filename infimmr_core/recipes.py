"""Finding, loading and overriding recipes: YAML in, a validated `Recipe` out, or a `RecipeError` that names the key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infimmr_core.config import Recipe


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the offending key and the problem."""


def builtin_recipes() -> list[str]:
    folder = resources.files("infimmr_core") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_text(name_or_path: str) -> str:
    """The YAML text of a built-in recipe (by name) or of a recipe file (by path)."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        return path.read_text(encoding="utf-8")
    if name_or_path not in builtin_recipes():
        raise RecipeError(f"unknown recipe {name_or_path!r}; built-in recipes: {', '.join(builtin_recipes())}")
    return (resources.files("infimmr_core") / "recipes" / f"{name_or_path}.yaml").read_text(encoding="utf-8")


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b.c=VALUE` -> ("a.b.c", VALUE parsed as YAML, so 1e-6, true, [a, b] and null get their types)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"override {item!r} is not KEY=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise RecipeError(f"override {key}: value {raw!r} is not valid YAML ({err})") from err
    return key.strip(), value


def apply_override(data: dict, dotted: str, value: Any) -> None:
    """Set `dotted` in the raw recipe mapping. Missing leaf keys are created so that pydantic, not this function,
    decides whether the key exists (its error then names the key)."""
    parts = dotted.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(part, len(node), where)]
        elif isinstance(node, dict):
            node = node.setdefault(_dict_key(node, part), {})
            if not isinstance(node, (dict, list)):
                raise RecipeError(f"override {dotted}: {where} is a value, not a section")
        else:
            raise RecipeError(f"override {dotted}: {where} is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(last, len(node), dotted)] = value
    else:
        node[_dict_key(node, last)] = value


def _dict_key(node: dict, part: str) -> Any:
    # YAML reads `1:` as an int key; the CLI always gives strings.
    if part not in node and part.isdigit() and int(part) in node:
        return int(part)
    return part


def _list_index(part: str, length: int, where: str) -> int:
    if not part.lstrip("-").isdigit() or not -length <= int(part) < length:
        raise RecipeError(f"override {where}: {part!r} is not an index of a list of {length}")
    return int(part)


def load_recipe(name_or_path: str = "smoke", overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    text = recipe_text(name_or_path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {name_or_path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {name_or_path}: top level must be a mapping")
    for item in overrides:
        apply_override(data, *parse_override(item))
    return validate_recipe(data, source=name_or_path)


def override_recipe(recipe: Recipe, overrides: list[str] | tuple[str, ...]) -> Recipe:
    """`recipe` with `--set`-style overrides applied, validated like a loaded recipe."""
    if not overrides:
        return recipe
    data = recipe.model_dump(mode="json", by_alias=True)
    for item in overrides:
        apply_override(data, *parse_override(item))
    return validate_recipe(data, source=recipe.name)


def validate_recipe(data: dict, source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(_stringify_keys(data))
    except ValidationError as err:
        raise RecipeError(format_validation_error(err, source)) from None


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} invalid setting(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (not a setting of this section)" if e["type"] == "extra_forbidden" else e["msg"]
        given = "" if e["type"] in {"missing", "extra_forbidden"} else f" (got {e.get('input')!r})"
        lines.append(f"  {key}: {msg}{given}")
    return "\n".join(lines)


def _stringify_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _stringify_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_stringify_keys(v) for v in node]
    return node


def recipe_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe, every default spelled out."""
    return yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True), sort_keys=False, allow_unicode=True, width=100)

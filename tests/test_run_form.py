"""The deployments' run forms, as Prefect registers them (the flows' parameter schemas): short, every field described,
and every description shown as written when the UI renders it as Markdown."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt
from prefect.utilities.callables import parameter_schema

from infimmr.flows.pipeline import infimmr_pipeline, infimmr_stage
from infimmr_core.recipes import builtin_recipes

# CommonMark plus the GitHub extensions a UI renderer may add (tables, ~strikethrough~).
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def described_fields(schema: dict) -> list[tuple[str, str | None]]:
    """(where, description) of every parameter and every recipe field; a field that is a section may take its
    description from the section's model."""
    fields = [(f"parameter {name}", prop.get("description")) for name, prop in schema["properties"].items()]
    for model, definition in schema["definitions"].items():
        for name, prop in definition.get("properties", {}).items():
            ref = prop.get("$ref", "").rsplit("/", 1)[-1]
            fields.append((f"{model}.{name}", prop.get("description") or schema["definitions"].get(ref, {}).get("description")))
    return fields


def rendering_problem(text: str) -> str | None:
    """Why `text` would not show as written in a Markdown-rendering form, or None: it must be one paragraph of text
    and code spans (`> 0` would be a quote, `<answer>` swallowed as HTML, `512*28*28` partly emphasised)."""
    tokens = MARKDOWN.parse(text)
    if [t.type for t in tokens] != ["paragraph_open", "inline", "paragraph_close"]:
        return "not one paragraph: " + ", ".join(t.type for t in tokens)
    parts = tokens[1].children or []
    if odd := [t.type for t in parts if t.type not in {"text", "code_inline", "softbreak"}]:
        return "marked up: " + ", ".join(odd)
    shown = "".join(" " if t.type == "softbreak" else t.content for t in parts)
    written = re.sub(r"`([^`]*)`", r"\1", text).replace("\n", " ")
    return None if shown == written else f"shows {shown!r}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("> 0 overrides num_train_epochs.", "not one paragraph"),
        ("Where the answer goes: <answer> tags.", "marked up: html_inline"),
        ("~0.4 MP = 512*28*28.", "marked up: em_open"),
        ("- a list", "not one paragraph"),
        ("1. first", "not one paragraph"),
        ("Escapes \\[vanish\\].", "shows"),
        ("Where the answer goes: `<answer>` tags; 512 x 28 x 28; -1 = off; 0 < p < 1.", None),
    ],
)
def test_rendering_problem(text, problem):
    found = rendering_problem(text)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem))


@pytest.mark.parametrize("flow", [infimmr_pipeline, infimmr_stage], ids=lambda f: f.name)
def test_form_fields_are_described_and_render_as_written(flow):
    schema = parameter_schema(flow).model_dump_for_openapi()
    fields = described_fields(schema)
    assert len(fields) > 150
    assert [where for where, text in fields if not text] == []
    problems = {where: (text, problem) for where, text in fields if (problem := rendering_problem(text))}
    assert problems == {}


@pytest.mark.parametrize(
    ("flow", "parameters"),
    [(infimmr_pipeline, ["recipe_name", "overrides", "force", "recipe"]),
     (infimmr_stage, ["stage", "recipe_name", "overrides", "force", "recipe"])],
    ids=["pipeline", "stage"],
)
def test_form_is_a_recipe_name_overrides_and_force(flow, parameters):
    schema = parameter_schema(flow).model_dump_for_openapi()
    assert list(schema["properties"]) == parameters
    assert schema["required"] == ["stage"] if flow is infimmr_stage else "required" not in schema
    choice = schema["properties"]["recipe_name"]
    assert choice["default"] == "smoke"
    assert choice["anyOf"][0]["enum"] == builtin_recipes() and {"smoke", "infimmr-3b"} <= set(builtin_recipes())
    assert choice["anyOf"][1]["pattern"] == r"\.ya?ml$"  # or a recipe file
    assert schema["properties"]["overrides"]["default"] == []
    assert schema["properties"]["recipe"]["default"] is None  # the whole recipe only when asked for

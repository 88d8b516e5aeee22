"""The run form's `overrides` items (infimmr_core.override_schema) against the CLI's `--set`: the schema never refuses
what `--set` accepts, it refuses unknown keys and mistyped values with a message naming the item, what it cannot see is
refused when the flow resolves the recipe (by the CLI's code), and its patterns compile in a browser too."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess

import pytest
import yaml
from jsonschema import Draft202012Validator
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError, validate

from infimmr.flows.parameters import resolve_recipe
from infimmr.flows.pipeline import infimmr_pipeline
from infimmr_core.config import Recipe
from infimmr_core.override_schema import override_item_schema, recipe_settings
from infimmr_core.recipes import (
    RecipeError, apply_override, builtin_recipes, load_recipe, parse_override, recipe_text, recipe_yaml,
    validate_recipe,
)

SCHEMA = override_item_schema(Recipe)
ITEM = Draft202012Validator(SCHEMA)
SMOKE = yaml.safe_load(recipe_text("smoke"))

# Values of every shape a user might type, right or wrong for some field: YAML 1.1 numbers, bools, nulls and dates,
# text pydantic's lax mode converts (1e-6, 't', '8'), quoted forms, flow lists and mappings.
VALUES = [
    "1", "0", "-1", "-0", "+5", "00", "010", "0x10", "0b1", "1_000", "1:30", "1.", "1.5", "8.0", "0.0", ".5", "1e-6",
    "-1e-6", "1.0e-4", "1.5e+1", "1e3", "inf", ".inf", "-inf", "nan", "infinity", "true", "false", "True", "yes", "no",
    "on", "off", "y", "n", "t", "f", "null", "~", "", " 3 ", "'1'", "' 8 '", "'8.0'", "'1_0.5'", "'on'", "'TRUE'",
    "abc", "grpo", "'grpo'", '"grpo"', "none", "text", "image", "cuda", "tiny", "s3://b/x.jsonl", "2025-06-01",
    "[]", "[a, b]", "{}", "{a: 1}", "1.5.2", "-",
]


def cli_accepts(item: str) -> bool:
    """What `infimmr run --recipe smoke --set ITEM` decides, without a process per item."""
    data = copy.deepcopy(SMOKE)
    try:
        apply_override(data, *parse_override(item))
        validate_recipe(data)
    except RecipeError:
        return False
    return True


def test_schema_never_refuses_what_set_accepts():
    # One key of each kind of value (int >= 1, float > 0, text or null, each literal set, list, section ...).
    keys = {setting.value: setting.example for setting in recipe_settings(Recipe)}
    assert len(keys) > 25
    wrongly_refused = [item for key in keys.values() for value in VALUES
                       if not ITEM.is_valid(item := f"{key}={value}") and cli_accepts(item)]
    assert wrongly_refused == []


@pytest.mark.parametrize("name", builtin_recipes())
def test_every_setting_of_the_builtin_recipes_passes_as_an_override(name):
    def items(node, key):
        yield f"{key}={json.dumps(node)}"  # JSON is YAML: the value reads back as itself
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for child, value in children:
            yield from items(value, f"{key}.{child}")

    resolved = load_recipe(name).model_dump(mode="json", by_alias=True)
    everything = [item for top, value in resolved.items() for item in items(value, top)]
    assert len(everything) > 150
    assert [item for item in everything if not ITEM.is_valid(item)] == []


@pytest.mark.parametrize(
    ("item", "names"),
    [
        # A typo or a key that does not exist: the message lists the names the section has.
        ("phases.2.learnin_rate=1e-6", ["learning_rate", "num_generations"]),
        ("phases.4.learning_rate=1", ["1|2|3"]),
        ("curation.sources.0.pth=x.jsonl", ["path", "mapping"]),
        ("bogus=1", ["curation", "phases"]),
        ("rewards.workers.x=1", ["workers"]),  # a value, not a section
        ("nonsense", []),
        # A value that cannot be the field's type.
        ("phases.2.learning_rate=fast", []),
        ("phases.2.learning_rate=-1", []),  # gt=0
        ("phases.2.learning_rate=0", []),
        ("rewards.workers=zero", []),
        ("rewards.workers=1.5", []),
        ("phases.1.input=video", ["image_caption"]),
        ("phases.1.loss_type=ppo", ["dr_grpo"]),
        ("curation.difficulty.inclusive=maybe", []),
        ("publish.repo_id=123", []),  # YAML reads an int; a text field refuses it
        ("phases.1.report_to=wandb", []),  # a list needs [..]
        ("curation.captioning=on", []),  # a section needs {..}
    ],
)
def test_refused_before_a_run_exists_naming_the_item(item, names):
    assert not ITEM.is_valid(item)
    assert not cli_accepts(item), "the schema must not be stricter than --set"
    # What the server answers: Prefect's own validation of the flow's parameter schema.
    schema = parameter_schema(infimmr_pipeline).model_dump_for_openapi()
    with pytest.raises(ValidationError) as err:
        validate({"recipe_name": "smoke", "overrides": [item]}, schema, raise_on_error=True)
    message = str(err.value)
    assert "field 'overrides[0]'" in message and repr(item) in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # What depends on the recipe as a whole: the schema lets it through, the flow refuses it as --set does.
        (["phases.1.num_generations=3"], "is not divisible by num_generations = 3"),
        (["curation.sources.9.count=1"], "curation.sources.9: '9' is not an index of a list of 2"),
        (["curation.difficulty.min_pass_rate=0.9", "curation.difficulty.max_pass_rate=0.5"], "min_pass_rate 0.9 > max_pass_rate 0.5"),
        (["phases.1.warmup_ratio=1.5"], "phases.1.warmup_ratio: Input should be less than 1"),
        (["prompts.caption_template=no fields"], "lacks field"),
    ],
)
def test_what_the_schema_cannot_see_is_refused_when_the_recipe_resolves(overrides, message):
    assert all(ITEM.is_valid(item) for item in overrides)
    with pytest.raises(RecipeError, match=message):
        resolve_recipe("smoke", overrides, None)


def test_resolve_recipe_applies_overrides_to_a_name_or_a_whole_recipe():
    by_name = resolve_recipe("smoke", ["phases.2.learning_rate=1e-6", "phases.2.learning_rate=2e-6"], None)
    assert by_name.phases[2].learning_rate == 2e-6  # in order, like repeated --set
    whole = resolve_recipe("infimmr-3b", [], by_name)  # the whole recipe wins over the name
    assert whole == by_name
    assert resolve_recipe("smoke", ["phases.1.seed=7"], by_name).phases[1].seed == 7


def test_recipe_file_by_path_or_uri(tmp_path, s3_env, s3_server):
    text = recipe_yaml(load_recipe("smoke", ["phases.3.max_steps=5"]))
    (tmp_path / "mine.yaml").write_text(text)
    s3_server.client().put_object(Bucket=s3_env, Key="recipes/mine.yaml", Body=text.encode())
    for source in (str(tmp_path / "mine.yaml"), f"file://{tmp_path / 'mine.yaml'}", f"s3://{s3_env}/recipes/mine.yaml"):
        recipe = resolve_recipe(source, ["phases.1.seed=3"], None)
        assert (recipe.phases[3].max_steps, recipe.phases[1].seed) == (5, 3), source
    with pytest.raises(RecipeError, match="cannot read it"):
        resolve_recipe(f"s3://{s3_env}/recipes/missing.yaml", [], None)


def test_patterns_are_safe_for_browsers():
    """The UI validates in the browser too: every pattern must compile as a unicode ECMAScript regex."""
    patterns = sorted({rule[part]["pattern"] for rule in SCHEMA["allOf"] for part in ("if", "then")} | {SCHEMA["pattern"]})
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium package is not installed")
    page = ("<script>const bad = []; for (const p of " + json.dumps(patterns) + ") { try { new RegExp(p, 'u') } "
            "catch (e) { bad.push(p) } } document.write('<pre id=r>' + JSON.stringify(bad) + '</pre>')</script>")
    out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--dump-dom", "data:text/html;base64," + base64.b64encode(page.encode()).decode()],
                         capture_output=True, text=True, timeout=120).stdout
    assert '<pre id="r">' in out, out[-2000:]
    assert out.split('<pre id="r">')[1].split("</pre>")[0] == "[]"

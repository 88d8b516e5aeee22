"""Recipe loading, overrides and validation errors: every failure names the key and the problem."""

import subprocess
import sys

import pytest

from infimmr_core.recipes import RecipeError, builtin_recipes, load_recipe, recipe_yaml


def test_builtin_recipes_load():
    assert {"smoke", "infimmr-3b"} <= set(builtin_recipes())
    smoke = load_recipe("smoke")
    assert [smoke.phases[n].input for n in (1, 2, 3)] == ["text", "image_caption", "image"]
    paper = load_recipe("infimmr-3b")
    assert paper.base_model.name_or_path == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert paper.phases[1].learning_rate == 4e-7 and paper.phases[2].learning_rate == 1e-6


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ("phases.1.learning_rate=1e-6", lambda r: r.phases[1].learning_rate == 1e-6),
        ("phases.3.beta=0.01", lambda r: r.phases[3].beta == 0.01),
        ("curation.sources.0.count=5", lambda r: r.curation.sources[0].count == 5),
        ("curation.difficulty.inclusive=false", lambda r: r.curation.difficulty.inclusive is False),
        ("phases.2.report_to=[tensorboard, wandb]", lambda r: r.phases[2].report_to == ["tensorboard", "wandb"]),
        ("publish.repo_id=me/model", lambda r: r.publish.repo_id == "me/model"),
        ("store.endpoint_url=null", lambda r: r.store.endpoint_url is None),
    ],
)
def test_dotted_overrides(override, check):
    assert check(load_recipe("smoke", [override]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("phases.1.learnin_rate=1e-6", "phases.1.learnin_rate: unknown key"),
        ("phases.4.learning_rate=1", "phases.4: unknown key"),
        ("phases.1.learning_rate=-1", "phases.1.learning_rate: Input should be greater than 0"),
        ("phases.1.num_generations=3", "is not divisible by num_generations = 3"),
        ("rewards.workers=zero", "rewards.workers: Input should be a valid integer"),
        (["curation.difficulty.min_pass_rate=0.9", "curation.difficulty.max_pass_rate=0.5"], "min_pass_rate 0.9 > max_pass_rate 0.5"),
        ("prompts.caption_template=no fields", "lacks field"),
        ("phases.1.input=video", "phases.1.input: Input should be 'text', 'image_caption' or 'image'"),
        ("curation.sources.9.count=1", "curation.sources.9: '9' is not an index of a list of 2"),
        ("rewards.workers.x=1", "rewards.workers is a value, not a section"),
        ("nonsense", "is not KEY=VALUE"),
    ],
)
def test_invalid_overrides_name_the_key(override, message):
    with pytest.raises(RecipeError) as err:
        load_recipe("smoke", override if isinstance(override, list) else [override])
    assert message in str(err.value)


def test_unknown_recipe_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe 'nope'; built-in recipes: .*smoke"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_recipe_file_and_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(recipe_yaml(load_recipe("smoke", ["phases.2.max_steps=7"])))
    again = load_recipe(str(path))
    assert again.phases[2].max_steps == 7
    assert recipe_yaml(again) == path.read_text()


def test_cli_rejects_bad_value_with_nonzero_exit():
    proc = subprocess.run(
        [sys.executable, "-m", "infimmr.flows.cli", "recipe", "show", "smoke", "--set", "phases.1.learnin_rate=1"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "phases.1.learnin_rate: unknown key" in proc.stderr


def test_cli_lists_and_shows_recipes():
    listed = subprocess.run([sys.executable, "-m", "infimmr.flows.cli", "recipes"], capture_output=True, text=True, check=True)
    assert "smoke" in listed.stdout.split()
    shown = subprocess.run([sys.executable, "-m", "infimmr.flows.cli", "recipe", "show", "infimmr-3b"],
                           capture_output=True, text=True, check=True)
    assert "learning_rate: 4.0e-07" in shown.stdout or "learning_rate: 4e-07" in shown.stdout


def test_cli_rejects_unknown_store_scheme():
    proc = subprocess.run([sys.executable, "-m", "infimmr.flows.cli", "run", "--store", "ftp://nowhere/x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unsupported store URI 'ftp://nowhere/x'" in proc.stderr and "Traceback" not in proc.stderr

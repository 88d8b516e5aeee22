"""The `base` stage (the warm-up) as part of the graph: present only in recipes that warm their base model up, read
by exactly the stages that use the base model, keyed by its own settings, and followed downstream by its digest."""

from __future__ import annotations

import pytest
from test_keys import _copies, keys_in_subprocess

from infimmr_core.recipes import load_recipe
from infimmr_core.stages import SHARD, SPECS, STAGES, pipeline_stages, stage_key, upstream_of

DIGESTS = {"base": "0" * 64, "curate": "a" * 64, "phase1": "b" * 64, "phase2": "c" * 64, "phase3": "d" * 64,
           "evaluate": "e" * 64, "shard": "f" * 64}


def keys(recipe, digests=DIGESTS):
    return {s: stage_key(s, recipe, {u: digests[u] for u in SPECS[s].upstream}) for s in (SHARD, *pipeline_stages(recipe))}


@pytest.mark.parametrize("name", ["infimmr-3b", "smoke"])
def test_recipes_without_a_warmup_have_no_base_stage(name):
    recipe = load_recipe(name)
    assert pipeline_stages(recipe) == tuple(s for s in STAGES if s != "base")
    assert not any("base" in upstream_of(s, recipe) for s in SPECS)


def test_the_demo_starts_from_its_base_stage_wherever_the_base_model_is_used():
    recipe = load_recipe("demo")
    assert pipeline_stages(recipe) == STAGES
    readers = {s for s in SPECS if "base" in upstream_of(s, recipe)}
    assert readers == {SHARD, "curate", "phase1", "evaluate"}  # rollouts, the merge's key, phase 1's start, base row


def test_a_shard_that_never_generates_with_the_base_model_does_not_read_it():
    recipe = load_recipe("demo", ["curation.difficulty.pass_rate_column=PassRate", "curation.captioning.model={name_or_path: tiny}"])
    assert "base" not in upstream_of(SHARD, recipe) and "base" not in upstream_of("curate", recipe)
    assert "base" in upstream_of("phase1", recipe)


def test_warmup_settings_shape_the_base_stage_and_reach_the_rest_through_its_digest():
    demo = load_recipe("demo")
    before = keys(demo)
    after = keys(load_recipe("demo", ["warmup.target_accuracy=0.5"]))
    assert {s for s in before if before[s] != after[s]} == {"base", "publish"}
    moved = keys(demo, {**DIGESTS, "base": "9" * 64})
    assert {s for s in before if before[s] != moved[s]} == {SHARD, "curate", "phase1", "evaluate"}


def test_warmup_code_shapes_only_recipes_that_warm_up(tmp_path):
    original, edited = _copies(tmp_path)
    for module in ("warmup/stage.py", "warmup/vision.py", "data/digit_sums.py"):
        path = edited / "infimmr_core" / module
        path.write_text(path.read_text() + "\nA_REAL_CODE_CHANGE = 1\n")
    assert keys_in_subprocess(edited, "infimmr-3b") == keys_in_subprocess(original, "infimmr-3b")
    before, after = keys_in_subprocess(original, "demo"), keys_in_subprocess(edited, "demo")
    # The warm-up's code shapes the base model; the digit sums are the demo's sources and evaluation sets.
    assert {s for s in before if before[s] != after[s]} == {"base", "curate-collect", "curate", "evaluate"}



def test_the_supervised_steps_leave_a_prewarmed_vision_tower_as_the_prewarm_left_it(tmp_path):
    """The demo's warm-up trains the language model to read a tower that holds still (`keep_prewarmed_vision`): with
    the tower trained along, seed 1 never read the picture in 1,500 steps; frozen, by step 725."""
    from infimmr_core.base_model import model_dir
    from infimmr_core.models import load_model
    from infimmr_core.warmup.stage import trained_parameters

    recipe = load_recipe("demo")
    assert recipe.warmup.keep_prewarmed_vision and recipe.warmup.vision_steps > 0
    model = load_model(model_dir(recipe.base_model, tmp_path / "cache"), device="cpu")
    names = {id(p): name for name, p in model.named_parameters()}
    vision = {name for name in names.values() if name.startswith("model.visual.")}
    kept = {names[id(p)] for p in trained_parameters(model, keep_vision=True)}
    assert vision and kept == set(names.values()) - vision
    assert {names[id(p)] for p in trained_parameters(model, keep_vision=False)} == set(names.values())

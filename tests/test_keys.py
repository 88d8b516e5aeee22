"""Key stability: same inputs -> same key in any process; any input that shapes the output -> a new key."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infimmr_core.keys import code_closure
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import SPECS, downstream_of, key_inputs, pipeline_stages, stage_key

ROOT = Path(__file__).resolve().parents[1]
DIGESTS = {"curate": "a" * 64, "phase1": "b" * 64, "phase2": "c" * 64, "phase3": "d" * 64, "evaluate": "e" * 64,
           "base": "0" * 64}
STAGES = pipeline_stages(load_recipe("smoke"))  # the stages of the recipe these tests use (no warm-up: no base)

KEYS_SCRIPT = """
import json, sys
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import SPECS, STAGES, pipeline_stages, stage_key
digests, recipe_name, overrides = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
recipe = load_recipe(recipe_name, overrides)
stages = [s for s in SPECS if s not in STAGES or s in pipeline_stages(recipe)]
print(json.dumps({s: stage_key(s, recipe, {u: digests[u] for u in SPECS[s].upstream}) for s in stages}))
"""


def keys_in_subprocess(pythonpath: Path, recipe: str = "smoke", overrides: tuple[str, ...] = ()) -> dict[str, str]:
    """Every stage's (and part's) key of the recipe, computed in a fresh interpreter that imports infimmr_core from
    `pythonpath`."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "PYTHONHASHSEED": "random"}
    digests = {**DIGESTS, "shard": "f" * 64}
    out = subprocess.run([sys.executable, "-c", KEYS_SCRIPT, json.dumps(digests), recipe, json.dumps(list(overrides))],
                         env=env, cwd=pythonpath, capture_output=True, text=True, check=True)
    return {stage: key for stage, key in json.loads(out.stdout).items()}


def _copies(tmp_path: Path) -> tuple[Path, Path]:
    """Two copies of infimmr_core to edit one of: the original, and the one to edit."""
    copies = tmp_path / "original", tmp_path / "edited"
    for target in copies:
        shutil.copytree(ROOT / "infimmr_core", target / "infimmr_core", ignore=shutil.ignore_patterns("__pycache__"))
    return copies


def upstream(stage):
    return {u: DIGESTS[u] for u in SPECS[stage].upstream}


def test_same_inputs_same_key_across_processes():
    recipe = load_recipe("smoke")
    here = {s: stage_key(s, recipe, upstream(s)) for s in STAGES}
    assert {s: k for s, k in keys_in_subprocess(ROOT).items() if s in STAGES} == here


def test_key_inputs_hold_no_run_specific_values():
    inputs = key_inputs("phase2", load_recipe("smoke"), upstream("phase2"))
    assert set(inputs) == {"stage", "config", "upstream", "code", "libraries"}
    text = json.dumps(inputs)
    assert "infimmr-store" not in text and "runtime" not in text and str(ROOT) not in text


def test_store_and_runtime_do_not_change_keys():
    base = load_recipe("smoke")
    moved = load_recipe("smoke", ["store.uri=s3://bucket/prefix", "runtime.device=cuda", "runtime.stage_timeout_seconds=5"])
    assert all(stage_key(s, base, upstream(s)) == stage_key(s, moved, upstream(s)) for s in STAGES)


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("phases.2.learning_rate=3e-4", {"phase2", "publish"}),
        ("curation.sources.0.count=5", {"curate", "publish"}),
        ("rewards.format_weight=0.25", {"curate", "phase1", "phase2", "phase3", "evaluate", "publish"}),
        ("evaluation.generation.max_new_tokens=8", {"evaluate", "publish"}),
        ("base_model.seed=3", {"curate", "phase1", "evaluate", "publish"}),  # evaluate scores the base model too
        ("publish.private=false", {"publish"}),
    ],
)
def test_config_change_changes_exactly_the_stages_it_shapes(override, changed):
    # Keys are computed with fixed upstream digests here: downstream stages also change in a real run, through the
    # new digest of the stage whose config changed.
    base, edited = load_recipe("smoke"), load_recipe("smoke", [override])
    differ = {s for s in STAGES if stage_key(s, base, upstream(s)) != stage_key(s, edited, upstream(s))}
    assert differ == changed


def test_changed_upstream_digest_changes_key():
    recipe = load_recipe("smoke")
    before = stage_key("phase2", recipe, upstream("phase2"))
    after = stage_key("phase2", recipe, {**upstream("phase2"), "phase1": "f" * 64})
    assert before != after


def test_missing_upstream_digest_is_an_error():
    with pytest.raises(ValueError, match="needs the digests of"):
        stage_key("phase2", load_recipe("smoke"), {"curate": "a" * 64})


def test_code_closure_follows_helper_imports():
    closure = code_closure("infimmr_core.training")
    assert {"infimmr_core.rewards", "infimmr_core.data.prompts", "infimmr_core.models"} <= set(closure)
    assert "infimmr_core.publish" not in closure


def test_helper_module_edit_changes_key(tmp_path):
    """Changing what a helper module does (the prompt builder) gives every stage that imports it a new key;
    changing a module no stage of interest imports (publish) leaves the training keys alone."""
    original, edited = _copies(tmp_path)
    prompts = edited / "infimmr_core" / "data" / "prompts.py"
    prompts.write_text(prompts.read_text() + "\nBEHAVIOUR_CHANGE = 1\n")
    publish = edited / "infimmr_core" / "publish.py"
    publish.write_text(publish.read_text() + "\nPUBLISH_ONLY_CHANGE = 1\n")
    before, after = keys_in_subprocess(original), keys_in_subprocess(edited)
    assert {s for s in STAGES if before[s] != after[s]} == {"curate", "phase1", "phase2", "phase3", "evaluate", "publish"}
    prompts.write_text((original / "infimmr_core" / "data" / "prompts.py").read_text())
    after_publish_only = keys_in_subprocess(edited)
    assert {s for s in STAGES if before[s] != after_publish_only[s]} == {"publish"}


def test_downstream_closure():
    assert downstream_of(["phase2"]) == {"phase2", "phase3", "evaluate", "publish"}
    assert downstream_of(["curate"]) == set(STAGES)
    assert downstream_of(["base"]) == {"base", *STAGES}  # the warm-up's output is the base model of every stage
    assert downstream_of([]) == set()


def test_computing_keys_imports_no_ml_library():
    """The orchestrator computes every key on each run: it must stay light (no torch/transformers import)."""
    script = KEYS_SCRIPT + "\nprint(json.dumps(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules)))"
    digests = json.dumps({**DIGESTS, "shard": "f" * 64})
    out = subprocess.run([sys.executable, "-c", script, digests, "infimmr-3b", "[]"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []

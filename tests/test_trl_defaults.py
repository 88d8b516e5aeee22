"""TRL upgrades cannot change infimmr-3b's training silently, and image phases cannot roll out on colocated vLLM
where TRL misaligns their prompts (infimmr_core/trl_compat.py)."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from infimmr_core import trl_compat
from infimmr_core.config import PhaseConfig
from infimmr_core.recipes import RecipeError, load_recipe, recipe_text

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "trl-1.9.0-grpo-config-defaults.json"


def _defaults_reader():
    spec = importlib.util.spec_from_file_location("trl_defaults", ROOT / "scripts" / "trl_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.grpo_config_defaults


def installed_defaults() -> dict[str, str]:
    from trl.trainer import grpo_config

    return _defaults_reader()(inspect.getsource(grpo_config))


def test_every_default_that_moved_since_trl_1_9_is_named():
    """The 1.9.0 defaults (read from its tag) against the installed release: the table in trl_compat is the diff."""
    before, now = json.loads(FIXTURE.read_text()), installed_defaults()
    moved = {name for name in before.keys() | now.keys() if before.get(name) != now.get(name)}
    assert moved == set(trl_compat.CHANGED_DEFAULTS)
    for name, change in trl_compat.CHANGED_DEFAULTS.items():
        assert (before[name], now[name]) == (repr(change.before), repr(change.after)), name


def test_installed_trl_is_the_one_the_facts_were_read_from():
    assert trl_compat.installed_trl() == trl_compat.TRL_TESTED


def test_infimmr_3b_sets_every_math_default_that_moved(tmp_path):
    """Spelled out in the YAML of every phase, and what the trainer's GRPOConfig receives (flipping the recipe's value
    flips the resolved config, so it is passed through rather than left to TRL)."""
    from infimmr_core.grpo_phase import grpo_args

    raw = yaml.safe_load(recipe_text("infimmr-3b"))
    recipe = load_recipe("infimmr-3b")
    assert trl_compat.MATH_DEFAULTS
    for number in (1, 2, 3):
        assert set(trl_compat.MATH_DEFAULTS) <= set(raw["phases"][number]), f"phase {number} leaves a TRL default implicit"
        cfg = recipe.phases[number]
        resolved = grpo_args(cfg, recipe.rewards, tmp_path, "cpu")
        for name in trl_compat.MATH_DEFAULTS:
            assert getattr(resolved, name) == raw["phases"][number][name] == getattr(cfg, name), (number, name)
            flipped = not cfg.use_bias_correction_kl if name == "use_bias_correction_kl" else cfg.max_completion_length + 1
            other = grpo_args(cfg.model_copy(update={name: flipped}), recipe.rewards, tmp_path, "cpu")
            assert getattr(other, name) == flipped, (number, name)
    comment = next(line for line in recipe_text("infimmr-3b").splitlines() if "use_bias_correction_kl" in line)
    assert "[TRL]" in comment and "[LMM-R1]" in comment


@pytest.mark.parametrize(
    ("version", "fixed_in", "misaligns"),
    [
        ("1.16.0", None, True),  # no release has PR #6718
        ("1.9.0", None, True),
        (None, None, True),  # TRL absent here: the training machine may have any release
        ("1.16.0", "1.17.0", True),
        ("1.17.0", "1.17.0", False),
        ("2.0.1", "1.17.0", False),
    ],
)
def test_which_trl_versions_misalign_colocated_images(version, fixed_in, misaligns):
    assert trl_compat.colocate_misaligns_images(version, fixed_in) is misaligns


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"input": "image", "use_vllm": True, "vllm_mode": "colocate"}, "trl issues #6294, #6401"),
        ({"input": "image_caption", "use_vllm": True, "vllm_mode": "colocate"}, "misaligns prompts and images"),
        ({"input": "image", "use_vllm": True}, "auto' rolls out a 'image' phase on a vLLM server: it needs vllm_server_base_url"),
        ({"input": "text", "use_vllm": True, "vllm_mode": "server"}, "needs vllm_server_base_url"),
        ({"input": "image", "use_vllm": True, "vllm_server_base_url": "http://10.0.0.5:8000"}, None),
        ({"input": "image", "use_vllm": False, "vllm_mode": "colocate"}, None),  # no vLLM: nothing to misalign
        ({"input": "text", "use_vllm": True, "vllm_mode": "colocate"}, None),
        ({"input": "text", "use_vllm": True}, None),
    ],
)
def test_image_phases_refuse_colocated_vllm(settings, error):
    base = {"num_generations": 4, "per_device_train_batch_size": 8}
    if error is None:
        PhaseConfig.model_validate(base | settings)
    else:
        with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
            PhaseConfig.model_validate(base | settings)


def test_auto_mode_picks_server_for_image_phases():
    modes = [load_recipe("infimmr-3b").phases[n].rollout_vllm_mode for n in (1, 2, 3)]
    assert modes == ["colocate", "server", "server"]


def test_recipe_validation_names_the_phase_and_the_trap():
    with pytest.raises(RecipeError, match=r"phases\.2.*colocate.*#6294"):
        load_recipe("infimmr-3b", ["phases.2.use_vllm=true", "phases.2.vllm_mode=colocate"])
    recipe = load_recipe(
        "infimmr-3b",
        ["phases.2.use_vllm=true", "phases.2.vllm_server_base_url=http://10.0.0.5:8000", "phases.1.use_vllm=true"],
    )
    assert (recipe.phases[1].rollout_vllm_mode, recipe.phases[2].rollout_vllm_mode) == ("colocate", "server")


def test_readme_starts_the_vllm_server_the_way_trl_expects():
    """`trl vllm-serve` is deprecated; the README's `vllm serve` line carries every flag TRL's own wrapper imposes."""
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    command = build_command(ScriptArguments(model="MODEL"))
    imposed = command[command.index("--weight-transfer-config"):]
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("VLLM_SERVER_DEV_MODE=1 vllm serve"):]
    block = block[: block.index("```")]
    for flag, value in zip(imposed[::2], imposed[1::2]):
        assert flag in block and (value in block or f"'{value}'" in block), (flag, value)
    assert "--enable-scale-out" in block  # TRL adds it for vLLM >= 0.30 (0.31 here), for multimodal prompts
    assert "trl vllm-serve --model" not in readme

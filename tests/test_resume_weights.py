"""The weights round trip of a phase checkpoint, in process and fast (the end-to-end kill-and-resume is in
test_resume_exact.py): what a real GRPO trainer saves, a new trainer's resume loads back bitwise (full model and LoRA
adapter), whatever names the checkpoint uses; and a checkpoint whose keys do not match is refused, naming them."""

from __future__ import annotations

import pytest
from test_phase_inputs import phase_run

from infimmr_core.resume import CheckpointMismatch, load_checkpoint_weights, mismatch_message


@pytest.mark.parametrize(
    ("missing", "unexpected", "mismatched", "expected"),
    [
        ([], [], [], None),
        (["b", "a"], [], [], "weights 2 missing from the checkpoint (e.g. a, b)."),
        ([], ["x"], [], "weights 1 unexpected in the checkpoint (e.g. x)."),
        ([], [], ["w"], "weights 1 with another shape in the checkpoint (e.g. w)."),
        (["m"], ["u"], [], "weights 1 missing from the checkpoint (e.g. m); 1 unexpected in the checkpoint (e.g. u)."),
        ([f"k{i}" for i in range(9)], [], [], "weights 9 missing from the checkpoint (e.g. k0, k1, k2, k3, k4)."),
    ],
)
def test_mismatch_message(missing, unexpected, mismatched, expected):
    message = mismatch_message("ckpt-7", missing, unexpected, mismatched)
    if expected is None:
        assert message is None
    else:
        assert message.startswith("checkpoint ckpt-7 does not match the model") and expected in message


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _differing(a: dict, b: dict) -> list[str]:
    import torch

    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_trainer_checkpoint_round_trip_is_exact(tmp_path, tiny_model_dir, lora):
    """A trained step's checkpoint, loaded by a fresh trainer's resume, gives back exactly the trained weights."""
    from infimmr_core.config import LoraSettings
    from infimmr_core.grpo_phase import build_trainer, reward_pool

    run = phase_run(tmp_path, tiny_model_dir, 1, save_steps=1, max_completion_length=32, learning_rate=1e-2,
                    lora=LoraSettings(r=4, alpha=8) if lora else None)
    with reward_pool(run.recipe.rewards) as pool:
        saved, _, _ = build_trainer(run, pool)
        saved.train()
        fresh, _, _ = build_trainer(run, pool)
    trained, initial = _state(saved.model), _state(fresh.model)
    assert _differing(trained, initial), "the step changed no weight: the round trip would prove nothing"
    fresh._load_from_checkpoint(str(run.trainer_dir / "checkpoint-1"))  # what Trainer.train(resume_from_checkpoint=) calls
    assert _differing(_state(fresh.model), trained) == []


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from infimmr_core.models import load_model

    return load_model(tiny_model_dir)


@pytest.mark.parametrize("original_names", [True, False], ids=["hub-names", "live-names"])
def test_checkpoint_loads_exactly_whatever_its_naming(model, tmp_path, original_names):
    import torch

    # save_pretrained's default writes the Hub's names (transformers 5 reverts its key conversion); the other naming
    # is the live module tree's. Both must come back exactly.
    model.save_pretrained(tmp_path, save_original_format=original_names)
    target = type(model)(model.config)
    with torch.no_grad():
        for p in target.parameters():
            p.zero_()
    load_checkpoint_weights(target, tmp_path)
    assert _differing(_state(target), _state(model)) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("drop", r"1 missing from the checkpoint \(e\.g\. model\.language_model\.layers\.0\.mlp\.up_proj\.weight\)"),
        ("extra", r"1 unexpected in the checkpoint \(e\.g\. model\.language_model\.layers\.0\.mlp\.extra\.weight\)"),
    ],
)
def test_a_mismatched_checkpoint_is_refused(model, tmp_path, edit, message):
    import torch
    from safetensors.torch import load_file, save_file

    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    if edit == "drop":
        del weights["model.layers.0.mlp.up_proj.weight"]
    else:
        weights["model.layers.0.mlp.extra.weight"] = torch.zeros(2)
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatch, match=message):
        load_checkpoint_weights(type(model)(model.config), tmp_path)


def test_the_trainers_own_plain_load_is_an_error_not_a_warning(model):
    """Any load that still goes through Trainer's `load_state_dict(strict=False)` report raises when keys are off."""
    from transformers import Trainer

    from infimmr_core.resume import exact_resume

    cls = exact_resume(Trainer)
    trainer = cls.__new__(cls)  # only the model is needed to judge a load report
    trainer.model = model
    live = model.state_dict()
    # A correct state dict without the tied lm_head (save_pretrained drops it) is fine...
    trainer._issue_warnings_after_load(model.load_state_dict({k: v for k, v in live.items() if k != "lm_head.weight"},
                                                             strict=False))
    # ...one under other names, as Trainer loaded the Hub-named checkpoints, is not.
    renamed = {k.replace("model.language_model.", "model."): v for k, v in live.items()}
    with pytest.raises(CheckpointMismatch, match=r"weights \d+ missing from the checkpoint .* \d+ unexpected"):
        trainer._issue_warnings_after_load(model.load_state_dict(renamed, strict=False))

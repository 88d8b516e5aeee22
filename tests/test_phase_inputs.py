"""What the policy sees in each phase, checked on the tokenized prompts the processor produces from the training
stage's own rows: phase 1 text only; phase 2 image tokens and the caption; phase 3 image tokens and no caption."""

import pytest

from infimmr_core.config import PromptConfig
from infimmr_core.data import synthetic
from infimmr_core.models import load_processor
from infimmr_core.recipes import load_recipe
from infimmr_core.training import phase_rows

CAPTION = "Two red circles and one blue square drawn on white"


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


def tokenized(processor, row):
    text = processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    batch = processor(text=[text], images=row.get("images") or None, return_tensors="pt")
    return text, batch


@pytest.mark.parametrize(
    ("phase", "samples", "has_image", "has_caption"),
    [
        (1, lambda: synthetic.text_problems(2, seed=1), False, False),
        (2, lambda: [s.model_copy(update={"caption": CAPTION}) for s in synthetic.image_problems(2, seed=2)], True, True),
        (3, lambda: [s.model_copy(update={"caption": CAPTION}) for s in synthetic.image_problems(2, seed=2)], True, False),
    ],
)
def test_phase_prompt_shapes(processor, phase, samples, has_image, has_caption):
    recipe = load_recipe("smoke")
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for row in phase_rows(samples(), recipe.phases[phase], PromptConfig()):
        text, batch = tokenized(processor, row)
        ids = batch["input_ids"][0].tolist()
        assert (image_pad in ids) is has_image
        assert ("pixel_values" in batch) is has_image
        assert ("images" in row) is has_image
        if has_image:
            grid = batch["image_grid_thw"][0]
            assert ids.count(image_pad) == int(grid.prod()) // processor.image_processor.merge_size**2
        assert (CAPTION in text) is has_caption
        assert (CAPTION in processor.tokenizer.decode(ids)) is has_caption
        assert row["answer"]


def test_phase_rows_reject_wrong_pool():
    recipe = load_recipe("smoke")
    with pytest.raises(ValueError, match="text-only"):
        phase_rows(synthetic.image_problems(1, seed=0), recipe.phases[1], PromptConfig())
    with pytest.raises(ValueError, match="no caption"):
        phase_rows(synthetic.image_problems(1, seed=0), recipe.phases[2], PromptConfig())


# --- The batches the GRPO trainer itself receives ------------------------------------------------------------------

from infimmr_core.data.pool_io import write_pool  # noqa: E402
from infimmr_core.grpo_phase import PhaseRun, build_trainer, reward_pool, vision_tower  # noqa: E402


def phase_run(tmp_path, model_dir, number: int, **overrides) -> PhaseRun:
    recipe = load_recipe("smoke")
    cfg = recipe.phases[number]
    for name, value in {"max_steps": 1, "max_completion_length": 8, "save_steps": 100, **overrides}.items():
        setattr(cfg, name, value)
    recipe.rewards.workers = 1
    pool = tmp_path / f"{cfg.input}.parquet"
    samples = synthetic.text_problems(4, seed=1) if number == 1 else [
        s.model_copy(update={"caption": CAPTION}) for s in synthetic.image_problems(4, seed=2)
    ]
    write_pool(samples, pool)
    return PhaseRun(
        stage=f"phase{number}", key="test", number=number, recipe=recipe, pool_path=pool, init_dir=model_dir,
        out_dir=tmp_path / "out", trainer_dir=tmp_path / "trainer", device="cpu", summary_path=tmp_path / "summary.json",
    )


def train_one_step_recording(run: PhaseRun):
    """Train one real step, keeping every batch that reaches the loss (the trainer's own tokenization and images)."""
    batches = []
    with reward_pool(run.recipe.rewards) as pool:
        trainer, processor, _ = build_trainer(run, pool)
        compute_loss = trainer.compute_loss

        def recording(model, inputs, *args, **kwargs):
            batches.append(inputs)
            return compute_loss(model, inputs, *args, **kwargs)

        trainer.compute_loss = recording
        trainer.train()
    return trainer, processor, batches


@pytest.mark.parametrize(("number", "has_image", "has_caption"), [(1, False, False), (2, True, True), (3, True, False)])
def test_trainer_batches_per_phase(tmp_path, tiny_model_dir, number, has_image, has_caption):
    run = phase_run(tmp_path, tiny_model_dir, number)
    _, processor, batches = train_one_step_recording(run)
    assert batches
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for batch in batches:
        prompts = batch["prompt_ids"]
        assert prompts.shape[0] == run.cfg.per_device_train_batch_size
        assert bool((prompts == image_pad).any(dim=1).all()) is has_image
        assert not (prompts == image_pad).any() if not has_image else True
        assert ("pixel_values" in batch) is has_image
        if has_image:
            merge = processor.image_processor.merge_size ** 2
            assert int((prompts == image_pad).sum()) == int(batch["image_grid_thw"].prod(dim=1).sum()) // merge
        texts = processor.tokenizer.batch_decode(prompts)
        assert all((CAPTION in t) is has_caption for t in texts)


def test_reference_is_the_initial_policy_and_vision_can_be_frozen(tmp_path, tiny_model_dir):
    import torch
    from safetensors.torch import load_file

    run = phase_run(tmp_path, tiny_model_dir, 3, beta=0.05, freeze_vision_tower=True)
    trainer, _, _ = train_one_step_recording(run)
    initial = load_file(str(tiny_model_dir / "model.safetensors"))
    policy = dict(trainer.model.named_parameters())
    reference = dict(trainer.ref_model.named_parameters())
    # A separate copy, not the policy itself: no storage shared, nothing of it in the optimizer.
    assert not {p.data_ptr() for p in policy.values()} & {p.data_ptr() for p in reference.values()}
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimized for p in reference.values())
    assert any("kl" in h for h in trainer.state.log_history)
    frozen = {n for n, p in policy.items() if not p.requires_grad}
    assert frozen == {n for n, _ in trainer.model.named_parameters() if ".visual." in f".{n}"}
    assert frozen and all(torch.equal(policy[n].detach(), reference[n].detach()) for n in frozen)
    assert all(not p.requires_grad for p in vision_tower(trainer.model).parameters())
    # The reference is exactly the weights the phase started from.
    by_suffix = {k.split("model.", 1)[-1]: v for k, v in initial.items()}
    for name, p in reference.items():
        saved = initial.get(name, by_suffix.get(name.split("model.", 1)[-1]))
        if saved is not None:
            assert torch.equal(p.detach().cpu(), saved.to(p.dtype)), name


def test_lora_phase_saves_a_merged_plain_model(tmp_path, tiny_model_dir):
    from infimmr_core.config import LoraSettings
    from infimmr_core.grpo_phase import MODEL_DIR, _save_final
    from infimmr_core.models import load_model

    run = phase_run(tmp_path, tiny_model_dir, 1, lora=LoraSettings(r=4, alpha=8))
    trainer, processor, _ = train_one_step_recording(run)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "visual" not in n for n in trainable)
    _save_final(trainer, processor, run)
    reloaded = load_model(run.out_dir / MODEL_DIR)
    assert not any("lora" in n for n, _ in reloaded.named_parameters())

"""The phase stages: one GRPO phase on TRL, from the previous phase's weights (or the base model) to a model directory.

Phase N reads its pool from the curate artifact: text (phase 1), image_caption (phase 2), image (phase 3); the prompt
builder decides what the policy sees, so this module never special-cases a phase beyond picking its pool.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from infimmr_core.config import PhaseConfig, PromptConfig, Recipe, RewardConfig
from infimmr_core.context import StageContext
from infimmr_core.data.images import decode_image
from infimmr_core.data.pool_io import read_pool
from infimmr_core.data.prompts import build_messages
from infimmr_core.data.schema import Sample
from infimmr_core.models import load_model, load_processor, resolve_model
from infimmr_core.rewards import ScoreItem, format_reward, score_batch

MODEL_DIR = "model"


def phase_number(stage: str) -> int:
    return int(stage.removeprefix("phase"))


def phase_rows(samples: list[Sample], cfg: PhaseConfig, prompts: PromptConfig) -> list[dict[str, Any]]:
    """Trainer rows: conversational prompt, images (image phases only) and the gold columns the rewards read."""
    rows = []
    for s in samples[: cfg.max_samples]:
        row = {
            "prompt": build_messages(s, cfg.input, system_prompt=prompts.system_prompt, caption_template=prompts.caption_template),
            "answer": s.answer,
            "answer_type": s.answer_type,
            "choices": s.choices,
        }
        if cfg.input != "text":
            row["images"] = [decode_image(b) for b in s.images]
        rows.append(row)
    return rows


def _completion_text(completion: Any) -> str:
    # Conversational prompts give conversational completions: [{"role": "assistant", "content": "..."}].
    if isinstance(completion, list):
        return "".join(m["content"] if isinstance(m["content"], str) else "" for m in completion)
    return completion


def make_reward_funcs(cfg: RewardConfig) -> list:
    """TRL reward callables; their names become the logged metric names (rewards/format/mean, ...)."""

    def format(completions, **_: Any) -> list[float]:  # noqa: A001 - the name is the metric name
        return [format_reward(_completion_text(c), mode=cfg.format_mode, answer_format=cfg.answer_format) for c in completions]

    def accuracy(completions, answer, answer_type, choices, **_: Any) -> list[float]:
        items = [
            ScoreItem(completion=_completion_text(c), gold=g, answer_type=t, choices=ch or None)
            for c, g, t, ch in zip(completions, answer, answer_type, choices)
        ]
        # Worker processes with a per-item timeout: one pathological answer must never stall training.
        scores = score_batch(items, timeout=cfg.timeout_seconds, workers=cfg.workers,
                             mode=cfg.format_mode, answer_format=cfg.answer_format)
        return [b.accuracy for b in scores]

    return [format, accuracy]


def grpo_args(cfg: PhaseConfig, rewards: RewardConfig, output_dir: Path, device: str):
    from trl import GRPOConfig

    scheduler_kwargs = {"min_lr_rate": cfg.min_lr_rate} if cfg.lr_scheduler_type == "cosine_with_min_lr" else {}
    return GRPOConfig(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        reward_weights=[rewards.format_weight, rewards.accuracy_weight],
        bf16=cfg.bf16 and device != "cpu",
        gradient_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        report_to=cfg.report_to or "none",
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def initial_model_dir(ctx: StageContext, number: int) -> Path:
    if number == 1:
        base = ctx.recipe.base_model
        return resolve_model(base.name_or_path, base.revision, ctx.cache_dir / "models", seed=base.seed)
    return ctx.inputs[f"phase{number - 1}"] / MODEL_DIR


def summarise(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [h for h in log_history if "reward" in h]
    if not steps:
        return {"steps": 0}
    first, last = steps[0], steps[-1]
    return {
        "steps": int(last.get("step", len(steps))),
        "reward_start": first["reward"],
        "reward_end": last["reward"],
        "accuracy_start": first.get("rewards/accuracy/mean"),
        "accuracy_end": last.get("rewards/accuracy/mean"),
    }


def run(ctx: StageContext) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOTrainer

    recipe: Recipe = ctx.recipe
    number = phase_number(ctx.stage)
    cfg = recipe.phases[number]
    pool = read_pool(ctx.inputs["curate"] / "pools" / f"{cfg.input}.parquet")
    if not pool:
        raise RuntimeError(f"phase {number}: the curated {cfg.input} pool is empty; nothing to train on")
    rows = phase_rows(pool, cfg, recipe.prompts)
    init_dir = initial_model_dir(ctx, number)
    ctx.log(f"phase {number} ({cfg.input}): {len(rows)} prompts, starting from {init_dir}")

    processor = load_processor(init_dir, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    model = load_model(init_dir, device=ctx.device, dtype="bfloat16" if cfg.bf16 and ctx.device != "cpu" else "float32")
    trainer_dir = ctx.work_dir / "trainer"
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=make_reward_funcs(recipe.rewards),
        args=grpo_args(cfg, recipe.rewards, trainer_dir, ctx.device),
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )
    trainer.train()

    model_out = ctx.out_dir / MODEL_DIR
    trainer.save_model(str(model_out))
    processor.save_pretrained(str(model_out))
    for extra in ("generation_config.json",):  # keep decoding defaults of the starting model
        if (init_dir / extra).exists() and not (model_out / extra).exists():
            shutil.copy2(init_dir / extra, model_out / extra)
    history = trainer.state.log_history
    with (ctx.out_dir / "metrics.jsonl").open("w") as fh:
        for entry in history:
            fh.write(json.dumps(entry) + "\n")
    summary = summarise(history) | {"phase": number, "input": cfg.input, "prompts": len(rows)}
    ctx.log(f"phase {number} done: {summary}")
    return summary

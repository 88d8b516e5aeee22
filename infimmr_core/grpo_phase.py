"""One GRPO phase in one process group: the code every training process runs.

The phase stage (`infimmr_core.training`) calls `train(run)` in its own process, or starts N copies under
`accelerate launch -m infimmr_core.grpo_phase RUN.json`. Every rank builds the same trainer; rank 0 alone syncs
checkpoints to the store, writes the final model and the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from infimmr_core.checkpoints import CheckpointSync
from infimmr_core.config import PhaseConfig, PromptConfig, Recipe, RewardConfig
from infimmr_core.data.images import decode_image
from infimmr_core.data.pool_io import read_pool
from infimmr_core.data.prompts import build_messages
from infimmr_core.data.schema import Sample
from infimmr_core.layout import METRICS_FILE, MODEL_DIR, TIMINGS_FILE
from infimmr_core.models import load_model, load_processor
from infimmr_core.resume import exact_resume
from infimmr_core.rewards import RewardPool, ScoreItem, format_reward
from infimmr_core.run_record import split_history
from infimmr_core.step_timing import PARTS, timed
from infimmr_core.store import store_from_config
from infimmr_core.weights import weights_digest



class PhaseRun(BaseModel):
    """Everything a training process needs, as JSON: it may be a grandchild on the same machine."""

    stage: str
    key: str
    number: int
    recipe: Recipe
    pool_path: Path
    init_dir: Path
    out_dir: Path  # rank 0 writes the artifact here
    trainer_dir: Path  # Trainer's output_dir: local checkpoints
    device: str
    resume_from: Path | None = None
    summary_path: Path
    # Rank 0 writes the run record here: what differs between two computations of one key (timings, TensorBoard).
    record_dir: Path | None = None

    @property
    def cfg(self) -> PhaseConfig:
        return self.recipe.phases[self.number]


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


def make_reward_funcs(cfg: RewardConfig, pool: RewardPool) -> list:
    """TRL reward callables; their names become the logged metric names (rewards/format/mean, ...)."""

    def format(completions, **_: Any) -> list[float]:  # noqa: A001 - the name is the metric name
        return [format_reward(_completion_text(c), mode=cfg.format_mode, answer_format=cfg.answer_format) for c in completions]

    def accuracy(completions, answer, answer_type, choices, **_: Any) -> list[float]:
        items = [
            ScoreItem(completion=_completion_text(c), gold=g, answer_type=t, choices=ch or None)
            for c, g, t, ch in zip(completions, answer, answer_type, choices)
        ]
        # Long-lived worker processes with a per-item timeout: one pathological answer never stalls training.
        return [b.accuracy for b in pool.score(items)]

    return [format, accuracy]


def reward_pool(cfg: RewardConfig) -> RewardPool:
    return RewardPool(workers=cfg.workers, timeout=cfg.timeout_seconds, mode=cfg.format_mode, answer_format=cfg.answer_format)


def grpo_args(cfg: PhaseConfig, rewards: RewardConfig, output_dir: Path, device: str):
    from trl import GRPOConfig

    scheduler_kwargs = {"min_lr_rate": cfg.min_lr_rate} if cfg.lr_scheduler_type == "cosine_with_min_lr" else {}
    evaluate = bool(cfg.eval_samples and cfg.eval_steps)
    return GRPOConfig(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        steps_per_generation=cfg.steps_per_generation,
        num_iterations=cfg.num_iterations,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        mask_truncated_completions=cfg.mask_truncated_completions,
        beta=cfg.beta,
        use_bias_correction_kl=cfg.use_bias_correction_kl,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        reward_weights=[rewards.format_weight, rewards.accuracy_weight],
        bf16=cfg.bf16 and device != "cpu",
        gradient_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.keep_last_checkpoints,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=cfg.eval_steps if evaluate else None,
        per_device_eval_batch_size=cfg.num_generations,  # one prompt's group per device per eval micro-batch
        report_to=cfg.report_to or "none",
        use_cpu=device == "cpu",
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.rollout_vllm_mode,
        vllm_server_base_url=cfg.vllm_server_base_url,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=cfg.vllm_tensor_parallel_size,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def vision_tower(model):
    """The vision encoder (+ merger) of a Qwen2.5-VL model, with or without the peft wrapper."""
    for path in ("model.visual", "visual", "base_model.model.model.visual"):
        try:
            return model.get_submodule(path)
        except AttributeError:
            continue
    raise ValueError(f"{type(model).__name__} has no vision tower to freeze")


def peft_config(cfg: PhaseConfig):
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules=cfg.lora.target_modules,
        exclude_modules=r".*visual.*",  # the vision MLP shares projection names with the language model's
        task_type="CAUSAL_LM",
    )


def _rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _callbacks(sync: CheckpointSync | None):
    from transformers import TrainerCallback

    class SyncCheckpoints(TrainerCallback):
        """Hands each checkpoint to the background sync once every rank has written its part of it."""

        def on_save(self, args, state, control, **_: Any):
            _barrier()
            if sync is not None:
                sync.submit(state.global_step, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    class Throughput(TrainerCallback):
        """Adds wall-clock throughput to every log entry: what TensorBoard/W&B receive and what checkpoints keep."""

        def on_train_begin(self, args, state, control, **_: Any):
            self.t, self.tokens = time.perf_counter(), state.num_input_tokens_seen

        def on_log(self, args, state, control, logs=None, **_: Any):
            if logs is None or "loss" not in logs:
                return
            now = time.perf_counter()
            extra = {"wall_seconds_since_log": round(now - self.t, 4)}
            if state.num_input_tokens_seen and now > self.t:
                extra["tokens_per_second"] = round((state.num_input_tokens_seen - self.tokens) / (now - self.t), 2)
            self.t, self.tokens = now, state.num_input_tokens_seen
            logs.update(extra)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(extra)

    return [Throughput(), SyncCheckpoints()]


def build_trainer(run: PhaseRun, pool: RewardPool, sync: CheckpointSync | None = None):
    from datasets import Dataset
    from trl import GRPOTrainer

    cfg, recipe = run.cfg, run.recipe
    pool_rows = phase_rows(read_pool(run.pool_path), cfg, recipe.prompts)
    eval_rows, train_rows = pool_rows[: cfg.eval_samples], pool_rows[cfg.eval_samples:]
    if not train_rows:
        raise RuntimeError(f"phase {run.number}: the curated {cfg.input} pool has no training rows")
    processor = load_processor(run.init_dir, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    bf16 = cfg.bf16 and run.device != "cpu"
    model = load_model(run.init_dir, device=run.device, dtype="bfloat16" if bf16 else "float32")
    if cfg.freeze_vision_tower:
        vision_tower(model).requires_grad_(False)
    # Trainer's own resume restores no weights (infimmr_core.resume); `timed` logs the step split and MFU.
    trainer = timed(exact_resume(GRPOTrainer))(
        model=model,
        reward_funcs=make_reward_funcs(recipe.rewards, pool),
        args=grpo_args(cfg, recipe.rewards, run.trainer_dir, run.device),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows and cfg.eval_steps else None,
        processing_class=processor,
        peft_config=peft_config(cfg),
    )
    for cb in reversed(_callbacks(sync)):
        # First in line, so the reporting callbacks (TensorBoard, W&B) already see the throughput fields.
        trainer.callback_handler.callbacks.insert(0, cb)
    return trainer, processor, len(train_rows)


def summarise(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [h for h in log_history if "reward" in h and "loss" in h]
    if not steps:
        return {"steps": 0}
    first, last = steps[0], steps[-1]
    speeds = [h["tokens_per_second"] for h in steps if "tokens_per_second" in h]
    timed_steps = [h for h in steps if "mfu" in h]
    return {
        "steps": int(last.get("step", len(steps))),
        "reward_start": first["reward"],
        "reward_end": last["reward"],
        "accuracy_start": first.get("rewards/accuracy/mean"),
        "accuracy_end": last.get("rewards/accuracy/mean"),
        "format_end": last.get("rewards/format/mean"),
        "tokens_per_second": round(sum(speeds) / len(speeds), 2) if speeds else None,
        # Means over the logged steps: where a step's time goes, and how much of the device training uses.
        "seconds_per_step": {
            part: round(sum(h[f"seconds/{part}"] for h in timed_steps) / len(timed_steps), 4)
            for part in (*PARTS, "other", "step")
        } if timed_steps else None,
        "mfu": round(sum(h["mfu"] for h in timed_steps) / len(timed_steps), 6) if timed_steps else None,
    }


def _save_final(trainer, processor, run: PhaseRun) -> None:
    model_out = run.out_dir / MODEL_DIR
    if run.cfg.lora is not None:
        # The artifact is a plain model either way: the next phase and evaluation load it without peft.
        if trainer.accelerator.is_main_process:
            trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(str(model_out))
    else:
        trainer.save_model(str(model_out))  # all ranks: ZeRO-3 / FSDP gather the full weights here
    if trainer.accelerator.is_main_process:
        # Trainer.save_model pickles its arguments (host paths, endpoints, operational settings) beside the weights:
        # loading a pickle runs code, and it would make the same key's content differ per machine.
        (model_out / "training_args.bin").unlink(missing_ok=True)
        processor.save_pretrained(str(model_out))
        if (run.init_dir / "generation_config.json").exists() and not (model_out / "generation_config.json").exists():
            shutil.copy2(run.init_dir / "generation_config.json", model_out / "generation_config.json")


def train(run: PhaseRun) -> dict[str, Any]:
    """Train one phase (resuming from `run.resume_from` when set); rank 0 writes the artifact and the summary."""
    cfg = run.cfg
    sync, tensorboard = None, None
    if _rank_zero():
        store = store_from_config(run.recipe.store)
        sync = CheckpointSync(store, run.stage, run.key, run.trainer_dir.parent / "sync", cfg.keep_last_checkpoints)
        # Event files hold the host name and wall times: they belong to the run record, not the artifact. The variable
        # is this run's only (an operator's own setting wins): left set, it would send the events of every later run in
        # this process, and of the processes it starts, into this run's record.
        if "TENSORBOARD_LOGGING_DIR" not in os.environ:
            record = run.record_dir or run.trainer_dir.parent / "record"
            tensorboard = os.environ["TENSORBOARD_LOGGING_DIR"] = str(record / "tensorboard")
    started = time.perf_counter()
    with reward_pool(run.recipe.rewards) as pool:
        try:
            trainer, processor, n_rows = build_trainer(run, pool, sync)
            # The weights the first step will update, as loaded (before any resume): the hand-off check of a phase.
            # With LoRA the model is wrapped in adapters, so there is no digest comparable with the previous artifact.
            start_weights = weights_digest(trainer.model) if _rank_zero() and cfg.lora is None else None
            trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
            _save_final(trainer, processor, run)
        finally:
            if sync is not None:
                sync.close()
            if tensorboard is not None:
                os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
    if not _rank_zero():
        return {}
    history = trainer.state.log_history
    content, timings = split_history(history)
    (run.out_dir / METRICS_FILE).write_text("".join(json.dumps(entry) + "\n" for entry in content))
    if run.record_dir is not None:
        run.record_dir.mkdir(parents=True, exist_ok=True)
        (run.record_dir / TIMINGS_FILE).write_text("".join(json.dumps(entry) + "\n" for entry in timings))
    summary = summarise(history) | {
        "phase": run.number, "input": cfg.input, "prompts": n_rows,
        "processes": trainer.accelerator.num_processes,
        "resumed_from_step": int(run.resume_from.name.split("-")[-1]) if run.resume_from else 0,
        "checkpoints_synced": sync.synced if sync else [],
        "start_weights": start_weights,
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    run.summary_path.write_text(json.dumps(summary))
    return summary


if __name__ == "__main__":
    train(PhaseRun.model_validate_json(Path(sys.argv[1]).read_text()))

"""The GPU check's measurements, one function per part, and the report they make together.

The GRPO part is the project's own phase code (`grpo_phase.build_trainer`: the recipe's phase 2, its rewards in
worker processes, the step split and MFU of `step_timing`), on a pool of synthetic image problems with captions
(phase-2 shaped), with a checkpoint written at the last step; the restore loads that checkpoint the way a resumed
phase does (`resume.load_checkpoint_weights`) and compares every tensor. The generation part is the transformers
backend that curation and evaluation use (`inference.TransformersGenerator`).
"""

from __future__ import annotations

import gc
import platform
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from infimmr_core.gpucheck import shapes

# Phase 2 of infimmr-3b, cut to a few steps; tiny: the same code at the smallest sizes that still exercise it.
PHASE = 2


@dataclass(frozen=True)
class Settings:
    model: str  # the report's model shape
    steps: int
    num_generations: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_completion_length: int
    image_side: int  # square images of this side (pixels), as the dataset would hand them to the processor
    min_pixels: int | None
    max_pixels: int | None  # None = the recipe's phase 2 value
    generation_batch: int
    generation_tokens: int


TINY = Settings("tiny", 3, 2, 2, 2, 8, 56, 28 * 28 * 4, 28 * 28 * 64, 4, 8)
FULL = Settings("qwen2.5-vl-3b", 3, 8, 8, 2, 256, 708, None, None, 32, 256)

# Every field of the report, in both modes (one code path builds it): section -> its keys.
FIELDS = {
    "check": None, "mode": None, "date": None,
    "machine": ("device", "device_name", "device_count", "memory_gib", "python", "torch", "cuda", "transformers", "trl",
                "accelerate", "peft"),
    "model": ("shape", "dtype", "build_seconds", "parameters"),
    "grpo": ("phase", "input", "steps", "completions_per_step", "num_generations", "max_completion_length",
             "max_pixels", "generation_backend", "seconds_per_step", "first_step_seconds", "tokens_per_second",
             "model_tflops_per_second", "mfu", "peak_tflops", "peak_source", "peak_memory_gib", "memory_kind",
             "reward_mean", "train_seconds"),
    "checkpoint": ("save_seconds", "restore_seconds", "size_gib", "exact"),
    "generation": ("backend", "batch_size", "max_new_tokens", "new_tokens", "seconds", "tokens_per_second"),
    "notes": None, "total_seconds": None,
}

NOTES = (
    "rollouts and the generation benchmark use the transformers backend: vLLM is too large to carry to an offline "
    "GPU machine",
    "random weights: completions run to max_completion_length and rewards stay near 0 (this measures speed, not "
    "learning)",
    "seconds_per_step, tokens_per_second and mfu average the steps after the first (its time includes allocation, "
    "kernel selection and the reward workers' start); first_step_seconds is that first step",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine(device: str) -> dict[str, Any]:
    cuda = device == "cuda"
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else _cpu_name(),
        "device_count": torch.cuda.device_count() if cuda else 1,
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        **{name: _version(name) for name in ("transformers", "trl", "accelerate", "peft")},
    }


def _sync(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _peak_memory_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def phase_samples(count: int, side: int):
    """Synthetic image problems at `side` x `side` pixels, each with its reference caption (phase 2 reads captions)."""
    from infimmr_core.data import synthetic
    from infimmr_core.data.images import decode_image, encode_image

    samples = []
    for sample in synthetic.image_problems(count, seed=0):
        image = decode_image(sample.images[0]).resize((side, side))
        caption = sample.metadata.get("reference_caption") or "A drawing of shapes and numbers."
        samples.append(sample.model_copy(update={"images": [encode_image(image)], "caption": caption}))
    return samples


def phase_run(settings: Settings, model_dir: Path, workdir: Path, device: str):
    from infimmr_core.data.pool_io import write_pool
    from infimmr_core.grpo_phase import PhaseRun
    from infimmr_core.recipes import load_recipe

    recipe = load_recipe("infimmr-3b")
    recipe.rewards.workers = 2
    recipe.store.uri = f"file://{workdir / 'store'}"
    cfg = recipe.phases[PHASE]
    updates = {
        "max_steps": settings.steps, "save_steps": settings.steps, "logging_steps": 1, "report_to": [],
        "prompts_per_step": None, "num_generations": settings.num_generations,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "max_completion_length": settings.max_completion_length, "bf16": device == "cuda",
        "min_pixels": settings.min_pixels, "max_pixels": settings.max_pixels or cfg.max_pixels,
    }
    recipe.phases.p2 = cfg.model_copy(update=updates)
    completions = settings.steps * settings.per_device_train_batch_size * settings.gradient_accumulation_steps
    pool = workdir / "pool.parquet"
    write_pool(phase_samples(2 * completions // settings.num_generations, settings.image_side), pool)
    return PhaseRun(
        stage=f"phase{PHASE}", key="gpu-check", number=PHASE, recipe=recipe, pool_path=pool, init_dir=model_dir,
        out_dir=workdir / "out", trainer_dir=workdir / "trainer", device=device, summary_path=workdir / "summary.json",
    )


def _save_timer():
    from transformers import TrainerCallback

    class SaveTimer(TrainerCallback):
        """Seconds from the end of a step to the end of its checkpoint (Trainer saves between the two callbacks)."""

        seconds: float | None = None

        def on_step_end(self, args, state, control, **_: Any):
            self.started = time.perf_counter()

        def on_save(self, args, state, control, **_: Any):
            self.seconds = time.perf_counter() - self.started

    return SaveTimer()


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def grpo(settings: Settings, model_dir: Path, workdir: Path, device: str) -> tuple[dict[str, Any], Any, Path, float]:
    """The phase-2-shaped GRPO run: its report, the trained model, the checkpoint and the checkpoint's save time."""
    from infimmr_core.grpo_phase import build_trainer, reward_pool
    from infimmr_core.step_timing import PARTS

    run = phase_run(settings, model_dir, workdir, device)
    cfg = run.cfg
    timer = _save_timer()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with reward_pool(run.recipe.rewards) as pool:
        trainer, _, _ = build_trainer(run, pool)
        trainer.add_callback(timer)
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
    logged = [h for h in trainer.state.log_history if "loss" in h]
    steady = logged[1:] or logged
    clock = trainer.step_clock
    report = {
        "phase": PHASE, "input": cfg.input, "steps": len(logged),
        "completions_per_step": cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps,
        "num_generations": cfg.num_generations, "max_completion_length": cfg.max_completion_length,
        "max_pixels": cfg.max_pixels, "generation_backend": "transformers",
        "seconds_per_step": {part: _mean([h[f"seconds/{part}"] for h in steady]) for part in (*PARTS, "other", "step")},
        "first_step_seconds": logged[0]["seconds/step"],
        "tokens_per_second": _mean([h["tokens_per_second"] for h in steady if "tokens_per_second" in h]),
        "model_tflops_per_second": _mean([h["model_tflops_per_second"] for h in steady]),
        "mfu": _mean([h["mfu"] for h in steady]),
        "peak_tflops": round(clock.peak / 1e12, 3),
        "peak_source": clock.peak_source,
        "peak_memory_gib": round(_peak_memory_gib(device), 2),
        "memory_kind": "torch.cuda.max_memory_allocated" if device == "cuda" else "process max RSS",
        "reward_mean": _mean([h["reward"] for h in logged]),
        "train_seconds": round(train_seconds, 3),
    }
    model = trainer.accelerator.unwrap_model(trainer.model)
    return report, model, run.trainer_dir / f"checkpoint-{len(logged)}", timer.seconds


def checkpoint_round_trip(trained, checkpoint: Path, model_dir: Path, device: str, save_seconds: float | None) -> dict:
    """Load the checkpoint into a fresh model as a resumed phase does, and compare every tensor with the trained one."""
    from infimmr_core.models import load_model
    from infimmr_core.resume import load_checkpoint_weights

    fresh = load_model(model_dir, device=device, dtype=str(trained.dtype).removeprefix("torch."))
    started = _sync(device)
    load_checkpoint_weights(fresh, checkpoint)
    restore_seconds = _sync(device) - started
    expected, restored = trained.state_dict(), fresh.state_dict()
    exact = expected.keys() == restored.keys() and all(torch.equal(expected[k], restored[k]) for k in expected)
    del fresh
    return {
        "save_seconds": round(save_seconds, 3) if save_seconds is not None else None,
        "restore_seconds": round(restore_seconds, 3),
        "size_gib": round(sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file()) / 2**30, 3),
        "exact": exact,
    }


def generation(settings: Settings, model_dir: Path, device: str, max_pixels: int | None) -> dict[str, Any]:
    """Batched sampling throughput of the transformers backend on the phase's image prompts."""
    from infimmr_core.data.prompts import build_messages
    from infimmr_core.data.images import decode_image
    from infimmr_core.inference import GenerationRequest, SamplingSpec, TransformersGenerator

    generator = TransformersGenerator(
        model_dir, device=device, batch_size=settings.generation_batch, min_pixels=settings.min_pixels,
        max_pixels=max_pixels,
    )
    requests = [
        GenerationRequest(messages=build_messages(s, "image"), images=[decode_image(b) for b in s.images])
        for s in phase_samples(settings.generation_batch, settings.image_side)
    ]
    sampling = SamplingSpec(n=1, temperature=1.0, max_new_tokens=settings.generation_tokens)
    inputs = generator._encode(requests)
    pad = generator.processor.tokenizer.pad_token_id
    with torch.inference_mode():
        generator.model.generate(**inputs, **generator._decoding_options(sampling) | {"max_new_tokens": 2})  # warm-up
        started = _sync(device)
        output = generator.model.generate(**inputs, **generator._decoding_options(sampling))
        seconds = _sync(device) - started
    new_tokens = int((output[:, inputs["input_ids"].shape[1]:] != pad).sum())
    return {
        "backend": "transformers", "batch_size": settings.generation_batch,
        "max_new_tokens": settings.generation_tokens, "new_tokens": new_tokens, "seconds": round(seconds, 3),
        "tokens_per_second": round(new_tokens / seconds, 2),
    }


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def run_check(tiny: bool, workdir: Path) -> dict[str, Any]:
    """Every measurement, as the JSON the check prints."""
    started = time.perf_counter()
    device = "cpu" if tiny else "cuda"
    if not tiny and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run the check with --tiny on CPU")
    settings = TINY if tiny else FULL
    report: dict[str, Any] = {
        "check": "infimmr-gpu-check", "mode": settings.model,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(device),
    }
    built = time.perf_counter()
    tiny_dir = shapes.tiny_model(workdir / "tiny")
    model_dir = tiny_dir if tiny else shapes.qwen3b_shaped_model(tiny_dir, workdir / "qwen3b", device)
    _free(device)
    report["model"] = {"shape": settings.model, "dtype": "float32" if tiny else "bfloat16",
                       "build_seconds": round(time.perf_counter() - built, 3)}
    report["grpo"], trained, checkpoint, save_seconds = grpo(settings, model_dir, workdir, device)
    report["model"]["parameters"] = sum(p.numel() for p in trained.parameters())
    report["checkpoint"] = checkpoint_round_trip(trained, checkpoint, model_dir, device, save_seconds)
    del trained
    _free(device)
    report["generation"] = generation(settings, model_dir, device, report["grpo"]["max_pixels"])
    report["notes"] = list(NOTES)
    report["total_seconds"] = round(time.perf_counter() - started, 3)
    print(f"[gpu-check] done in {report['total_seconds']} s", file=sys.stderr)
    return report

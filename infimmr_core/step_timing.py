"""Where a GRPO step goes, logged with every step: generation, reward, log-probabilities, forward + backward, optimizer,
and the model FLOPs utilisation of the training part.

TRL logs `step_time` (its training_step, generation included) and, to W&B/MLflow only, profiling timers; no split that
reaches metrics.jsonl or TensorBoard and no MFU. Here a subclass of the trainer times the methods TRL 1.16's
GRPOTrainer calls for each part, the times nest like the calls (training_step > _prepare_inputs > _generate,
_calculate_rewards), and the logged split subtracts the inner parts from the outer ones:

    generation       = _generate (tokenising prompts, rollouts, decoding)
    reward           = _calculate_rewards
    logprobs         = the rest of _prepare_inputs: old-policy / reference forwards, advantages, batching
    forward_backward = training_step minus _prepare_inputs
    optimizer        = end of the last backward to the optimizer step (gradient clipping included)
    other            = the step's wall time minus all of these (logging, callbacks, the dataloader)

Every figure is seconds per optimizer step, averaged over the logging interval (generation happens once per
`steps_per_generation` steps). On CUDA each boundary synchronises the device, so kernels are charged to the part that
launched them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from infimmr_core.flops import ModelShape, device_peak, model_shape, training_flops

PARTS = ("generation", "reward", "logprobs", "forward_backward", "optimizer")
RAW = ("generation", "reward", "prepare", "training_step", "optimizer")


def split(raw: dict[str, float]) -> dict[str, float]:
    """The logged parts from the nested raw timers (see the module docstring)."""
    return {
        "generation": raw["generation"],
        "reward": raw["reward"],
        "logprobs": max(raw["prepare"] - raw["generation"] - raw["reward"], 0.0),
        "forward_backward": max(raw["training_step"] - raw["prepare"], 0.0),
        "optimizer": raw["optimizer"],
    }


def step_metrics(raw: dict[str, float], flops: float, steps: int, wall: float, peak: float) -> dict[str, float]:
    """Per-optimizer-step seconds of each part, and the training part's achieved TFLOP/s and MFU."""
    parts = split(raw)
    metrics = {f"seconds/{name}": round(value / steps, 6) for name, value in parts.items()}
    metrics["seconds/other"] = round(max(wall - sum(parts.values()), 0.0) / steps, 6)
    metrics["seconds/step"] = round(wall / steps, 6)
    train_seconds = parts["forward_backward"] + parts["optimizer"]
    achieved = flops / train_seconds if train_seconds > 0 else 0.0
    metrics["model_tflops_per_second"] = round(achieved / 1e12, 6)
    metrics["mfu"] = round(achieved / peak, 6) if peak > 0 else 0.0
    return metrics


class StepClock:
    """Raw seconds per timer and model FLOPs trained, since the last report."""

    def __init__(self, device: torch.device, peak: float, peak_source: str):
        self.device, self.peak, self.peak_source = device, peak, peak_source
        self.shape: ModelShape | None = None
        self._reset()
        self.mark = time.perf_counter()
        self.backward_end: float | None = None

    def _reset(self) -> None:
        self.raw = dict.fromkeys(RAW, 0.0)
        self.flops = 0.0

    def sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        start = self.sync()
        try:
            yield
        finally:
            self.raw[name] += self.sync() - start

    def count(self, inputs: dict[str, Any]) -> None:
        """Add the model FLOPs of one training micro-batch (TRL's prepared inputs)."""
        if self.shape is None:
            return
        lengths = (inputs["prompt_mask"].sum(dim=1) + inputs["completion_mask"].sum(dim=1)).tolist()
        grid = inputs.get("image_grid_thw")
        patches = int(grid.prod(dim=-1).sum()) if grid is not None else 0
        self.flops += training_flops(self.shape, [int(n) for n in lengths], patches)

    def report(self, steps: int) -> dict[str, float]:
        now = self.sync()
        metrics = step_metrics(self.raw, self.flops, max(steps, 1), now - self.mark, self.peak)
        self._reset()
        self.mark = now
        return metrics


def timed(trainer_cls: type) -> type:
    """A subclass of TRL's GRPOTrainer (or a subclass of it) that logs the step split and MFU with every log."""
    from transformers import TrainerCallback

    class ReportSteps(TrainerCallback):
        def __init__(self, clock: StepClock):
            self.clock, self.logged_step = clock, 0

        def on_train_begin(self, args, state, control, **_: Any):
            self.clock.report(1)  # what came before training (model loading, vLLM start) is no step's time
            self.logged_step = state.global_step

        def on_optimizer_step(self, args, state, control, **_: Any):
            if self.clock.backward_end is not None:
                self.clock.raw["optimizer"] += self.clock.sync() - self.clock.backward_end
                self.clock.backward_end = None

        def on_log(self, args, state, control, logs=None, **_: Any):
            if logs is None or "loss" not in logs:  # eval and final-summary logs carry no training steps
                return
            extra = self.clock.report(state.global_step - self.logged_step)
            self.logged_step = state.global_step
            logs.update(extra)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(extra)

    class Timed(trainer_cls):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            device = self.accelerator.device
            dtype = torch.bfloat16 if self.args.bf16 else torch.float32
            self.step_clock = StepClock(device, *device_peak(device, dtype))
            self.step_clock.shape = model_shape(self.accelerator.unwrap_model(self.model))
            # First in line, so the reporting callbacks (TensorBoard, W&B) already see the split.
            self.callback_handler.callbacks.insert(0, ReportSteps(self.step_clock))

        def _timing(self, name: str):
            return self.step_clock.timing(name) if self.model.training else _untimed()

        def training_step(self, model, inputs, num_items_in_batch=None):
            # Always timed: only training calls it, and the model may still be in eval mode on entry (Trainer's
            # training_step calls model.train() itself).
            with self.step_clock.timing("training_step"):
                loss = super().training_step(model, inputs, num_items_in_batch)
            self.step_clock.backward_end = self.step_clock.sync()
            return loss

        def _prepare_inputs(self, generation_batch):
            with self._timing("prepare"):
                return super()._prepare_inputs(generation_batch)

        def _generate(self, prompts):
            with self._timing("generation"):
                return super()._generate(prompts)

        def _calculate_rewards(self, *args: Any, **kwargs: Any):
            with self._timing("reward"):
                return super()._calculate_rewards(*args, **kwargs)

        def compute_loss(self, model, inputs, *args: Any, **kwargs: Any):
            if self.model.training:
                self.step_clock.count(inputs)
            return super().compute_loss(model, inputs, *args, **kwargs)

    Timed.__name__ = Timed.__qualname__ = f"Timed{trainer_cls.__name__}"
    return Timed


@contextmanager
def _untimed() -> Iterator[None]:
    yield

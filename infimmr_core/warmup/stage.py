"""The `base` stage's run: load the recipe's base model, pre-warm its vision tower, then train every warm-up task on
worked solutions until its dev accuracy reaches the target (or the step budget ends), and store the model.

The artifact is `model/` (the curriculum's base model: phase 1 starts from it, curation rolls it out, evaluation
scores it as `base`) and `warmup.jsonl`, the curve of every check.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from infimmr_core.base_model import model_dir
from infimmr_core.config import Recipe, WarmupTask
from infimmr_core.context import StageContext
from infimmr_core.data.images import decode_image
from infimmr_core.data.prompts import build_messages
from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined, load_source
from infimmr_core.inference import GenerationRequest, SamplingSpec, TransformersGenerator
from infimmr_core.layout import MODEL_DIR, WARMUP_LOG
from infimmr_core.models import load_model, load_processor
from infimmr_core.rewards import accuracy_reward
from infimmr_core.supervised import assistant_loss, collate, encode_chat
from infimmr_core.warmup.schedule import (
    all_reached, distance_to_target, is_check_step, keeps, shares, shortfall, weights,
)
from infimmr_core.warmup.targets import training_chat
from infimmr_core.warmup.vision import prewarm_vision
from infimmr_core.weights import weights_digest

DEV_BATCH = 64


@dataclass
class TaskData:
    cfg: WarmupTask
    dev: list[Sample]
    train: list[Sample]

    def cycle(self, seed: int) -> Iterator[Sample]:
        """The training samples in a seeded order, reshuffled on every pass."""
        rng = random.Random(seed)
        for _ in itertools.count():
            order = list(self.train)
            rng.shuffle(order)
            yield from order


@dataclass
class Kept:
    """The checked model the stage will store (see `schedule.keeps`): the one that brought every task to the target,
    else the one closest to it."""

    step: int
    accuracy: dict[str, float]
    distance: float
    state: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model, step: int, accuracy: dict[str, float], target: float) -> "Kept":
        state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        return cls(step, dict(accuracy), distance_to_target(accuracy, target), state)


def load_task(task: WarmupTask, dev_samples: int) -> TaskData:
    samples = [s for s in load_source(task.source) if not isinstance(s, Quarantined)]
    if len(samples) <= dev_samples:
        raise ValueError(f"warm-up task {task.name!r}: {len(samples)} samples, not more than dev_samples = {dev_samples}")
    return TaskData(task, samples[:dev_samples], samples[dev_samples:])


def dev_accuracy(generator: TransformersGenerator, task: TaskData, recipe: Recipe, max_new_tokens: int) -> float:
    """Greedy accuracy on the task's dev items, judged by the training accuracy reward."""
    prompts = recipe.prompts
    requests = [
        GenerationRequest(build_messages(s, task.cfg.input, system_prompt=prompts.system_prompt,
                                         caption_template=prompts.caption_template),
                          [decode_image(b) for b in s.images] if task.cfg.input != "text" else [])
        for s in task.dev
    ]
    texts = generator.generate(requests, SamplingSpec(n=1, temperature=0.0, max_new_tokens=max_new_tokens))
    hits = [accuracy_reward(group[0], s.answer, s.answer_type, choices=s.choices or None,
                            answer_format=recipe.rewards.answer_format)[0] for s, group in zip(task.dev, texts)]
    return sum(hits) / len(hits)


class Encodings:
    """Each training sample's chat encoded once (`supervised.encode_chat`), however often the loop draws it."""

    def __init__(self, processor, recipe: Recipe):
        self.processor, self.recipe, self._encoded = processor, recipe, {}

    def of(self, sample: Sample, task: WarmupTask) -> dict[str, torch.Tensor]:
        key = (task.name, id(sample))  # the samples live in their TaskData for the whole loop
        if key not in self._encoded:
            chat = training_chat(sample, task.input, self.recipe.prompts, self.recipe.rewards.answer_format)
            images = [decode_image(b) for b in sample.images] if task.input != "text" else []
            self._encoded[key] = encode_chat(self.processor, chat, images)
        return self._encoded[key]


def _step_batch(tasks: dict[str, TaskData], orders: dict[str, Iterator[Sample]], counts: dict[str, int],
                encodings: Encodings) -> list[dict[str, torch.Tensor]]:
    return [encodings.of(next(orders[name]), tasks[name].cfg) for name, count in counts.items() for _ in range(count)]


def trained_parameters(model, keep_vision: bool) -> list[torch.nn.Parameter]:
    """What the supervised steps train: everything, or everything but the vision tower (`keep_vision`)."""
    kept = {id(p) for p in model.model.visual.parameters()} if keep_vision else set()
    return [p for p in model.parameters() if id(p) not in kept]


def warm_up(model, processor, tasks: dict[str, TaskData], recipe: Recipe, device: str, log,
            keep_vision: bool = False) -> dict[str, Any]:
    """The adaptive supervised loop (see `schedule`); returns each task's last dev accuracy."""
    cfg = recipe.warmup
    generator = TransformersGenerator.from_loaded(model, processor, device=device, batch_size=DEV_BATCH)
    orders = {name: task.cycle(cfg.seed + i) for i, (name, task) in enumerate(tasks.items())}
    encodings = Encodings(processor, recipe)
    optimizer = torch.optim.AdamW(trained_parameters(model, keep_vision), lr=cfg.learning_rate)
    # A kept tower needs no gradients either: the backward pass stops at its output (the same trained weights, bit
    # for bit, as computing the tower's gradients and never applying them).
    model.model.visual.requires_grad_(not keep_vision)
    accuracy = {name: 0.0 for name in tasks}
    kept = Kept.of(model, step=0, accuracy=accuracy, target=cfg.target_accuracy)
    step = 0
    while not all_reached(accuracy, cfg.target_accuracy) and step < cfg.max_steps:
        model.train()
        mix = weights(accuracy, cfg.target_accuracy, cfg.resting_weight)
        inputs, labels = collate(processor, _step_batch(tasks, orders, shares(mix, cfg.batch_size, step), encodings))
        loss = assistant_loss(model, {k: v.to(device) for k, v in inputs.items()}, labels.to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        if is_check_step(step, cfg.check_every, cfg.max_steps):
            model.eval()
            accuracy = {name: dev_accuracy(generator, task, recipe, cfg.max_new_tokens) for name, task in tasks.items()}
            log({"stage": "warmup", "step": step, "loss": round(loss.item(), 4), "weights": mix,
                 "dev_accuracy": {name: round(a, 4) for name, a in accuracy.items()}})
            if keeps(accuracy, cfg.target_accuracy, kept.distance):
                kept = Kept.of(model, step=step, accuracy=accuracy, target=cfg.target_accuracy)
    model.load_state_dict(kept.state)
    model.model.visual.requires_grad_(True)
    model.eval()
    log({"stage": "warmup", "kept_step": kept.step, "steps": step})
    return {"steps": step, "kept_step": kept.step,
            "dev_accuracy": {name: round(a, 4) for name, a in kept.accuracy.items()},
            "reached_target": all_reached(accuracy, cfg.target_accuracy)}


def run(ctx: StageContext) -> dict[str, Any]:
    recipe, cfg = ctx.recipe, ctx.recipe.warmup
    if cfg is None:
        raise ValueError("the base stage runs only for recipes with a `warmup` section")
    started = time.perf_counter()
    start = model_dir(recipe.base_model, ctx.cache_dir)
    processor = load_processor(start)
    model = load_model(start, device=ctx.device)
    tasks = {t.name: load_task(t, cfg.dev_samples) for t in cfg.tasks}
    ctx.log(f"warming up {start.name}: " + ", ".join(f"{n} ({len(t.train)} train, {len(t.dev)} dev, {t.cfg.input})"
                                                     for n, t in tasks.items()))
    with (ctx.out_dir / WARMUP_LOG).open("w") as fh:

        def log(entry: dict[str, Any]) -> None:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            ctx.log(json.dumps(entry))

        torch.manual_seed(cfg.seed)
        images = [s for t in tasks.values() if t.cfg.input != "text" for s in t.train]
        vision = prewarm_vision(model, processor, images, steps=cfg.vision_steps, learning_rate=cfg.vision_learning_rate,
                                batch_size=cfg.vision_batch_size, seed=cfg.seed, log=log)
        keep_vision = cfg.keep_prewarmed_vision and vision["vision_steps"] > 0
        result = warm_up(model, processor, tasks, recipe, ctx.device, log, keep_vision=keep_vision)
    if note := shortfall(result, cfg.target_accuracy):
        ctx.log(f"warning: {note}")
    model.save_pretrained(ctx.out_dir / MODEL_DIR)
    processor.save_pretrained(ctx.out_dir / MODEL_DIR)
    return {**result, **vision, "weights": weights_digest(model), "train_seconds": round(time.perf_counter() - started, 3)}

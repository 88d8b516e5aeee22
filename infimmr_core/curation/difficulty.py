"""Difficulty: how often the starting policy solves each sample, and the pass-rate band kept for training.

A sample every rollout solves (p = 1) or none does (p = 0) gives GRPO a zero advantage for the whole group, so by
default only 0 < p < 1 is kept. Rollouts are scored by the same reward code as training; alternatively a dataset's
own pass-rate column (ViRL39K ships two) stands in for rollouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from infimmr_core.config import DifficultyConfig, PromptConfig, RewardConfig
from infimmr_core.curation.shards import resumable
from infimmr_core.data.images import decode_image
from infimmr_core.data.prompts import build_messages
from infimmr_core.data.schema import Sample
from infimmr_core.inference import GenerationRequest, Generator, SamplingSpec
from infimmr_core.rewards import ScoreItem, score_batch


def pass_rates(
    samples: list[Sample], policy: Generator, cfg: DifficultyConfig, prompts: PromptConfig, rewards: RewardConfig, seed: int
) -> list[float]:
    """k rollouts per sample (text prompt for text samples, image + question for image samples, as phases 1 and 3
    see them), each judged correct when the training accuracy reward is 1."""
    requests = [
        GenerationRequest(
            build_messages(s, "image" if s.images else "text", system_prompt=prompts.system_prompt,
                           caption_template=prompts.caption_template),
            [decode_image(b) for b in s.images],
        )
        for s in samples
    ]
    gen = cfg.generation
    outputs = policy.generate(
        requests,
        SamplingSpec(n=cfg.rollouts, temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, seed=seed),
    )
    items = [
        ScoreItem(completion=text, gold=s.answer, answer_type=s.answer_type, choices=s.choices or None)
        for s, texts in zip(samples, outputs) for text in texts
    ]
    scores = score_batch(items, timeout=rewards.timeout_seconds, workers=rewards.workers, mode=rewards.format_mode,
                         answer_format=rewards.answer_format)
    k = cfg.rollouts
    return [sum(b.accuracy >= 1.0 for b in scores[i * k:(i + 1) * k]) / k for i in range(len(samples))]


def column_pass_rate(sample: Sample, column: str) -> float | None:
    """The dataset's own pass rate, or None when the row has none (ViRL39K writes -1 for 'not annotated')."""
    value: Any = sample.pass_rate if column == "pass_rate" else sample.metadata.get(column)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return None
    return float(value)


def rollout_shards(
    shard_paths: list[Path],
    state_dir: Path,
    cfg: DifficultyConfig,
    open_policy: Callable[[], Generator],
    prompts: PromptConfig,
    rewards: RewardConfig,
    *,
    seed: int,
    select: Callable[[Sample], bool] = lambda s: True,
    log: Callable[[str], None] = print,
) -> int:
    """Measure pass rates shard by shard (resumable); the policy loads only if a shard needs it."""
    policy: list[Generator] = []

    def compute(samples: list[Sample]) -> dict[str, float]:
        if not policy:
            policy.append(open_policy())
        return dict(zip((s.id for s in samples), pass_rates(samples, policy[0], cfg, prompts, rewards, seed)))

    return resumable(shard_paths, state_dir, compute, select=select, log=log, step="rollouts")

"""Format and accuracy together: one completion's breakdown, and the registry recipes name their rewards from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from infimmr_core.answers.extract import AnswerFormat
from infimmr_core.rewards.accuracy import DEFAULT_TIMEOUT, accuracy_reward
from infimmr_core.rewards.format import FormatMode, format_reward


class RewardBreakdown(BaseModel):
    """Result of scoring one completion. ``reason`` is "" when the answer is correct."""

    model_config = ConfigDict(frozen=True)

    format: float
    accuracy: float
    total: float
    reason: str


def breakdown(fmt: float, acc: float, reason: str, format_weight: float, accuracy_weight: float) -> RewardBreakdown:
    return RewardBreakdown(format=fmt, accuracy=acc, total=format_weight * fmt + accuracy_weight * acc, reason=reason)


def score(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    *,
    choices: list[str] | None = None,
    format_weight: float = 0.5,
    accuracy_weight: float = 1.0,
    mode: FormatMode = "lenient",
    answer_format: AnswerFormat = "answer_tag_boxed",
    timeout: float | None = DEFAULT_TIMEOUT,
) -> RewardBreakdown:
    """Format and accuracy of one completion; ``total = format_weight*format + accuracy_weight*accuracy``."""
    fmt = format_reward(completion, mode=mode, answer_format=answer_format)
    acc, reason = accuracy_reward(
        completion, gold, answer_type, choices=choices, answer_format=answer_format, timeout=timeout
    )
    return breakdown(fmt, acc, reason, format_weight, accuracy_weight)


def _format_fn(
    completion: str,
    gold: str | None = None,
    answer_type: str | None = None,
    choices: list[str] | None = None,
    *,
    mode: FormatMode = "lenient",
    answer_format: AnswerFormat = "answer_tag_boxed",
) -> float:
    return format_reward(completion, mode=mode, answer_format=answer_format)


def _accuracy_fn(
    completion: str, gold: str, answer_type: str | None = None, choices: list[str] | None = None, **cfg: Any
) -> float:
    return accuracy_reward(completion, gold, answer_type, choices=choices, **cfg)[0]


def _total_fn(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    choices: list[str] | None = None,
    **cfg: Any,
) -> float:
    return score(completion, gold, answer_type, choices=choices, **cfg).total


# Unweighted "format" and "accuracy" (the trainer applies reward weights, e.g. 0.5 and 1.0);
# "total" is the pre-weighted sum for trainers that take a single reward.
REWARD_FUNCS: dict[str, Callable[..., float]] = {
    "format": _format_fn,
    "accuracy": _accuracy_fn,
    "total": _total_fn,
}

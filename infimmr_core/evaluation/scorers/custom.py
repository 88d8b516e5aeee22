"""Canonical sets (synthetic, held-out JSONL): scored exactly like the training accuracy reward."""

from __future__ import annotations

from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer
from infimmr_core.rewards import accuracy_reward, extract_answer


def compare(item: EvalItem, answer: str) -> bool:
    # The reward's comparator on the extracted answer (re-boxed, so extraction is the identity).
    accuracy, _ = accuracy_reward(
        f"\\boxed{{{answer}}}", item.gold, item.answer_type, choices=list(item.choices) or None, answer_format="boxed",
    )
    return accuracy == 1.0


SCORER = Scorer(
    "custom", "infimmr training accuracy reward (rewards.accuracy_reward, answer_tag_boxed extraction)", compare,
    extract=extract_answer, judge_mode="verdict",
)

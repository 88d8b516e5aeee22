"""Canonical sets (synthetic, held-out JSONL): no official scorer exists, so both verdicts are the training accuracy
reward's comparison (by the row's answer type) on the final answer."""

from __future__ import annotations

from infimmr_core.answers.compare import compare
from infimmr_core.answers.extract import extract_answer
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import NO_ANSWER, Scorer, Verdict, from_compare


def verdict(item: EvalItem, response: str) -> Verdict:
    answer = extract_answer(response, "answer_tag_boxed")
    if answer is None:
        return NO_ANSWER
    return from_compare(answer, compare(answer, item.gold, item.answer_type, list(item.choices) or None))


SCORER = Scorer(
    "custom", "infimmr training accuracy reward (no official scorer for this set)",
    "infimmr training accuracy reward (answers.compare by answer type)", verdict, verdict, judge_mode="verdict",
)

"""MATH-Vision: official = `answers.official.mathvision` (`evaluate()`'s extraction from the whole response, then
`is_equal` against the gold letter or the gold option's raw text); semantic = the option chosen (letter or text), or
the free-form answer by equivalence."""

from __future__ import annotations

from infimmr_core.answers.official import mathvision as official_mathvision
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer, Verdict, from_official, semantic_compare


def official(item: EvalItem, response: str) -> Verdict:
    result = official_mathvision.verdict(response, item.gold, item.choices)
    return from_official(result.correct, result.compared)


def semantic(item: EvalItem, response: str) -> Verdict:
    if item.multiple_choice and item.choices:
        return semantic_compare(response, item.gold, "multiple_choice", item.choices)
    return semantic_compare(response, item.gold)


SCORER = Scorer(
    "mathvision",
    "MATH-Vision official (evaluation/evaluate.py + utils.is_equal @ a1f5cc3): its own answer extraction, then "
    "case-insensitive string, tuple or value-to-2-decimals equality with the gold letter or the gold option's text",
    "semantic: option by letter or text; free-form answers by equivalence (numbers, math-verify)",
    official, semantic, judge_mode="verdict",
)

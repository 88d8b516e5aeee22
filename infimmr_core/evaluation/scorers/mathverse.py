"""MathVerse: multiple-choice problems are right only when the option letter matches (an answer written as the
option's text is mapped to its letter); free-form problems by equivalence (exact, numeric, or math-verify). The
official protocol asks an LLM to extract and judge; this is its rule counterpart, reported beside the judged score."""

from __future__ import annotations

from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer
from infimmr_core.evaluation.scorers.common import latex_equivalent, letter_of, normalise_text, to_number


def _letter(item: EvalItem, answer: str) -> str | None:
    letter = letter_of(answer)
    if letter is not None:
        return letter
    wanted = normalise_text(answer)
    for index, choice in enumerate(item.choices):
        if normalise_text(choice) == wanted:
            return chr(ord("A") + index)
    return None


def free_form_equal(gold: str, answer: str) -> bool:
    if normalise_text(gold) == normalise_text(answer):
        return True
    g, a = to_number(gold), to_number(answer)
    if g is not None and a is not None:
        return abs(g - a) <= 1e-6 * max(1.0, abs(g))
    return latex_equivalent(gold, answer)


def compare(item: EvalItem, answer: str) -> bool:
    if item.multiple_choice:
        return _letter(item, answer) == item.gold.strip().upper()
    return free_form_equal(item.gold, answer)


SCORER = Scorer(
    "mathverse", "MathVerse rule: option letter for multi-choice, equivalence (exact/numeric/math-verify) for "
    "free-form; headline = mean over the five vision versions", compare, judge_mode="verdict",
)

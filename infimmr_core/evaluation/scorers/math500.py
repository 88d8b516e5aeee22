"""MATH-500: the last boxed answer against the gold with HF math-verify (the community standard; no judge)."""

from __future__ import annotations

from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer
from infimmr_core.evaluation.scorers.common import latex_equivalent, normalise_text


def compare(item: EvalItem, answer: str) -> bool:
    return normalise_text(item.gold) == normalise_text(answer) or latex_equivalent(item.gold, answer)


SCORER = Scorer("math500", "math-verify equivalence of the final boxed answer", compare, judge_mode="verdict")

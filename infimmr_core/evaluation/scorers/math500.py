"""MATH-500: official = PRM800K's ``grade_answer`` on the last boxed answer (`answers.official.prm800k`); semantic =
math-verify equivalence through the answer library (numbers in other bases and mixed numbers read as such)."""

from __future__ import annotations

from infimmr_core.answers.extract import extract_final
from infimmr_core.answers.official import prm800k
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer, Verdict, from_official, semantic_compare


def official(item: EvalItem, response: str) -> Verdict:
    answer = extract_final(response)
    return from_official(prm800k.grade_answer(answer, item.gold), answer)


def semantic(item: EvalItem, response: str) -> Verdict:
    return semantic_compare(response, item.gold)


SCORER = Scorer(
    "math500",
    "MATH-500 official: PRM800K grader.grade_answer (@ 7ecc794) on the final boxed answer: MATH normalisation, then "
    "its own normalisation and sympy simplification (unreduced fractions and non-integers for integer golds fail)",
    "semantic: math-verify equivalence of the final answer (bases like 101_2 and mixed numbers read as numbers)",
    official, semantic, judge_mode="verdict",
)

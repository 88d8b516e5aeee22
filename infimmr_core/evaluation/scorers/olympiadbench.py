"""OlympiadBench: official = `answers.official.olympiadbench` (judge.py's extraction, then MathJudger with the model
answer first and the row's error as precision); semantic = every boxed part of the final answer matched without order
to the gold's comma-separated parts, numbers within the row's error, anything else by equivalence (math-verify:
expressions, equations as equations, intervals, ``x \\in [a, b]``), units aside."""

from __future__ import annotations

from infimmr_core.answers.compare import compare
from infimmr_core.answers.extract import final_boxes
from infimmr_core.answers.latex import split_top_level, strip_math_delims
from infimmr_core.answers.numbers import parse_number
from infimmr_core.answers.official import olympiadbench as official_olympiad
from infimmr_core.evaluation.benchmarks import DEFAULT_OLYMPIAD_TOLERANCE
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import NO_ANSWER, Scorer, Verdict, from_official


def _precision(item: EvalItem) -> float | list[float]:
    if (item.answer_type and "Tuple" in item.answer_type) or not item.tolerances:
        return official_olympiad.DEFAULT_PRECISION
    return list(item.tolerances) if len(item.tolerances) > 1 else item.tolerances[0]


def official(item: EvalItem, response: str) -> Verdict:
    result = official_olympiad.verdict(
        response, item.gold, precision=_precision(item), chinese="_zh_" in item.group)
    return from_official(result.correct, result.compared, result.quirk)


def _parts(text: str) -> list[str]:
    parts = []
    for part in split_top_level(strip_math_delims(text)):
        part = strip_math_delims(part)
        parts += [part.replace("\\pm", "+", 1), part.replace("\\pm", "-", 1)] if "\\pm" in part else [part]
    return parts


def _tolerance(item: EvalItem, index: int) -> float:
    if len(item.tolerances) == 1:
        return item.tolerances[0]
    return item.tolerances[index] if index < len(item.tolerances) else DEFAULT_OLYMPIAD_TOLERANCE


def _part_equal(answer: str, gold: str, tolerance: float) -> bool:
    a, g = parse_number(answer), parse_number(gold)
    if a is not None and g is not None and not a.percent and not g.percent:
        return abs(float(a.value) - float(g.value)) <= tolerance
    return compare(answer, gold)[0] == 1.0


def semantic(item: EvalItem, response: str) -> Verdict:
    boxes = final_boxes(response)
    if not boxes:
        return NO_ANSWER
    answer = ", ".join(boxes)
    golds, answers = _parts(item.gold), [p for box in boxes for p in _parts(box)]
    if not golds or len(golds) != len(answers):
        return Verdict(False, answer, "mismatch")
    unused = list(answers)
    for index, gold in enumerate(golds):
        match = next((a for a in unused if _part_equal(a, gold, _tolerance(item, index))), None)
        if match is None:
            return Verdict(False, answer, "mismatch")
        unused.remove(match)
    return Verdict(True, answer)


SCORER = Scorer(
    "olympiadbench",
    "OlympiadBench official (inference/judge.py + code/math_judger.py @ ba5b26a): text after the last 'So the final "
    "answer is', every \\boxed{}, MathJudger.judge(model_answer, gold, error): unordered parts, intervals, numbers "
    "within the error (x/100, x*100 of the answer too), sympy expression or equation equality",
    "semantic: every boxed part matched without order; numbers within the row's error; expressions, equations and "
    "intervals by math-verify; units aside",
    official, semantic, judge_mode="verdict",
)

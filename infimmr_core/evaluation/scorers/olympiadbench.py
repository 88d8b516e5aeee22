"""OlympiadBench (official `math_judger.py`): the answer is every \\boxed{} after the reasoning, comma-joined; both
sides are split on top-level commas (\\pm gives two answers) and matched without order; a pair is equal when the
strings match, the intervals match, the numbers are within the row's absolute `error` (x, x/100 and x*100 of the
gold accepted, tolerance * 1.01), or the expressions/equations are equivalent. Units are not part of the answer."""

from __future__ import annotations

import re

from infimmr_core.evaluation.benchmarks import DEFAULT_OLYMPIAD_TOLERANCE
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer
from infimmr_core.evaluation.scorers.common import latex_equivalent, split_top_level, strip_delims, to_number
from infimmr_core.rewards import ANSWER_BLOCK_RE, boxed_contents

_FINAL_RE = re.compile(r"(?:So the final answer is|所以最终答案是)", re.IGNORECASE)
_DROP = ("^\\circ", "^{\\circ}", "\\%", "%", "\\,", "\\;", "\\!", "\\quad")


def extract(response: str) -> str | None:
    """Every box in the answer block (else after the last "So the final answer is", else anywhere), comma-joined."""
    blocks = ANSWER_BLOCK_RE.findall(response)
    region = blocks[-1] if blocks else _FINAL_RE.split(response)[-1]
    boxes = [content.strip() for _, _, content in boxed_contents(region)] or [
        content.strip() for _, _, content in boxed_contents(response)][-1:]
    if boxes and any(boxes):
        return ", ".join(b for b in boxes if b)
    return region.strip() if blocks and region.strip() else None


def _clean(text: str, unit: str | None) -> str:
    s = strip_delims(text).replace("\\approx", "=")
    for token in _DROP:
        s = s.replace(token, "")
    if unit:
        s = s.replace(strip_delims(unit), "")
    return s.strip().rstrip(".").strip()


def _answers(text: str, unit: str | None) -> list[str]:
    parts = []
    for part in split_top_level(_clean(text, unit)):
        if "\\pm" in part:  # a \pm b -> a+b, a-b
            parts += [part.replace("\\pm", "+", 1), part.replace("\\pm", "-", 1)]
        else:
            parts.append(part)
    return parts


_INTERVAL_RE = re.compile(r"^[\[(].*,.*[\])]$")


def _interval_equal(gold: str, answer: str, tolerance: float) -> bool:
    g_pieces, a_pieces = gold.split("\\cup"), answer.split("\\cup")
    if len(g_pieces) != len(a_pieces):
        return False
    for g, a in zip(g_pieces, a_pieces):
        g, a = g.strip(), a.strip()
        if not (_INTERVAL_RE.match(g) and _INTERVAL_RE.match(a)) or g[0] != a[0] or g[-1] != a[-1]:
            return False
        g_ends, a_ends = split_top_level(g[1:-1]), split_top_level(a[1:-1])
        if len(g_ends) != 2 or len(a_ends) != 2:
            return False
        if not all(single_equal(x, y, tolerance) for x, y in zip(g_ends, a_ends)):
            return False
    return True


def _numbers_equal(gold: str, answer: str, tolerance: float) -> bool | None:
    g, a = to_number(gold), to_number(answer)
    if g is None or a is None:
        return None
    return any(abs(candidate - a) <= tolerance * 1.01 for candidate in (g, g / 100, g * 100))


def single_equal(gold: str, answer: str, tolerance: float) -> bool:
    if gold.replace(" ", "") == answer.replace(" ", ""):
        return True
    if "\\cup" in gold or ("," in gold and _INTERVAL_RE.match(gold)):
        return _interval_equal(gold, answer, tolerance)
    numeric = _numbers_equal(gold, answer, tolerance)
    if numeric is not None:
        return numeric
    if "=" in answer and "=" not in gold:  # "x = 5" against "5"
        answer = answer.rsplit("=", 1)[-1]
    return latex_equivalent(gold, answer)


def _tolerance(item: EvalItem, index: int) -> float:
    if len(item.tolerances) == 1:
        return item.tolerances[0]
    return item.tolerances[index] if index < len(item.tolerances) else DEFAULT_OLYMPIAD_TOLERANCE


def compare(item: EvalItem, answer: str) -> bool:
    golds, answers = _answers(item.gold, item.unit), _answers(answer, item.unit)
    if not golds or len(golds) != len(answers):
        return False
    unused = list(answers)
    for index, gold in enumerate(golds):
        match = next((a for a in unused if single_equal(gold, a, _tolerance(item, index))), None)
        if match is None:
            return False
        unused.remove(match)
    return True


SCORER = Scorer(
    "olympiadbench", "OlympiadBench official math_judger: boxed answers, unordered multi-answer match, intervals, "
    "numeric within the row's error (default 1e-8), sympy/math-verify equivalence; units dropped",
    compare, extract=extract, judge_mode="verdict",
)

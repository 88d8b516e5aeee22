"""MATH-Vision (official `evaluation/utils.py`): correct when the answer equals the gold letter or the gold option's
text under `is_equal` (case-insensitive exact match, tuples element-wise, else LaTeX values equal to 2 decimals)."""

from __future__ import annotations

from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer
from infimmr_core.evaluation.scorers.common import letter_index, letter_of, latex_value, split_top_level, strip_delims

_STRIP = ("^\\circ", "^{\\circ}", "°", "\\%", "%", "\\,", "\\;", "\\ ")


def find_math_answer(answer: str) -> str:
    """The official clean-up: delimiters, degrees, percent, units after \\text{ } and the left side of "=" go."""
    s = strip_delims(answer)
    for token in _STRIP:
        s = s.replace(token, "")
    return s.rsplit("=", 1)[-1].strip()


def _values(text: str) -> list[float] | None:
    """Values of a tuple/list "(1, 2.5)" or of a single expression, rounded to 2 decimals as the official code does."""
    inner = text[1:-1] if text[:1] in "([" and text[-1:] in ")]" and "," in text else text
    values = [latex_value(part) for part in split_top_level(inner)]
    if not values or any(v is None or abs(v.imag) > 1e-9 for v in values):
        return None
    return [round(v.real, 2) for v in values]


def is_equal(answer: str, gold: str) -> bool:
    a, g = answer.lower().strip(), gold.lower().strip()
    if not a or not g:
        return False
    if a == g:
        return True
    a_values, g_values = _values(a), _values(g)
    return a_values is not None and a_values == g_values


def compare(item: EvalItem, answer: str) -> bool:
    gold = find_math_answer(item.gold)
    if item.multiple_choice:
        letter = letter_of(answer)
        if letter is not None:
            return letter == gold.upper()
        index = letter_index(gold.upper()) if len(gold) == 1 else -1
        option = item.choices[index] if 0 <= index < len(item.choices) else ""
        return bool(option) and is_equal(find_math_answer(answer), find_math_answer(option))
    return is_equal(find_math_answer(answer), gold)


SCORER = Scorer(
    "mathvision", "MATH-Vision official is_equal (evaluation/utils.py): letter or option text; exact, tuple, or "
    "LaTeX value equal to 2 dp", compare, judge_mode="verdict",
)

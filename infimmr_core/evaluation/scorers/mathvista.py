"""MathVista (official `calculate_score.py` normalisation): a multiple-choice answer becomes the option text (a letter
maps to its option; otherwise the option nearest by edit distance); integers are compared as `str(int(x))`, floats as
`str(round(x, precision))`, lists element-wise; the unit is dropped; then exact equality with the gold string."""

from __future__ import annotations

import re

from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer
from infimmr_core.evaluation.scorers.common import (
    letter_index, letter_of, levenshtein, normalise_text, split_top_level, strip_delims, to_number,
)

_PAREN_LETTER_RE = re.compile(r"\(([a-zA-Z])\)")


def _choice(item: EvalItem, extraction: str) -> str:
    found = _PAREN_LETTER_RE.findall(extraction)
    letter = found[0].upper() if found else letter_of(extraction)
    if letter is not None and letter_index(letter) < len(item.choices):
        return item.choices[letter_index(letter)]
    wanted = normalise_text(extraction)
    for choice in item.choices:
        if normalise_text(choice) == wanted:
            return choice
    return min(item.choices, key=lambda c: levenshtein(wanted, normalise_text(c)))


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _as_list(text: str) -> str | None:
    inner = strip_delims(text).strip()
    if inner[:1] in "[(" and inner[-1:] in "])":
        inner = inner[1:-1]
    values = [to_number(part) for part in split_top_level(inner)]
    return None if not values or None in values else "[" + ", ".join(_number_text(v) for v in values) + "]"


def normalise(item: EvalItem, extraction: str) -> str | None:
    """The extraction in the gold's form, or None when it cannot be read as one."""
    if item.multiple_choice and item.choices:
        return _choice(item, extraction)
    if item.answer_type == "list":
        return _as_list(extraction)
    value = to_number(extraction, item.unit)
    if item.answer_type == "integer":
        return None if value is None else str(int(value))
    if item.answer_type == "float":
        return None if value is None else str(round(value, item.precision or 0))
    return strip_delims(extraction)


def compare(item: EvalItem, answer: str) -> bool:
    normalised = normalise(item, answer)
    gold = _as_list(item.gold) if item.answer_type == "list" else item.gold
    return normalised is not None and normalised == gold


SCORER = Scorer(
    "mathvista", "MathVista official normalisation (calculate_score.py): letter->option text, nearest option, "
    "int/float-with-precision/list, unit dropped; exact match", compare, judge_mode="extract",
)

"""MathVista: official = `answers.official.mathvista` (normalise the extraction to the gold's form, then compare
strings); semantic = the option chosen (letter or text), or the number (units aside; a float answer at the question's
precision), or the list element by element."""

from __future__ import annotations

from infimmr_core.answers.compare import compare
from infimmr_core.answers.extract import extract_final
from infimmr_core.answers.latex import split_top_level, strip_math_delims
from infimmr_core.answers.numbers import parse_number
from infimmr_core.answers.official import mathvista as official_mathvista
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import NO_ANSWER, Scorer, Verdict, from_compare, from_official, semantic_compare


def _question_type(item: EvalItem) -> str:
    return "multi_choice" if item.multiple_choice else "free_form"


def official_compare(item: EvalItem, extraction: str) -> bool:
    return official_mathvista.verdict(
        extraction, item.gold, choices=item.choices, question_type=_question_type(item),
        answer_type=item.answer_type, precision=item.precision,
    ).correct


def official(item: EvalItem, response: str) -> Verdict:
    extraction = official_mathvista.extract(
        response, choices=item.choices, question_type=_question_type(item), answer_type=item.answer_type)
    result = official_mathvista.verdict(
        extraction, item.gold, choices=item.choices, question_type=_question_type(item),
        answer_type=item.answer_type, precision=item.precision,
    )
    return from_official(result.correct, extraction, result.quirk)


def _list_equal(answer: str, gold: str) -> bool:
    def elements(text: str) -> list[str]:
        inner = strip_math_delims(text)
        if inner[:1] in "[(" and inner[-1:] in "])":
            inner = inner[1:-1]
        return split_top_level(inner)

    a, g = elements(answer), elements(gold)
    return len(a) == len(g) and all(compare(x, y, "numeric")[0] == 1.0 for x, y in zip(a, g))


def _at_precision(answer: str, gold: str, precision: int | None) -> bool:
    """A float answer given to more places than asked, equal to the gold at the question's precision."""
    number, target = parse_number(answer), parse_number(gold)
    if number is None or target is None or precision is None or number.percent:
        return False
    return round(float(number.value), precision) == float(target.value)


def semantic(item: EvalItem, response: str) -> Verdict:
    if item.multiple_choice and item.choices:
        return semantic_compare(response, item.gold, "multiple_choice", item.choices)
    answer = extract_final(response)
    if answer is None:
        return NO_ANSWER
    if item.answer_type == "list":
        ok = _list_equal(answer, item.gold)
        return Verdict(ok, answer, "" if ok else "mismatch")
    if item.answer_type == "float" and _at_precision(answer, item.gold, item.precision):
        return Verdict(True, answer)
    kind = "numeric" if item.answer_type in ("integer", "float") else None
    return from_compare(answer, compare(answer, item.gold, kind))


SCORER = Scorer(
    "mathvista",
    "MathVista official (calculate_score.py @ 53d5258): extraction normalised to the gold's form (letter -> option, "
    "else nearest option by raw edit distance; int(float(x)); round(float(x), precision); str(list)), then string "
    "equality; rule extraction stands in for the official LLM extraction",
    "semantic: option by letter or text; numbers equal with units and thousands separators allowed; floats at the "
    "question's precision; lists element by element",
    official, semantic, official_compare=official_compare, judge_mode="extract",
)

"""Answer typing for curated gold answers: how the training reward will have to verify each one.

Types: multiple_choice (an option letter), numeric (a number, maybe with %, degrees or thousands separators),
expression (LaTeX or algebra math-verify can compare), text (a short word answer), unverifiable (proofs, essays,
anything no rule can check).
"""

from __future__ import annotations

import re

from infimmr_core.answers.extract import boxed_contents
from infimmr_core.answers.latex import strip_math_delims
from infimmr_core.answers.numbers import is_plain_number
from infimmr_core.data.schema import AnswerType

_GOLD_LETTER = re.compile(r"\(?([A-Z])\)?[.:)]?")
_OPTIONS_IN_TEXT = re.compile(r"(^|\n|\s)\(?[A-D][.):]\s*\S", re.MULTILINE)
_PROOF_ANSWER = re.compile(r"\b(proof|proven|q\.?e\.?d\.?)\b|\\blacksquare|\\square\s*$", re.IGNORECASE)
_PROOF_PROBLEM = re.compile(r"^\s*(prove|show that|demonstrate that|证明)", re.IGNORECASE)
_MATH_MARKS = re.compile(r"[\\^_=+*/<>{}|()\[\]\d]")
# Longer than this many words and free of mathematics: an explanation, not an answer.
MAX_TEXT_WORDS = 6


def unwrap_answer(answer: str) -> str:
    """Strip presentation around a whole gold answer: math delimiters and a \\boxed{} around all of it."""
    text = answer.strip()
    while True:
        before = text
        text = strip_math_delims(text)
        boxes = boxed_contents(text)
        if len(boxes) == 1 and boxes[0][0] == 0 and boxes[0][1] == len(text):
            text = boxes[0][2].strip()
        if text == before:
            return text


def classify_answer(problem: str, answer: str, choices: list[str]) -> AnswerType:
    """The answer type of an unwrapped gold answer (see the module docstring)."""
    text = answer.strip()
    if _PROOF_ANSWER.search(text) or (_PROOF_PROBLEM.match(problem) and not is_plain_number(text)):
        return "unverifiable"
    if _GOLD_LETTER.fullmatch(text) and (choices or _OPTIONS_IN_TEXT.search(problem)):
        return "multiple_choice"
    if is_plain_number(text):
        return "numeric"
    if _MATH_MARKS.search(text):
        return "expression"
    words = text.split()
    if 0 < len(words) <= MAX_TEXT_WORDS:
        # A lone letter without options is a variable or constant ("x", "e"): mathematics.
        return "expression" if len(text) == 1 else "text"
    return "unverifiable"

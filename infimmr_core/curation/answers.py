"""Answer normalisation and typing: how the training reward will have to verify each gold answer.

Types: multiple_choice (an option letter), numeric (a number, maybe with %, degrees or thousands separators),
expression (LaTeX or algebra math-verify can compare), text (a short word answer), unverifiable (proofs, essays,
anything no rule can check). Unverifiable answers are filtered: a reward that cannot say right from wrong teaches noise.
"""

from __future__ import annotations

import re

from infimmr_core.data.schema import AnswerType

_BOXED = re.compile(r"\\boxed\s*\{(.*)\}", re.DOTALL)
_LETTER = re.compile(r"\(?([A-Z])\)?[.:)]?")
_NUMBER = re.compile(r"[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?\s*(%|\\%|°|\^\s*\{?\\circ\}?|\\circ)?")
_OPTIONS_IN_TEXT = re.compile(r"(^|\n|\s)\(?[A-D][.):]\s*\S", re.MULTILINE)
_PROOF_ANSWER = re.compile(r"\b(proof|proven|q\.?e\.?d\.?)\b|\\blacksquare|\\square\s*$", re.IGNORECASE)
_PROOF_PROBLEM = re.compile(r"^\s*(prove|show that|demonstrate that|证明)", re.IGNORECASE)
_MATH_MARKS = re.compile(r"[\\^_=+*/<>{}|()\[\]\d]")
# Longer than this many words and free of mathematics: an explanation, not an answer.
MAX_TEXT_WORDS = 6


def normalise_answer(answer: str) -> str:
    """Strip presentation: surrounding $...$, a \\boxed{} around the whole answer, outer whitespace."""
    text = answer.strip()
    while True:
        before = text
        if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
            text = text.strip("$").strip()
        match = _BOXED.fullmatch(text)
        if match:
            text = match.group(1).strip()
        if text == before:
            return text


def is_number(answer: str) -> bool:
    return bool(answer) and any(ch.isdigit() for ch in answer) and _NUMBER.fullmatch(answer.strip()) is not None


def classify_answer(problem: str, answer: str, choices: list[str]) -> AnswerType:
    """The answer type of a normalised gold answer (see the module docstring)."""
    text = answer.strip()
    if _PROOF_ANSWER.search(text) or (_PROOF_PROBLEM.match(problem) and not is_number(text)):
        return "unverifiable"
    letter = _LETTER.fullmatch(text)
    if letter and (choices or _OPTIONS_IN_TEXT.search(problem)):
        return "multiple_choice"
    if is_number(text):
        return "numeric"
    if _MATH_MARKS.search(text):
        return "expression"
    words = text.split()
    if 0 < len(words) <= MAX_TEXT_WORDS:
        # A lone letter without options is a variable or constant ("x", "e"): mathematics.
        return "expression" if len(text) == 1 else "text"
    return "unverifiable"

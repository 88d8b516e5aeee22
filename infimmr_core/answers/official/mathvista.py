"""MathVista's official scoring (lupantech/MathVista @ 53d5258, `evaluation/extract_answer.py` and
`evaluation/calculate_score.py`).

The official pipeline extracts the answer with rules and then an LLM, normalises the extraction to the gold's form and
compares strings:

* multiple choice: the first ``(x)`` letter in the extraction, upper-cased; a letter among A.. is that option's text;
  anything else is mapped to the option nearest by edit distance on the **raw** strings (no case or space folding),
  so an empty extraction becomes the shortest option;
* integer: ``str(int(float(x)))``, so ``7.6`` is read as ``7``; float: ``str(round(float(x), precision))``;
  list: ``str(x)``; anything Python's ``float`` cannot read (``1,000``, ``$4$``, ``4/3``, ``x = 4``) is None;
* then ``prediction == answer`` on strings.

Without a judge we stand in for the LLM with `extract_final` (boxes, answer tags, "answer is"), after the official
rule-based shortcuts; with a judge in "extract" mode the judge's extraction is scored by `verdict`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from infimmr_core.answers.extract import extract_final
from infimmr_core.answers.official.verdict import Official

_QUICK_RE = re.compile(r'The answer is "(.*)"\.')
_PAREN_LETTER_RE = re.compile(r"\(([a-zA-Z])\)")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over code points (what the official `Levenshtein.distance` computes)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def nearest_option(prediction: str, choices: Sequence[str]) -> str:
    """The first option at the smallest edit distance from ``prediction``."""
    distances = [edit_distance(prediction, choice) for choice in choices]
    return choices[distances.index(min(distances))]


def extract(response: str, *, choices: Sequence[str], question_type: str, answer_type: str | None) -> str:
    """The extraction: the official rule shortcuts of `extract_answer`, then our rule extraction for its LLM step
    ("" when nothing is found, as the official extractor returns for an empty response)."""
    if response == "":
        return ""
    if question_type == "multi_choice" and response in choices:
        return response
    if answer_type == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if answer_type == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    quick = _QUICK_RE.search(response)
    if quick:
        return quick.group(1)
    return extract_final(response) or ""


def normalise(
    extraction: str | None, *, choices: Sequence[str], question_type: str, answer_type: str | None,
    precision: float | int | None,
) -> str | None:
    """`normalize_extracted_answer` (empty extractions are not ignored, the official default)."""
    if question_type == "multi_choice":
        if not choices:
            return None  # the official code would fail here; no benchmark row has a choice question without options
        text = extraction.strip() if isinstance(extraction, str) else str(extraction)
        letters = _PAREN_LETTER_RE.findall(text)
        if letters:
            text = letters[0].upper()
        sequential = [chr(ord("A") + i) for i in range(len(choices))]
        if text in sequential:
            return choices[sequential.index(text)]
        return nearest_option(text, choices)
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))  # type: ignore[arg-type]
        if answer_type == "float":
            return str(round(float(extraction), int(precision)))  # type: ignore[arg-type]
        if answer_type == "list":
            return str(extraction)
    except (TypeError, ValueError, OverflowError):
        return None
    return None  # the official function has no branch for other types (none occur in the data)


def verdict(
    extraction: str | None, gold: str, *, choices: Sequence[str], question_type: str, answer_type: str | None,
    precision: float | int | None,
) -> Official:
    """`safe_equal(normalize_extracted_answer(...), answer)` with the quirk that decided a correct verdict, if any."""
    prediction = normalise(
        extraction, choices=choices, question_type=question_type, answer_type=answer_type, precision=precision,
    )
    correct = prediction == gold
    quirk = ""
    if correct and question_type == "multi_choice" and not (extraction or "").strip():
        quirk = "no answer mapped to the nearest option"
    elif correct and answer_type == "integer" and _truncated(extraction):
        quirk = "a non-integer truncated to the integer gold"
    return Official(correct, prediction, quirk)


def _truncated(extraction: str | None) -> bool:
    try:
        value = float(extraction)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return value != int(value)

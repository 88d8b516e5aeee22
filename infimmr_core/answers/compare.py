"""Typed comparison of an extracted answer with a gold answer: the mathematically right verdict.

The answer type says how to compare (multiple_choice, numeric, expression, text); when it is not known it is inferred
from the gold. This is the training reward's accuracy and every benchmark's `semantic` verdict. Each comparator returns
(1.0, "") or (0.0, reason); it never returns 1 when something went wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from infimmr_core.answers.choices import gold_letter, letter_of, letters_for, looks_like_text, option_index
from infimmr_core.answers.latex import (
    drop_answer_phrase,
    norm_text,
    strip_group_braces,
    strip_math_delims,
    squash,
    unwrap_text_cmds,
)
from infimmr_core.answers.numbers import exact_verdict, parse_number, strip_unit, tower_digits
from infimmr_core.answers.symbolic import mv_compare

ANSWER_TYPES = ("multiple_choice", "numeric", "expression", "text", "unverifiable")

Comparator = Callable[..., "tuple[float, str]"]


# An answer longer than this and than four times its gold is not handed to math-verify (see `compare_math`).
LONG_ANSWER_CHARS = 256
# Nor is a power tower of integers with more digits than this: no one can compute it within a reward's timeout.
TOWER_MAX_DIGITS = 10**8


class SymbolicNeeded(Exception):
    """Raised by `compare(..., symbolic=False)` when only math-verify (sympy) can give the verdict."""


def compare_math(pred: str, gold: str, *, constant_gold: bool, symbolic: bool = True) -> tuple[float, str]:
    gold = strip_group_braces(strip_math_delims(gold))
    pred = strip_group_braces(strip_math_delims(drop_answer_phrase(pred)))
    if not gold:
        return 0.0, "unparsable gold"
    g_num, p_num = parse_number(gold), parse_number(pred)
    if g_num is not None and p_num is not None:
        # Two plain numbers: usually decided exactly, as math-verify would (no sympy, no parse: microseconds).
        same = exact_verdict(g_num, p_num)
        if same is not None:
            return (1.0, "") if same else (0.0, "mismatch")
    if (tower_digits(pred) or 0) > TOWER_MAX_DIGITS and squash(pred) != squash(gold):
        # 9^{9^{9^9}}: sympy would try to compute it and only time out (score 0) or hang.
        return 0.0, "answer too large"
    if len(pred) > max(LONG_ANSWER_CHARS, 4 * len(gold)):
        # math-verify's LaTeX parser is superlinear (seconds for a sum of 100 terms): such an answer would only time
        # out, which scores 0 too. Four times the gold's length and more: never an equivalent form in practice.
        return 0.0, "answer too long"
    if not symbolic:
        raise SymbolicNeeded
    # Not decided as plain numbers: let math-verify decide (0.333333 vs 1/3 rounds equal there),
    # feeding it the separator/unit-free forms where we have them.
    return mv_compare(
        g_num.latex if g_num else strip_unit(gold),
        p_num.latex if p_num else strip_unit(pred),
        constant_gold=constant_gold and g_num is None,
    )


def _compare_numeric(pred: str, gold: str, choices: list[str] | None, symbolic: bool = True) -> tuple[float, str]:
    return compare_math(pred, gold, constant_gold=True, symbolic=symbolic)


def _compare_expression(pred: str, gold: str, choices: list[str] | None, symbolic: bool = True) -> tuple[float, str]:
    return compare_math(pred, gold, constant_gold=False, symbolic=symbolic)


def _compare_text(pred: str, gold: str, choices: list[str] | None, symbolic: bool = True) -> tuple[float, str]:
    g = norm_text(gold)
    if not g:
        return 0.0, "unparsable gold"
    return (1.0, "") if norm_text(pred) == g else (0.0, "mismatch")


def _compare_multiple_choice(pred: str, gold: str, choices: list[str] | None, symbolic: bool = True) -> tuple[float, str]:
    wanted = gold_letter(gold, choices)
    if wanted is None:
        return 0.0, "unparsable gold"
    pred = drop_answer_phrase(pred)  # "The answer is $(C)$." -> "$(C)$"
    letter = letter_of(pred)
    if letter is not None:
        return (1.0, "") if letter == wanted else (0.0, "mismatch")
    if not choices:
        return 0.0, "mismatch"
    idx = option_index(pred, choices)
    if idx is not None:
        return (1.0, "") if letters_for(choices)[idx] == wanted else (0.0, "mismatch")
    # The option written differently ("0.5" for "\frac{1}{2}"): math equivalence with the gold
    # option only, never with prose options.
    gold_text = choices[letters_for(choices).index(wanted)]
    if looks_like_text(gold_text):
        return 0.0, "mismatch"
    acc, reason = compare_math(pred, gold_text, constant_gold=False, symbolic=symbolic)
    return (acc, "") if acc == 1.0 else (0.0, "mismatch" if reason == "unparsable gold" else reason)


COMPARATORS: dict[str, Comparator] = {
    "multiple_choice": _compare_multiple_choice,
    "numeric": _compare_numeric,
    "expression": _compare_expression,
    "text": _compare_text,
}

_INFER_LETTER_RE = re.compile(r"\(?[A-E]\)?[.)]?")


def infer_answer_type(gold: str, choices: list[str] | None) -> str:
    """Guess how to verify from the gold answer itself (used when the answer type is not given)."""
    inner = unwrap_text_cmds(strip_math_delims(gold)).strip()
    if choices and gold_letter(gold, choices) is not None:
        return "multiple_choice"
    # Upper-case only: a lone "e" is far more likely Euler's number than option E.
    if _INFER_LETTER_RE.fullmatch(inner):
        return "multiple_choice"
    if parse_number(gold) is not None:
        return "numeric"
    if looks_like_text(gold):
        return "text"
    # Mathematics that math-verify cannot read stays "expression" and scores "unparsable
    # gold": a text fallback would let the same garbage in the answer score 1.
    return "expression"


def check_answer_type(answer_type: str) -> None:
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type must be one of {ANSWER_TYPES}, got {answer_type!r}")


def compare(
    pred: str, gold: str, answer_type: str | None = None, choices: list[str] | None = None, *, symbolic: bool = True
) -> tuple[float, str]:
    """(1.0, "") when ``pred`` equals ``gold`` under its answer type, else (0.0, reason). Exceptions propagate: the
    caller decides what a verifier error scores (the reward and the scorers: 0, with that reason).

    ``symbolic=False`` never calls math-verify: it raises `SymbolicNeeded` where the verdict needs it, so a caller
    can decide the rest (letters, text, plain numbers) at once, where no hard timeout is needed, and send only these
    to the worker processes."""
    if answer_type is not None:
        check_answer_type(answer_type)
    if answer_type == "unverifiable":
        return 0.0, "unverifiable"
    kind = answer_type or infer_answer_type(gold, choices)
    acc, reason = COMPARATORS[kind](pred, gold, choices, symbolic=symbolic)
    # Belt and braces: whatever a comparator returns, 1 only comes with no failure reason.
    return (1.0, "") if acc == 1.0 and not reason else (0.0, reason or "mismatch")

"""Option letters and option texts: reading "C", "(C)", "C. 14", "option C", "\\text{c}" as a letter, and mapping an
answer written as an option's text to that option."""

from __future__ import annotations

import re

from infimmr_core.answers.extract import last_boxed
from infimmr_core.answers.latex import norm_option, strip_math_delims, unwrap_text_cmds
from infimmr_core.answers.numbers import MATH_WORDS

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_ANSWER_PREFIX_RE = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE
)
_BARE_LETTER_RE = re.compile(r"\(?\s*([A-Za-z])\s*\)?\s*[.:)]?")
# "(C) 14", "C. 14", "C) 14", and MathVerse's "B:60°" (a colon needs no space after it).
_LETTER_THEN_TEXT_RE = re.compile(r"(?:\(([A-Za-z])\)\s*|([A-Za-z])[.)]\s+|([A-Za-z])\s*[:：]\s*)\S")


def letter_of(s: str) -> str | None:
    """The option letter in ``C``, ``(C)``, ``C.``, ``C)``, ``\\text{C}``, ``option C``, ``c``, ``**C**``,
    ``C. <option text>`` or ``B:60°`` (MathVerse's own option format); None otherwise (``C and D`` is not a letter)."""
    t = unwrap_text_cmds(strip_math_delims(s)).replace("*", "").strip()
    box = last_boxed(t)
    if box is not None:
        t = unwrap_text_cmds(box).strip()
    t = _ANSWER_PREFIX_RE.sub("", t).strip()
    m = _BARE_LETTER_RE.fullmatch(t)
    if m:
        return m.group(1).upper()
    m = _LETTER_THEN_TEXT_RE.match(t)
    if m:
        return (m.group(1) or m.group(2) or m.group(3)).upper()
    return None


_LETTER_LIST_RE = re.compile(r"[A-H]{2,}")


def letters_in(text: str) -> frozenset[str]:
    """Several option letters given together ("C\\nD", "C and D", "(A), (C)"); empty for anything else."""
    t = unwrap_text_cmds(strip_math_delims(text))
    t = re.sub(r"\band\b|[\s,;()&]", "", t)
    if _LETTER_LIST_RE.fullmatch(t) and len(set(t)) == len(t):
        return frozenset(t)
    return frozenset()


def letters_for(choices: list[str] | tuple[str, ...] | None) -> str:
    return LETTERS[: len(choices)] if choices else LETTERS


def option_index(text: str, choices: list[str] | tuple[str, ...]) -> int | None:
    """The option whose text is ``text`` (case, spacing, delimiters and a final full stop aside)."""
    norm = norm_option(text)
    for i, choice in enumerate(choices):
        if norm and norm_option(choice) == norm:
            return i
    return None


def gold_letter(gold: str, choices: list[str] | tuple[str, ...] | None) -> str | None:
    """The gold's option letter: the gold is an option's text, or a letter within range."""
    letters = letters_for(choices)
    if choices:
        # Option text first: an option whose text is itself a letter must not be read as one.
        idx = option_index(gold, choices)
        if idx is not None:
            return letters[idx]
    letter = letter_of(gold)
    return letter if letter is not None and letter in letters else None


def looks_like_text(answer: str) -> bool:
    """Prose ("yes", "north east", "\\text{blue}") rather than mathematics."""
    inner = unwrap_text_cmds(strip_math_delims(answer))
    if re.search(r"[\\^_=+*/<>{}|]", inner):
        return False
    words = re.findall(r"[A-Za-z]{2,}", inner)
    return any(w.lower() not in MATH_WORDS for w in words)

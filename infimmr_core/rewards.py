"""Format and accuracy rewards for GRPO on verifiable math answers (LMM-R1 conventions).

A response is expected to look like::

    <think> reasoning </think> <answer> ... \\boxed{final} ... </answer>

* ``format_reward`` checks the structure only (1.0 / 0.0). The trainer applies the weight
  (``score`` uses 0.5 by default, so totals fall in {0, 0.5, 1, 1.5}).
* ``accuracy_reward`` extracts the final answer and compares it with the gold answer by
  answer type. It never returns 1 when something went wrong: an unparsable gold answer, a
  verifier exception, a timeout or a missing/empty answer all score 0, with a reason.
* ``score_batch`` scores many completions in worker processes with a hard per-item wall
  timeout, because math-verify's own timeouts rely on ``signal.alarm`` (main thread only)
  and sympy can hang for a long time on inputs like ``9^{9^{9^9}}``.

Format semantics (both modes reject several think/answer blocks, nested or stray tags, an
empty answer, a missing open/close tag and any text outside the blocks):

* ``lenient`` (default): whitespace and newlines are allowed before, between and after blocks.
* ``strict``: LMM-R1's check, ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>",
  response, re.DOTALL)``. Whitespace (newlines included) *between* ``</think>`` and ``<answer>``
  is allowed there too; what strict adds is that nothing, not even whitespace or a trailing
  newline, may come before ``<think>`` or after the final answer.

An empty think block is accepted (as in LMM-R1). In the "boxed" answer format the text after
``</think>`` may surround the box ("So the answer is \\boxed{5}.") but only closing math
delimiters and a full stop may follow it.

A chat template that pre-fills ``<think>`` produces responses without the opening tag; those
score format 0 here on purpose. Callers using such a template must prepend ``"<think>"`` to
the completion before scoring.

math-verify is imported lazily; this module itself only needs the standard library and pydantic.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.connection
import re
import signal
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from infimmr_core.data.schema import AnswerType

__all__ = [
    "REWARD_FUNCS",
    "AnswerFormat",
    "FormatMode",
    "RewardBreakdown",
    "RewardPool",
    "ScoreItem",
    "accuracy_reward",
    "extract_answer",
    "format_reward",
    "score",
    "score_batch",
]

_log = logging.getLogger(__name__)

FormatMode = Literal["lenient", "strict"]
AnswerFormat = Literal["answer_tag", "boxed", "answer_tag_boxed"]

_MODES = ("lenient", "strict")
_ANSWER_FORMATS = ("answer_tag", "boxed", "answer_tag_boxed")
_ANSWER_TYPES = ("multiple_choice", "numeric", "expression", "text", "unverifiable")

# Default per-item budget for in-process scoring; math-verify's own default is 5 s as well.
DEFAULT_TIMEOUT = 5.0


class RewardBreakdown(BaseModel):
    """Result of scoring one completion. ``reason`` is "" when the answer is correct."""

    model_config = ConfigDict(frozen=True)

    format: float
    accuracy: float
    total: float
    reason: str


class ScoreItem(BaseModel):
    """One completion to score against its gold answer."""

    completion: str
    gold: str
    answer_type: AnswerType | None = None
    choices: list[str] | None = None


# --------------------------------------------------------------------------------------
# Small text helpers
# --------------------------------------------------------------------------------------

_BOXED_START_RE = re.compile(r"\\boxed\s*\{")


def boxed_contents(text: str) -> list[tuple[int, int, str]]:
    """All ``\\boxed{...}`` groups as (start, end, content), braces matched properly.

    A regex cannot match nested braces, so we walk the string. ``\\{`` and ``\\}`` are literal
    braces in LaTeX and must not change the depth, hence the backslash skip. An unclosed
    ``\\boxed{`` is ignored rather than swallowing the rest of the text.
    """
    found = []
    for m in _BOXED_START_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    found.append((m.start(), i + 1, text[m.end() : i]))
                    break
            i += 1
    # A \boxed nested inside another is also found; keep only outermost groups so "last" means
    # the last top-level box.
    outer = []
    for start, end, content in found:
        if outer and start < outer[-1][1]:
            continue
        outer.append((start, end, content))
    return outer


def _last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1][2] if boxes else None


_DELIM_PAIRS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _strip_math_delims(s: str) -> str:
    """Drop surrounding ``$..$`` / ``\\(..\\)`` / ``\\[..\\]`` so both sides compare bare."""
    s = s.strip()
    changed = True
    while changed:
        changed = False
        for left, right in _DELIM_PAIRS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)].strip()
                changed = True
    return s


_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mathsf|emph|mbox|operatorname)"
    r"\s*\{([^{}]*)\}"
)


def _unwrap_text_cmds(s: str) -> str:
    """``\\text{C}`` -> `` C ``; innermost first, so nested wrappers unwrap too."""
    prev = None
    while prev != s:
        prev, s = s, _TEXT_CMD_RE.sub(r" \1 ", s)
    return s


def _norm_text(s: str) -> str:
    """Case/whitespace/punctuation-insensitive form of a free-text answer."""
    s = unicodedata.normalize("NFKC", s)
    s = _unwrap_text_cmds(_strip_math_delims(s))
    s = s.replace("\\", " ").lower()
    s = re.sub(r"[^\w\s]", " ", s)
    return " ".join(s.split())


def _norm_option(s: str) -> str:
    """Gentler normalisation for option texts: keeps signs and operators ("-1" != "1")."""
    s = unicodedata.normalize("NFKC", s)
    s = _unwrap_text_cmds(_strip_math_delims(s)).lower()
    s = " ".join(s.split())
    return s.rstrip(".").strip()


# --------------------------------------------------------------------------------------
# Format
# --------------------------------------------------------------------------------------

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_LMM_R1_STRICT_RE = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)
_THINK_SPLIT_RE = re.compile(r"\s*<think>(.*)</think>(.*)", re.DOTALL)
_ANSWER_BLOCK_RE = re.compile(r"\s*<answer>(.*)</answer>\s*", re.DOTALL)
# What may follow the box in the "boxed" format: closing math delimiters and a full stop.
_AFTER_BOX_RE = re.compile(r"(?:\s|\.|\$|\\\]|\\\))*")


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def format_reward(
    completion: str,
    *,
    mode: FormatMode = "lenient",
    answer_format: AnswerFormat = "answer_tag_boxed",
) -> float:
    """1.0 when the completion is exactly one think block followed by the final answer, else 0.0."""
    _check_choice(mode, _MODES, "mode")
    _check_choice(answer_format, _ANSWER_FORMATS, "answer_format")
    return 1.0 if _format_ok(completion, mode, answer_format) else 0.0


def _format_ok(text: str, mode: str, answer_format: str) -> bool:
    # Counting tags first rules out repeated blocks, nested tags and stray tags in one go;
    # LMM-R1's non-greedy regex alone accepts "<answer>1</answer><answer>2</answer>".
    want_answer_tags = 0 if answer_format == "boxed" else 1
    counts = [text.count(tag) for tag in _TAGS]
    if counts != [1, 1, want_answer_tags, want_answer_tags]:
        return False
    if mode == "strict":
        if text != text.strip():
            return False
        if answer_format != "boxed" and not _LMM_R1_STRICT_RE.fullmatch(text):
            return False
    m = _THINK_SPLIT_RE.fullmatch(text)
    if m is None:  # text before <think>, or </think> before <think>
        return False
    rest = m.group(2)
    if answer_format == "boxed":
        boxes = boxed_contents(rest)
        if not boxes or not boxes[-1][2].strip():
            return False
        return _AFTER_BOX_RE.fullmatch(rest[boxes[-1][1] :]) is not None
    a = _ANSWER_BLOCK_RE.fullmatch(rest)
    if a is None or not a.group(1).strip():
        return False
    if answer_format == "answer_tag_boxed":
        box = _last_boxed(a.group(1))
        return box is not None and bool(box.strip())
    return True


# --------------------------------------------------------------------------------------
# Answer extraction
# --------------------------------------------------------------------------------------

ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_answer(completion: str, answer_format: AnswerFormat = "answer_tag_boxed") -> str | None:
    """The final answer text the policy gave, or None when there is none.

    Tag formats: the last ``\\boxed{}`` inside the (last) answer block, else the answer block's
    text, else the last ``\\boxed{}`` anywhere. An answer block that exists but is empty gives
    None: falling back to a box in the reasoning would reward ``<answer></answer>``.
    "boxed" format: the last ``\\boxed{}`` after ``</think>``, else the last one anywhere.
    """
    _check_choice(answer_format, _ANSWER_FORMATS, "answer_format")
    if answer_format == "boxed":
        tail = completion.rsplit("</think>", 1)[-1]
        box = _last_boxed(tail)
        if box is None:
            box = _last_boxed(completion)
        return _nonempty(box)
    blocks = ANSWER_BLOCK_RE.findall(completion)
    if blocks:
        block = blocks[-1]
        box = _last_boxed(block)
        return _nonempty(box if box is not None else block)
    return _nonempty(_last_boxed(completion))


def _nonempty(s: str | None) -> str | None:
    if s is None:
        return None
    s = s.strip()
    return s if _strip_math_delims(s) else None


# --------------------------------------------------------------------------------------
# Deadline (SIGALRM, main thread only)
# --------------------------------------------------------------------------------------


class _Deadline(BaseException):
    """Raised by our SIGALRM handler.

    A BaseException so that math-verify's and sympy's ``except Exception`` blocks cannot
    swallow it and turn a timeout into a silent "mismatch".
    """


@contextmanager
def deadline(seconds: float | None):
    """Interrupt the body with ``_Deadline`` after ``seconds`` (main thread only, else no-op).

    We call math-verify with its own timeouts disabled and use this instead because its
    ``signal.alarm`` is whole seconds, cannot be nested, and reports a timeout as plain False.
    A timer that was already armed (e.g. pytest-timeout) is re-armed with its remaining time.
    """
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise _Deadline()

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _raise)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, old_handler)
            if old_delay > 0:
                left = old_delay - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)


# --------------------------------------------------------------------------------------
# math-verify bridge
# --------------------------------------------------------------------------------------


class _TimeoutWarningFilter(logging.Filter):
    # We disable math-verify's timeouts on purpose (see deadline); its warning says to add
    # our own, which we did, so it is noise.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


@functools.cache
def _mv() -> dict[str, Any]:
    """Import math-verify on first use: it pulls in sympy and an ANTLR parser (~0.5 s)."""
    from math_verify import LatexExtractionConfig, parse, verify
    from sympy import Basic, MatrixBase

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_TimeoutWarningFilter())
    return {
        "parse": parse,
        "verify": verify,
        "config": [LatexExtractionConfig(boxed_match_priority=0)],
        "sympy_types": (Basic, MatrixBase),
    }


@functools.lru_cache(maxsize=8192)
def _mv_parse(tex: str) -> tuple:
    """Sympy objects math-verify reads from ``tex`` (wrapped in a box); strings are dropped.

    Only sympy results are kept because math-verify compares its string fallbacks with plain
    string equality, so garbage gold == the same garbage prediction would score 1.
    Cached: in GRPO every gold (and many answers) repeats once per group member.
    """
    mv = _mv()
    parsed = mv["parse"]("\\boxed{" + tex + "}", mv["config"], parsing_timeout=None)
    return tuple(x for x in parsed if isinstance(x, mv["sympy_types"]))


_INSIGNIFICANT_SPACE_RE = re.compile(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])")


def _squash(tex: str) -> str:
    """Drop whitespace that cannot matter in LaTeX (not between two letters: "\\pi r")."""
    return _INSIGNIFICANT_SPACE_RE.sub("", tex.strip())


def _mv_compare(gold_tex: str, pred_tex: str, *, constant_gold: bool = False) -> tuple[float, str]:
    gold_objs = _mv_parse(gold_tex)
    if constant_gold:
        # A numeric gold that reads as symbols ("abc" -> a*b*c) is a data error, not an answer.
        gold_objs = tuple(g for g in gold_objs if not getattr(g, "free_symbols", None))
    if not gold_objs:
        return 0.0, "unparsable gold"
    # Same LaTeX as a gold that parses: equal without another ~10-50 ms ANTLR parse. This is
    # the common case in GRPO, where many group members write the answer exactly like the key.
    if _squash(gold_tex) == _squash(pred_tex):
        return 1.0, ""
    pred_objs = _mv_parse(pred_tex)
    if not pred_objs:
        return 0.0, "mismatch"
    verify = _mv()["verify"]
    errored = False
    # Pair by pair with raise_on_error so an exception is reported as such, without one
    # failing pair hiding a later pair that matches.
    for g in gold_objs:
        for p in pred_objs:
            try:
                if verify(g, p, timeout_seconds=None, raise_on_error=True):
                    return 1.0, ""
            except Exception:
                _log.debug("math-verify raised", exc_info=True)
                errored = True
    return 0.0, ("verifier error" if errored else "mismatch")


# --------------------------------------------------------------------------------------
# Numbers: units, percent, degrees, thousand separators
# --------------------------------------------------------------------------------------


class _Number(NamedTuple):
    value: Fraction
    percent: bool
    latex: str  # separator/unit-free form handed to math-verify


_SPACING_RE = re.compile(r"\\[,;:! ]|\\q?quad|~|[\u00a0\u2009\u202f]")
_NUM_CORE_RE = re.compile(
    r"""(?P<sign>[-+])?\s*
    (?:
        \\[dt]?frac\s*\{\s*(?P<fn>\d+(?:\.\d+)?)\s*\}\s*\{\s*(?P<fd>\d+(?:\.\d+)?)\s*\}
      | \\[dt]?frac(?P<fn1>\d)(?P<fd1>\d)
      | (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\ \d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)
        (?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?
    )""",
    re.VERBOSE,
)
_UNIT_WORD = r"[A-Za-z]+\.?(?:\^\s*\{?-?\d\}?|[²³])?"
_UNIT_TAIL_RE = re.compile(rf"{_UNIT_WORD}(?:\s*(?:/|\\cdot|\s)\s*{_UNIT_WORD})*")
# Single letters that are units; any other lone letter ("2x") means the answer is not a number.
_SINGLE_LETTER_UNITS = frozenset("mgshlLKNJWVCF")
# Multi-letter words that are mathematics, not units ("2 pi" is not 2).
_MATH_WORDS = frozenset(
    "sin cos tan cot sec csc log ln exp lim max min sqrt frac pi inf infty arcsin arccos arctan "
    "sinh cosh tanh det gcd lcm mod".split()
)


def _is_unit_tail(s: str) -> bool:
    if not _UNIT_TAIL_RE.fullmatch(s):
        return False
    for word in re.findall(r"[A-Za-z]+", s):
        if len(word) == 1 and word not in _SINGLE_LETTER_UNITS:
            return False
        if word.lower() in _MATH_WORDS:
            return False
    return True


def _parse_number(text: str) -> _Number | None:
    """Read a plain number with optional sign, separators, %, degrees, currency and units.

    Returns None for anything else (expressions, sets, ...), which then goes to math-verify.
    We do this ourselves because math-verify reads ``1\\,000`` as 1*0 = 0 and ``12\\,\\mathrm{cm}``
    only by luck, and a plain-number comparison needs no sympy at all.
    """
    s = unicodedata.normalize("NFKC", text).replace("\u2212", "-")
    s = _strip_math_delims(s)
    s = s.replace("{,}", ",").replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = _SPACING_RE.sub(" ", s)
    s = _unwrap_text_cmds(s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree", " ", s)
    s = re.sub(r"^(?:\\\$|\$|€|£|¥)\s*", "", s.strip())
    s = " ".join(s.split())
    m = _NUM_CORE_RE.match(s)
    if m is None:
        return None
    rest = s[m.end() :].strip()
    percent = False
    if rest.startswith("\\%") or rest.startswith("%"):
        percent = True
        rest = rest.lstrip("\\%").strip()
    if rest and not _is_unit_tail(rest):
        return None
    sign = "-" if m.group("sign") == "-" else ""
    if m.group("num") is not None:
        num = m.group("num").replace(",", "").replace(" ", "")
        den = m.group("den")
    else:
        num = m.group("fn") or m.group("fn1")
        den = m.group("fd") or m.group("fd1")
    value = Fraction(num)
    latex = num
    if den is not None:
        if Fraction(den) == 0:
            return None
        value /= Fraction(den)
        latex = f"\\frac{{{num}}}{{{den}}}"
    if sign:
        value, latex = -value, "-" + latex
    return _Number(value, percent, latex + ("\\%" if percent else ""))


def _numbers_match(gold: _Number, pred: _Number) -> bool:
    # Like math-verify, a percentage matches both its face value and its fraction: gold 50%
    # accepts 50, 50% and 0.5; gold 0.5 accepts 50%; gold 0.5 does not accept 50.
    def values(n: _Number) -> set[Fraction]:
        return {n.value, n.value / 100} if n.percent else {n.value}

    return bool(values(gold) & values(pred))


# --------------------------------------------------------------------------------------
# Comparators by answer type
# --------------------------------------------------------------------------------------


def _compare_math(pred: str, gold: str, *, constant_gold: bool) -> tuple[float, str]:
    gold = _strip_math_delims(gold)
    pred = _strip_math_delims(pred)
    if not gold:
        return 0.0, "unparsable gold"
    g_num, p_num = _parse_number(gold), _parse_number(pred)
    if g_num is not None and p_num is not None and _numbers_match(g_num, p_num):
        return 1.0, ""
    # Not equal as plain numbers: let math-verify decide (0.333333 vs 1/3 rounds equal there),
    # feeding it the separator/unit-free forms where we have them.
    return _mv_compare(
        g_num.latex if g_num else gold,
        p_num.latex if p_num else pred,
        constant_gold=constant_gold and g_num is None,
    )


def _compare_numeric(pred: str, gold: str, choices: list[str] | None) -> tuple[float, str]:
    return _compare_math(pred, gold, constant_gold=True)


def _compare_expression(pred: str, gold: str, choices: list[str] | None) -> tuple[float, str]:
    return _compare_math(pred, gold, constant_gold=False)


def _compare_text(pred: str, gold: str, choices: list[str] | None) -> tuple[float, str]:
    g = _norm_text(gold)
    if not g:
        return 0.0, "unparsable gold"
    return (1.0, "") if _norm_text(pred) == g else (0.0, "mismatch")


_ANSWER_PREFIX_RE = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE
)
_BARE_LETTER_RE = re.compile(r"\(?\s*([A-Za-z])\s*\)?\s*[.:)]?")
_LETTER_THEN_TEXT_RE = re.compile(r"(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s+\S")


def _letter_of(s: str) -> str | None:
    """The option letter in ``C``, ``(C)``, ``C.``, ``C)``, ``\\text{C}``, ``option C``, ``c``,
    ``**C**`` or ``C. <option text>``; None otherwise (``C and D`` is not a letter)."""
    t = _unwrap_text_cmds(_strip_math_delims(s)).replace("*", "").strip()
    box = _last_boxed(t)
    if box is not None:
        t = _unwrap_text_cmds(box).strip()
    t = _ANSWER_PREFIX_RE.sub("", t).strip()
    m = _BARE_LETTER_RE.fullmatch(t)
    if m:
        return m.group(1).upper()
    m = _LETTER_THEN_TEXT_RE.match(t)
    if m:
        return (m.group(1) or m.group(2)).upper()
    return None


def _letters_for(choices: list[str] | None) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(choices)] if choices else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _option_index(text: str, choices: list[str]) -> int | None:
    norm = _norm_option(text)
    for i, choice in enumerate(choices):
        if norm and _norm_option(choice) == norm:
            return i
    return None


def _gold_letter(gold: str, choices: list[str] | None) -> str | None:
    letters = _letters_for(choices)
    if choices:
        # Option text first: an option whose text is itself a letter must not be read as one.
        idx = _option_index(gold, choices)
        if idx is not None:
            return letters[idx]
    letter = _letter_of(gold)
    return letter if letter is not None and letter in letters else None


def _compare_multiple_choice(pred: str, gold: str, choices: list[str] | None) -> tuple[float, str]:
    gold_letter = _gold_letter(gold, choices)
    if gold_letter is None:
        return 0.0, "unparsable gold"
    letter = _letter_of(pred)
    if letter is not None:
        return (1.0, "") if letter == gold_letter else (0.0, "mismatch")
    if not choices:
        return 0.0, "mismatch"
    idx = _option_index(pred, choices)
    if idx is not None:
        return (1.0, "") if _letters_for(choices)[idx] == gold_letter else (0.0, "mismatch")
    # The option written differently ("0.5" for "\frac{1}{2}"): math equivalence with the gold
    # option only, never with prose options.
    gold_text = choices[_letters_for(choices).index(gold_letter)]
    if _looks_like_text(gold_text):
        return 0.0, "mismatch"
    acc, reason = _compare_math(pred, gold_text, constant_gold=False)
    return (acc, "") if acc == 1.0 else (0.0, "mismatch" if reason == "unparsable gold" else reason)


_COMPARATORS: dict[str, Callable[[str, str, list[str] | None], tuple[float, str]]] = {
    "multiple_choice": _compare_multiple_choice,
    "numeric": _compare_numeric,
    "expression": _compare_expression,
    "text": _compare_text,
}


def _looks_like_text(gold: str) -> bool:
    """Prose ("yes", "north east", "\\text{blue}") rather than mathematics."""
    inner = _unwrap_text_cmds(_strip_math_delims(gold))
    if re.search(r"[\\^_=+*/<>{}|]", inner):
        return False
    words = re.findall(r"[A-Za-z]{2,}", inner)
    return any(w.lower() not in _MATH_WORDS for w in words)


_INFER_LETTER_RE = re.compile(r"\(?[A-E]\)?[.)]?")


def _infer_answer_type(gold: str, choices: list[str] | None) -> str:
    """Guess how to verify from the gold answer itself (used when answer_type is None)."""
    bare = _unwrap_text_cmds(_strip_math_delims(gold)).strip()
    if choices and _gold_letter(gold, choices) is not None:
        return "multiple_choice"
    # Upper-case only: a lone "e" is far more likely Euler's number than option E.
    if _INFER_LETTER_RE.fullmatch(bare):
        return "multiple_choice"
    if _parse_number(gold) is not None:
        return "numeric"
    if _looks_like_text(gold):
        return "text"
    # Mathematics that math-verify cannot read stays "expression" and scores "unparsable
    # gold": a text fallback would let the same garbage in the answer score 1.
    return "expression"


# --------------------------------------------------------------------------------------
# Public scoring API
# --------------------------------------------------------------------------------------


def accuracy_reward(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    *,
    choices: list[str] | None = None,
    answer_format: AnswerFormat = "answer_tag_boxed",
    timeout: float | None = DEFAULT_TIMEOUT,
) -> tuple[float, str]:
    """(1.0, "") when the extracted answer equals ``gold``, else (0.0, reason).

    ``timeout`` bounds verification with SIGALRM in the main thread; in other threads it is
    not enforced (math-verify cannot time out there either): use ``score_batch`` instead.
    """
    if answer_type is not None:
        _check_choice(answer_type, _ANSWER_TYPES, "answer_type")
    _check_choice(answer_format, _ANSWER_FORMATS, "answer_format")
    if answer_type == "unverifiable":
        return 0.0, "unverifiable"
    pred = extract_answer(completion, answer_format)
    if pred is None:
        return 0.0, ("no boxed answer" if answer_format == "boxed" else "no answer")
    try:
        with deadline(timeout):
            kind = answer_type or _infer_answer_type(gold, choices)
            acc, reason = _COMPARATORS[kind](pred, gold, choices)
    except _Deadline:
        return 0.0, "timeout"
    except Exception:
        _log.debug("verification raised", exc_info=True)
        return 0.0, "verifier error"
    # Belt and braces: whatever a comparator returns, 1 only comes with no failure reason.
    return (1.0, "") if acc == 1.0 and not reason else (0.0, reason or "mismatch")


def _breakdown(fmt: float, acc: float, reason: str, format_weight: float, accuracy_weight: float) -> RewardBreakdown:
    return RewardBreakdown(
        format=fmt, accuracy=acc, total=format_weight * fmt + accuracy_weight * acc, reason=reason
    )


def score(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    *,
    choices: list[str] | None = None,
    format_weight: float = 0.5,
    accuracy_weight: float = 1.0,
    mode: FormatMode = "lenient",
    answer_format: AnswerFormat = "answer_tag_boxed",
    timeout: float | None = DEFAULT_TIMEOUT,
) -> RewardBreakdown:
    """Format and accuracy of one completion; ``total = format_weight*format + accuracy_weight*accuracy``."""
    fmt = format_reward(completion, mode=mode, answer_format=answer_format)
    acc, reason = accuracy_reward(
        completion, gold, answer_type, choices=choices, answer_format=answer_format, timeout=timeout
    )
    return _breakdown(fmt, acc, reason, format_weight, accuracy_weight)


# --------------------------------------------------------------------------------------
# Batch scoring in worker processes
# --------------------------------------------------------------------------------------

_SCORE_KWARGS = frozenset({"format_weight", "accuracy_weight", "mode", "answer_format"})
# Extra wall time before the parent kills a worker: the worker's own SIGALRM deadline fires at
# `timeout` and usually answers first (no respawn); the kill covers hangs inside C code, where
# Python signal handlers never get to run.
_KILL_GRACE = 0.5
_MAX_CHUNK = 32
_STARTUP_TIMEOUT = 120.0


def _mp_context() -> multiprocessing.context.BaseContext:
    # forkserver: children fork from a server that has math-verify imported already, so a
    # killed worker is replaced quickly; plain fork is unsafe in a threaded trainer.
    # As with spawn, each child still re-imports the caller's __main__ module (Python 3.11's
    # forkserver never receives the main path, so preloading "__main__" would not help).
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["math_verify", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _worker_main(conn, score_kwargs: dict, soft_timeout: float | None) -> None:
    """Worker loop: score chunks of (idx, completion, gold, answer_type, choices), one result
    message per item so the parent knows when each item started."""
    # Ctrl-C is the parent's to handle; it tears the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Warm up (imports, grammar, regex caches) before saying ready, so that cost is not
    # charged to the first item's deadline.
    score("<think>.</think><answer>\\boxed{\\frac{1}{2}}</answer>", "0.5", "expression", timeout=None)
    conn.send(("ready",))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for idx, completion, gold, answer_type, choices in chunk:
            try:
                b = score(completion, gold, answer_type, choices=choices, timeout=soft_timeout, **score_kwargs)
                msg = (idx, b.format, b.accuracy, b.total, b.reason)
            except Exception:  # e.g. a malformed item; the parent fills in the format score
                msg = (idx, None, 0.0, None, "verifier error")
            conn.send(msg)


class _Worker:
    def __init__(self, ctx, score_kwargs: dict, soft_timeout: float | None):
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_worker_main, args=(child_conn, score_kwargs, soft_timeout), daemon=True
        )
        self.proc.start()
        child_conn.close()  # so the parent sees EOF when the child dies
        self.ready = False
        self.spawned_at = time.monotonic()
        self.outstanding: deque[int] = deque()
        self.head_started = 0.0  # when the worker started its current (first outstanding) item

    def stop(self, *, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                kill = True
        if kill:
            self.proc.kill()
        self.proc.join(timeout=2.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _check_score_kwargs(score_kwargs: dict) -> None:
    unknown = set(score_kwargs) - _SCORE_KWARGS
    if unknown:
        raise TypeError(f"unexpected scoring keyword arguments {sorted(unknown)}")
    _check_choice(score_kwargs.get("mode", "lenient"), _MODES, "mode")
    _check_choice(score_kwargs.get("answer_format", "answer_tag_boxed"), _ANSWER_FORMATS, "answer_format")


def _as_items(items: Sequence[ScoreItem | dict]) -> list[ScoreItem]:
    return [it if isinstance(it, ScoreItem) else ScoreItem.model_validate(it) for it in items]


class RewardPool:
    """Scoring worker processes that can be reused across batches.

    ``score_batch`` starts and stops one per call (~0.3 s, plus re-importing the caller's
    main module in each worker). A trainer scoring every step can keep one open instead,
    which also keeps the workers' parse caches warm::

        with RewardPool(workers=2, timeout=5.0) as pool:
            for step in ...:
                rewards = pool.score(items)

    Same timeout semantics as ``score_batch``. One ``score`` call runs at a time (a lock
    serialises threads); the pool must not be used from a forked child.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        soft_deadline: bool = True,
        **score_kwargs: Any,
    ):
        _check_score_kwargs(score_kwargs)
        if workers < 1:
            raise ValueError("RewardPool needs at least one worker")
        if not timeout or timeout <= 0:
            raise ValueError("RewardPool needs a positive timeout")
        self.workers = workers
        self.timeout = timeout
        self._score_kwargs = dict(score_kwargs)
        self._soft_timeout = timeout if soft_deadline else None
        self._ctx = _mp_context()
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers. Idempotent."""
        with self._lock:
            self._closed = True
            for w in self._pool:
                w.stop(kill=bool(w.outstanding))
            self._pool = []

    def score(self, items: Sequence[ScoreItem | dict]) -> list[RewardBreakdown]:
        """Score ``items``; results in input order."""
        parsed = _as_items(items)
        if not parsed:
            return []
        payload = [(i, it.completion, it.gold, it.answer_type, it.choices) for i, it in enumerate(parsed)]
        with self._lock:
            if self._closed:
                raise RuntimeError("RewardPool is closed")
            try:
                return self._run(payload)
            finally:
                # An interrupted run (Ctrl-C, error) leaves items in flight: drop those workers.
                for w in [w for w in self._pool if w.outstanding]:
                    w.stop(kill=True)
                    self._pool.remove(w)

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self._score_kwargs, self._soft_timeout)

    def _failed(self, completion: str, reason: str) -> RewardBreakdown:
        # Scored here in the parent: format is a regex and cannot hang.
        kw = self._score_kwargs
        fmt = format_reward(
            completion, mode=kw.get("mode", "lenient"), answer_format=kw.get("answer_format", "answer_tag_boxed")
        )
        return _breakdown(fmt, 0.0, reason, kw.get("format_weight", 0.5), kw.get("accuracy_weight", 1.0))

    def _run(self, payload: list[tuple]) -> list[RewardBreakdown]:
        n = len(payload)
        pool = self._pool
        while len(pool) < self.workers:
            pool.append(self._spawn())
        # Chunks amortise the pipe round trip; small enough that work spreads over all workers.
        chunk = max(1, min(_MAX_CHUNK, n // (len(pool) * 4)))
        hard_limit = self.timeout + _KILL_GRACE
        results: list[RewardBreakdown | None] = [None] * n
        pending = deque(range(n))
        remaining = n
        startup_failures = 0

        def replace(w: _Worker, head_reason: str | None) -> None:
            nonlocal remaining
            if w.outstanding and head_reason is not None:
                head = w.outstanding.popleft()
                results[head] = self._failed(payload[head][1], head_reason)
                remaining -= 1
            pending.extendleft(reversed(w.outstanding))  # retried first, in input order
            w.outstanding.clear()
            w.stop(kill=True)
            pool[pool.index(w)] = self._spawn()

        while remaining:
            now = time.monotonic()
            # Dispatch only to idle workers: a worker reads its pipe only between chunks, so
            # sending more could block the parent on a full pipe while deadlines pass.
            for w in pool:
                if w.ready and not w.outstanding and pending:
                    batch = [pending.popleft() for _ in range(min(chunk, len(pending)))]
                    w.outstanding.extend(batch)
                    w.head_started = now
                    try:
                        w.conn.send([payload[i] for i in batch])
                    except OSError:  # died while idle (e.g. OOM-killed between batches)
                        replace(w, None)
            busy = [w.head_started + hard_limit - now for w in pool if w.outstanding]
            wait_s = max(0.0, min([0.1, *busy]))
            for conn in multiprocessing.connection.wait([w.conn for w in pool], timeout=wait_s):
                w = next(x for x in pool if x.conn is conn)
                try:
                    while conn.poll():
                        msg = conn.recv()
                        if msg[0] == "ready":
                            w.ready = True
                            startup_failures = 0
                            continue
                        idx, fmt, acc, total, reason = msg
                        if not w.outstanding or w.outstanding[0] != idx:
                            raise RuntimeError(f"reward worker answered item {idx} out of order")
                        w.outstanding.popleft()
                        w.head_started = time.monotonic()
                        if fmt is None:
                            results[idx] = self._failed(payload[idx][1], reason)
                        else:
                            results[idx] = RewardBreakdown(format=fmt, accuracy=acc, total=total, reason=reason)
                        remaining -= 1
                except (EOFError, OSError):  # the worker died (crash, OOM kill)
                    if not w.ready:
                        startup_failures += 1
                        if startup_failures > 3:
                            raise RuntimeError(
                                "reward scoring workers keep dying at startup (a script starting "
                                "them needs an `if __name__ == \"__main__\":` guard)"
                            ) from None
                    replace(w, "verifier error")
            now = time.monotonic()
            for w in list(pool):
                if w.outstanding and now - w.head_started > hard_limit:
                    replace(w, "timeout")
                elif not w.ready and now - w.spawned_at > _STARTUP_TIMEOUT:
                    raise RuntimeError("reward scoring worker did not start")
        return results  # type: ignore[return-value]


def score_batch(
    items: Sequence[ScoreItem],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 2,
    soft_deadline: bool = True,
    **score_kwargs: Any,
) -> list[RewardBreakdown]:
    """Score many completions in ``workers`` processes; results come back in input order.

    An item still running after ``timeout`` seconds gets accuracy 0 and reason "timeout"
    (format is still scored). Inside a worker a SIGALRM deadline normally stops it at
    ``timeout``; if it does not (``soft_deadline=False`` or a hang in C code), the parent kills
    the worker at ``timeout + 0.5`` s and starts a new one, so the batch never hangs.
    ``score_kwargs`` are passed to ``score`` (format_weight, accuracy_weight, mode,
    answer_format). ``workers=0`` scores in this process (no hard timeout).

    Workers are started with forkserver (spawn where that is missing), so a calling script
    needs the usual ``if __name__ == "__main__":`` guard. Each call starts and stops its own
    pool (~0.3 s); use ``RewardPool`` to keep one across calls.
    """
    _check_score_kwargs(score_kwargs)
    parsed = _as_items(items)
    if not parsed:
        return []
    if workers <= 0:
        return [
            score(it.completion, it.gold, it.answer_type, choices=it.choices, timeout=timeout, **score_kwargs)
            for it in parsed
        ]
    n_workers = min(workers, len(parsed))
    with RewardPool(workers=n_workers, timeout=timeout, soft_deadline=soft_deadline, **score_kwargs) as pool:
        return pool.score(parsed)


# --------------------------------------------------------------------------------------
# Registry (open-r1 style): recipes name their rewards
# --------------------------------------------------------------------------------------


def _format_fn(
    completion: str,
    gold: str | None = None,
    answer_type: str | None = None,
    choices: list[str] | None = None,
    *,
    mode: FormatMode = "lenient",
    answer_format: AnswerFormat = "answer_tag_boxed",
) -> float:
    return format_reward(completion, mode=mode, answer_format=answer_format)


def _accuracy_fn(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    choices: list[str] | None = None,
    *,
    answer_format: AnswerFormat = "answer_tag_boxed",
    timeout: float | None = DEFAULT_TIMEOUT,
) -> float:
    return accuracy_reward(
        completion, gold, answer_type, choices=choices, answer_format=answer_format, timeout=timeout
    )[0]


def _total_fn(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    choices: list[str] | None = None,
    **cfg: Any,
) -> float:
    return score(completion, gold, answer_type, choices=choices, **cfg).total


# Unweighted "format" and "accuracy" (the trainer applies reward weights, e.g. 0.5 and 1.0);
# "total" is the pre-weighted sum for trainers that take a single reward.
REWARD_FUNCS: dict[str, Callable[..., float]] = {
    "format": _format_fn,
    "accuracy": _accuracy_fn,
    "total": _total_fn,
}

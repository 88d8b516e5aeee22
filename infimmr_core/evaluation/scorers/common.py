"""Answer extraction and comparison helpers the benchmark scorers share.

Symbolic work (latex2sympy, math-verify) runs under the rewards module's SIGALRM deadline: sympy can hang for a long
time on adversarial model output, and an evaluation must finish.
"""

from __future__ import annotations

import functools
import re

from infimmr_core.rewards import deadline, extract_answer

SYMBOLIC_TIMEOUT = 5.0  # seconds per symbolic comparison; a timeout counts as "not equal"

_ANSWER_IS_RE = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*[:：]?\s*(.+)", re.IGNORECASE)
_SHORT_RESPONSE = 40  # a one-line response this short is its own answer (MathVista's "quick extraction")


def extract_final(response: str) -> str | None:
    """The model's final answer: the last \\boxed{} in the <answer> block (or the block, or the last box anywhere),
    else the text after the last "answer is", else the whole response when it is one short line."""
    answer = extract_answer(response, "answer_tag_boxed")
    if answer is not None:
        return answer
    found = _ANSWER_IS_RE.findall(response)
    if found:
        return found[-1].strip().rstrip(".").strip() or None
    stripped = response.strip()
    return stripped if stripped and "\n" not in stripped and len(stripped) <= _SHORT_RESPONSE else None


_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")


def strip_delims(text: str) -> str:
    """Outer math delimiters, \\boxed{} and \\text{} wrappers, \\left/\\right and a trailing full stop removed."""
    s = text.strip()
    changed = True
    while changed:
        changed = False
        s = s.strip().rstrip(".").strip()
        for left, right in _DELIMS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s, changed = s[len(left): len(s) - len(right)], True
        if s.startswith("\\boxed{") and s.endswith("}"):
            s, changed = s[len("\\boxed{"): -1], True
    s = _TEXT_RE.sub(r"\1", s)
    return s.replace("\\left", "").replace("\\right", "").replace("\\!", "").strip()


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside (), [], {}: "(1,2), (3,4)" -> ["(1,2)", "(3,4)"]."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


_LETTER_RE = re.compile(r"\(?([A-Z])\)?[.:)]?")
_LETTER_TEXT_RE = re.compile(r"(?:\(([A-Za-z])\)|([A-Z])[.:)])\s+\S")
_OPTION_PREFIX_RE = re.compile(r"^(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:：]?\s*", re.I)


def letter_of(answer: str) -> str | None:
    """Option letter in "C", "(C)", "C.", "\\text{C}", "Option C", "(c)", "C. 140°"; None for anything else."""
    t = _OPTION_PREFIX_RE.sub("", strip_delims(answer).replace("*", "")).strip()
    m = _LETTER_RE.fullmatch(t)
    if m:
        return m.group(1)
    m = _LETTER_TEXT_RE.match(t)
    return (m.group(1) or m.group(2)).upper() if m else None


def letter_index(letter: str) -> int:
    return ord(letter) - ord("A")


def normalise_text(text: str) -> str:
    """Case, spaces and degree marks do not matter when comparing option texts."""
    s = strip_delims(text).lower().replace("^\\circ", "°").replace("^{\\circ}", "°").replace("\\circ", "°")
    return re.sub(r"\s+", "", s)


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FRAC_RE = re.compile(r"^([-+]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_UNIT_TAIL_RE = re.compile(r"^\s*(?:\\?%|°|\^\\circ|\^\{\\circ\}|\\circ|[A-Za-z][A-Za-z\s./^\d-]*)?\s*$")


def to_number(text: str, unit: str | None = None) -> float | None:
    """A plain number written as "1,000", "-2.5", "\\frac{1}{2}", "3/4", "50%" (-> 50), "7 years", "x = 4";
    None for anything else (expressions are compared symbolically instead)."""
    s = strip_delims(text)
    s = s.rsplit("=", 1)[-1].strip()
    if unit:
        s = s.replace(unit, "").strip()
    m = _FRAC_RE.match(s.replace(" ", ""))
    if m:
        numerator, denominator = to_number(m.group(2)), to_number(m.group(3))
        if numerator is None or not denominator:
            return None
        return (-1 if m.group(1) == "-" else 1) * numerator / denominator
    if "/" in s and s.count("/") == 1:
        top, bottom = (to_number(p) for p in s.split("/"))
        return top / bottom if top is not None and bottom else None
    m = _NUMBER_RE.match(s)
    if not m or not _UNIT_TAIL_RE.match(s[m.end():]):
        return None
    return float(m.group(0).replace(",", ""))


@functools.lru_cache(maxsize=4096)
def _latex_value(tex: str) -> complex | None:
    from latex2sympy2_extended import latex2sympy

    try:
        with deadline(SYMBOLIC_TIMEOUT):
            value = latex2sympy(tex).evalf()
            return complex(value)
    except BaseException as error:  # parse errors, free symbols, and the deadline (a BaseException)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return None


def latex_value(tex: str) -> complex | None:
    """The numeric value of a constant LaTeX expression (\\frac{25}{7}, 4\\pi, \\sqrt{2}), or None."""
    number = to_number(tex)
    return complex(number) if number is not None else _latex_value(strip_delims(tex))


@functools.lru_cache(maxsize=4096)
def latex_equivalent(gold: str, pred: str) -> bool:
    """math-verify equivalence of two LaTeX answers (sets, intervals, tuples, symbolic expressions)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    try:
        with deadline(SYMBOLIC_TIMEOUT):
            g = parse("\\boxed{" + strip_delims(gold) + "}", configs, parsing_timeout=None)
            p = parse("\\boxed{" + strip_delims(pred) + "}", configs, parsing_timeout=None)
            return bool(g and p and verify(g, p, timeout_seconds=None))
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return False

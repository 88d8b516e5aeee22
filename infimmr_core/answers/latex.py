"""Presentation that never changes an answer's meaning: math delimiters, text wrappers, spacing, case.

These are the only text clean-ups the project's own (semantic) comparison does. The official scoring policies in
`answers.official` keep their benchmarks' own clean-ups, which differ on purpose (see each module).
"""

from __future__ import annotations

import re
import unicodedata

_DELIM_PAIRS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def strip_math_delims(s: str) -> str:
    """Drop surrounding ``$..$`` / ``$$..$$`` / ``\\(..\\)`` / ``\\[..\\]``, repeatedly, so both sides compare bare."""
    s = s.strip()
    changed = True
    while changed:
        changed = False
        for left, right in _DELIM_PAIRS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)].strip()
                changed = True
    return s


_ANSWER_PHRASE_RE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is\b|[:：])\s*", re.IGNORECASE)


def drop_answer_phrase(s: str) -> str:
    """The answer inside "The answer is $\\frac{1}{2}$." (an answer block written as a sentence): "$\\frac{1}{2}$".
    Math-verify reads the math out of such a sentence too; without the words a plain number needs no math-verify."""
    s = s.strip()
    m = _ANSWER_PHRASE_RE.match(s)
    if m is None:
        return s
    rest = s[m.end() :].strip().rstrip(".").rstrip()
    return rest or s


def strip_group_braces(s: str) -> str:
    """Drop braces around the whole answer, repeatedly: ``{{7}}`` -> ``7``. A LaTeX group only scopes formatting, it
    is never printed (a set is written ``\\{1,2\\}``), and math-verify's parser grinds for seconds on deep nests."""
    s = s.strip()
    closing = _brace_pairs(s)
    lo, hi = 0, len(s) - 1
    while lo < hi and s[lo] == "{" and closing.get(lo) == hi:
        lo, hi = lo + 1, hi - 1
        while lo <= hi and s[lo].isspace():
            lo += 1
        while hi >= lo and s[hi].isspace():
            hi -= 1
    return s[lo : hi + 1]


def _brace_pairs(s: str) -> dict[int, int]:
    """Each matched ``{``'s index -> its ``}``'s, in one pass (``\\{`` and ``\\}`` are literal braces)."""
    pairs, stack, i = {}, [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mathsf|emph|mbox|operatorname)"
    r"\s*\{([^{}]*)\}"
)


def unwrap_text_cmds(s: str) -> str:
    """``\\text{C}`` -> `` C ``; innermost first, so nested wrappers unwrap too."""
    prev = None
    while prev != s:
        prev, s = s, _TEXT_CMD_RE.sub(r" \1 ", s)
    return s


def bare(s: str) -> str:
    """The answer without delimiters and text wrappers: ``$\\text{(C)}$`` -> ``(C)``."""
    return unwrap_text_cmds(strip_math_delims(s)).strip()


_LABEL_RE = re.compile(r"^\s*\$*\s*[A-Za-z][A-Za-z ]{0,30}?\s*\$*\s*=\s*")


def drop_label(answer: str) -> str:
    """The value of a labelled answer: "Area $=9 \\pi$" -> "9 \\pi", "$r=7.00$" -> "7.00" (a label is words or one
    symbol before a single "="; "x^2+y^2=49" keeps its left side)."""
    s = strip_math_delims(answer)
    if s.count("=") == 1 and _LABEL_RE.match(s):
        s = _LABEL_RE.sub("", s)
    return strip_math_delims(s.strip().strip("$"))


def norm_text(s: str) -> str:
    """Case/whitespace/punctuation-insensitive form of a free-text answer ("North-East." == "north east")."""
    s = unicodedata.normalize("NFKC", s)
    s = unwrap_text_cmds(strip_math_delims(s))
    s = s.replace("\\", " ").lower()
    s = re.sub(r"[^\w\s]", " ", s)
    return " ".join(s.split())


def norm_option(s: str) -> str:
    """Gentler normalisation for option texts: keeps signs and operators ("-1" != "1")."""
    s = unicodedata.normalize("NFKC", s)
    s = unwrap_text_cmds(strip_math_delims(s)).lower()
    s = " ".join(s.split())
    return s.rstrip(".").strip()


_INSIGNIFICANT_SPACE_RE = re.compile(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])")


def squash(tex: str) -> str:
    """Drop whitespace that cannot matter in LaTeX (not between two letters: "\\pi r")."""
    return _INSIGNIFICANT_SPACE_RE.sub("", tex.strip())


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside (), [], {}: "(1,2), (3,4)" -> ["(1,2)", "(3,4)"]; empty parts dropped."""
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

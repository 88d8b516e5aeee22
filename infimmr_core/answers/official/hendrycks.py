"""The MATH dataset's answer clean-up (Hendrycks et al., ``_strip_string``) in the two variants official scorers use.

* `PRM800K` (openai/prm800k @ 7ecc794, `grading/math_normalize.py`, the MATH-500 grader's first test): the original.
  An ``=`` is dropped only with a left side of at most two characters; ``$`` stays; an empty ``\\frac`` or
  ``\\sqrt`` argument, or several ``\\text{ `` units, make the whole clean-up fail and the answer is compared as given.
* `MATH_VISION` (mathllm/MATH-V @ a1f5cc3, `evaluation/utils.py`): ``$`` and ``\\$`` removed, the part after any
  single ``=`` or ``\\approx`` kept, everything from the first ``\\text{ `` dropped, and ``\\frac12`` repaired only
  when the string also contains ``sqrt`` (an upstream slip we keep: it decides which answers compare equal).

Both then rewrite ``\\sqrt3`` as ``\\sqrt{3}``, drop spaces, turn ``0.5`` into ``\\frac{1}{2}`` and ``a/b`` of two
integers into ``\\frac{a}{b}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


class StripFailed(ValueError):
    """The original clean-up raises here (an empty ``\\frac``/``\\sqrt`` argument, several unit markers)."""


@dataclass(frozen=True)
class StripPolicy:
    name: str
    drop_dollars: bool  # remove bare $ as well as \$
    equals: Literal["any", "short_lhs"]  # when "lhs = rhs" becomes "rhs"
    split_approx: bool  # "a \approx b" becomes "b"
    fracs_only_with_sqrt: bool  # \frac12 -> \frac{1}{2} only in strings that contain "sqrt"
    strict: bool  # malformed input raises StripFailed instead of being passed through


PRM800K = StripPolicy("prm800k", drop_dollars=False, equals="short_lhs", split_approx=False,
                      fracs_only_with_sqrt=False, strict=True)
MATH_VISION = StripPolicy("mathvision", drop_dollars=True, equals="any", split_approx=True,
                          fracs_only_with_sqrt=True, strict=False)


def _remove_right_units(s: str, policy: StripPolicy) -> str:
    if "\\text{ " not in s:
        return s
    parts = s.split("\\text{ ")
    if policy.strict and len(parts) != 2:
        raise StripFailed("several unit markers")
    return parts[0]


def _fix_sqrt(s: str, policy: StripPolicy) -> str:
    if "\\sqrt" not in s:
        return s
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        if not part and policy.strict:
            raise StripFailed("\\sqrt without an argument")
        out += "\\sqrt{" + part[0] + "}" + part[1:] if part and part[0] != "{" else "\\sqrt" + part
    return out


def _fix_fracs(s: str, policy: StripPolicy) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if not part and policy.strict:
            raise StripFailed("\\frac without arguments")
        if part and part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return s  # cannot repair: the whole string is kept as it was
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _fix_a_slash_b(s: str) -> str:
    pieces = s.split("/")
    if len(pieces) != 2:
        return s
    try:
        a, b = int(pieces[0]), int(pieces[1])
    except ValueError:
        return s
    # Only a canonical "a/b" (no spaces, signs or zeros that int() forgives) is rewritten.
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if s == f"{a}/{b}" else s


def strip_string(s: str, policy: StripPolicy) -> str:
    """``_strip_string`` under ``policy``; raises StripFailed where the strict original raises."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    if policy.drop_dollars:
        s = s.replace("$", "")
    s = _remove_right_units(s, policy)
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and (policy.equals == "any" or len(sides[0]) <= 2):
        s = sides[1]
    if policy.split_approx:
        sides = s.split("\\approx")
        if len(sides) == 2:
            s = sides[1]
    s = _fix_sqrt(s, policy)
    s = s.replace(" ", "")
    if not policy.fracs_only_with_sqrt or "sqrt" in s:
        s = _fix_fracs(s, policy)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


_WHOLE_TEXT_RE = re.compile(r"^\\text\{(?P<text>.+?)\}$")


def normalize_answer(answer: str | None) -> str | None:
    """PRM800K's ``math_normalize.normalize_answer``: unwrap a whole ``\\text{}``, then the strict clean-up; an
    answer the clean-up fails on is returned as it is (stripped)."""
    if answer is None:
        return None
    answer = answer.strip()
    try:
        m = _WHOLE_TEXT_RE.search(answer)
        if m is not None:
            answer = m.group("text").strip()
        return strip_string(answer, PRM800K)
    except StripFailed:
        return answer

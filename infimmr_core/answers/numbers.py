"""Plain numbers as people write them: signs, thousands separators, fractions, mixed numbers, percent, degrees,
currency, units, and digits in another base (``101_2``).

We parse these ourselves because math-verify reads ``1\\,000`` as 1*0 = 0, ``101_2`` as 101 and ``12\\,\\mathrm{cm}``
only by luck, and because a plain-number comparison needs no sympy at all.
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction
from typing import NamedTuple

from infimmr_core.answers.latex import strip_math_delims, unwrap_text_cmds


class Number(NamedTuple):
    value: Fraction
    percent: bool  # written with a % sign
    latex: str  # separator/unit-free form handed to math-verify
    fraction: bool  # written as a fraction (a/b, \frac{a}{b}) or a mixed number
    unit: str  # the unit text after the number ("" when none)


_SPACING_RE = re.compile(r"\\[,;:! ]|\\q?quad|~|[\u00a0\u2009\u202f]")
_NUM_CORE_RE = re.compile(
    r"""(?P<sign>[-+])?\s*
    (?:
        (?P<whole>\d+)\s+(?P<mn>\d+)\s*/\s*(?P<md>\d+)(?![\d.])
      | \\[dt]?frac\s*\{\s*(?P<fn>\d+(?:\.\d+)?)\s*\}\s*\{\s*(?P<fd>\d+(?:\.\d+)?)\s*\}
      | \\[dt]?frac(?P<fn1>\d)(?P<fd1>\d)
      | (?P<based>\d+)_\{?(?P<base>\d{1,2})\}?(?![\w{])
      | (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\ \d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)
        (?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?
    )""",
    re.VERBOSE,
)
_UNIT_WORD = r"[A-Za-z]+\.?(?:\s*\^\s*\{?-?\d\}?|[²³])?"
_UNIT_TAIL_RE = re.compile(rf"{_UNIT_WORD}(?:\s*(?:/|\\cdot|\s)\s*{_UNIT_WORD})*")
# Single letters that are units; any other lone letter ("2x", "2n") means the answer is not a number.
_SINGLE_LETTER_UNITS = frozenset("mgshlLKNJWVCF")
# Multi-letter words that are mathematics, not units ("2 pi" is not 2).
MATH_WORDS = frozenset(
    "sin cos tan cot sec csc log ln exp lim max min sqrt frac pi inf infty arcsin arccos arctan "
    "sinh cosh tanh det gcd lcm mod".split()
)


def is_unit_tail(s: str) -> bool:
    if not _UNIT_TAIL_RE.fullmatch(s):
        return False
    for word in re.findall(r"[A-Za-z]+", s):
        if len(word) == 1 and word not in _SINGLE_LETTER_UNITS:
            return False
        if word.lower() in MATH_WORDS:
            return False
    return True


def _in_base(digits: str, base: int) -> Fraction | None:
    if not 2 <= base <= 36:
        return None
    try:
        return Fraction(int(digits, base))
    except ValueError:  # a digit the base does not have ("29_8")
        return None


def parse_number(text: str) -> Number | None:
    """Read a plain number with optional sign, separators, %, degrees, currency and units.

    Returns None for anything else (expressions, sets, ...), which then goes to math-verify.
    """
    s = unicodedata.normalize("NFKC", text).replace("\u2212", "-")
    s = strip_math_delims(s)
    s = s.replace("{,}", ",").replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = _SPACING_RE.sub(" ", s)
    s = unwrap_text_cmds(s)
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
    if rest and not is_unit_tail(rest):
        return None
    sign = "-" if m.group("sign") == "-" else ""
    fraction = m.group("num") is None or m.group("den") is not None
    if m.group("based") is not None:
        value = _in_base(m.group("based"), int(m.group("base")))
        if value is None:
            return None
        latex, fraction = str(value), False
    elif m.group("whole") is not None:
        if int(m.group("md")) == 0:
            return None
        value = int(m.group("whole")) + Fraction(int(m.group("mn")), int(m.group("md")))
        latex = f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    else:
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
    return Number(value, percent, latex + ("\\%" if percent else ""), fraction, rest)


def numbers_match(gold: Number, pred: Number) -> bool:
    """Like math-verify, a percentage matches both its face value and its fraction: gold 50% accepts 50, 50% and
    0.5; gold 0.5 accepts 50%; gold 0.5 does not accept 50."""

    def values(n: Number) -> set[Fraction]:
        return {n.value, n.value / 100} if n.percent else {n.value}

    return bool(values(gold) & values(pred))


# How far apart two numbers must be for math-verify to call them different for sure: it compares a decimal (a sympy
# Float, 15 significant digits) with another number after rounding both to 6 decimal places, so values within 1e-6 of
# each other (plus the Float's own representation error, relative 1e-15) may round equal. The margin is kept 1e3
# times wider than that error on purpose.
_ROUNDING_MARGIN = Fraction(2, 10**6)
_RELATIVE_MARGIN = Fraction(1, 10**12)


def exact_verdict(gold: Number, pred: Number) -> bool | None:
    """Math-verify's verdict on two plain numbers, decided without it: True when they match (`numbers_match`), False
    when math-verify would certainly call them different, None when only math-verify can tell (a percent sign, or a
    decimal within its rounding of the other number: 0.333333 and 1/3 round equal there).

    Exact rationals (no decimal point on either side) are compared exactly by math-verify too, so any difference
    decides; `compare_math` hands math-verify these numbers' `latex` forms, which is what this mirrors."""
    if numbers_match(gold, pred):
        return True
    if gold.percent or pred.percent:
        return None
    if "." not in gold.latex and "." not in pred.latex:
        return False
    margin = _ROUNDING_MARGIN + _RELATIVE_MARGIN * max(abs(gold.value), abs(pred.value))
    return False if abs(gold.value - pred.value) > margin else None


_TOWER_RE = re.compile(r"\d+(?:\^\{?\d+)+\}*")


def tower_digits(text: str) -> float | None:
    """How many decimal digits a power tower of plain integers has (``9^{9^{9^9}}``: infinitely many, as far as
    anyone can compute), None for anything else. Sympy would try to evaluate such a number and never finish."""
    s = re.sub(r"\s+", "", text)
    if not _TOWER_RE.fullmatch(s) or s.count("{") != s.count("}"):
        return None
    *bases, top = (int(n) for n in re.findall(r"\d+", s))
    value: int | None = top  # exact while it is small, None once only its size matters
    digits = math.log10(top) if top else 0.0
    for base in reversed(bases):
        if base <= 1:  # 0^0 = 1, 0^v = 0, 1^v = 1
            value, digits = (base if value != 0 else 1), 0.0
            continue
        if value is None:
            return math.inf
        digits = value * math.log10(base)
        value = base**value if digits < 10_000 else None
    return digits


# Length units to metres; an area or volume unit is the same word with ^2 / ^3.
_LENGTH = {"mm": Fraction(1, 1000), "cm": Fraction(1, 100), "m": Fraction(1), "km": Fraction(1000),
           "metre": Fraction(1), "metres": Fraction(1), "meter": Fraction(1), "meters": Fraction(1)}
_UNIT_POWER_RE = re.compile(r"^([A-Za-z]+)\s*(?:\^\s*\{?(\d)\}?|([²³]))?$")


def _in_metres(unit: str) -> tuple[Fraction, int] | None:
    m = _UNIT_POWER_RE.match(unit.strip())
    if not m or m.group(1) not in _LENGTH:
        return None
    power = int(m.group(2)) if m.group(2) else {"²": 2, "³": 3}.get(m.group(3) or "", 1)
    return _LENGTH[m.group(1)] ** power, power


def same_quantity(gold: Number, pred: Number) -> bool:
    """The same number, or the same length/area/volume in another unit ("0.5 m" and "50 cm"); a unit on one side
    only is the unit the question asked for."""
    g_unit, p_unit = _in_metres(gold.unit), _in_metres(pred.unit)
    if g_unit and p_unit:
        if g_unit[1] != p_unit[1]:
            return False
        return gold.value * g_unit[0] == pred.value * p_unit[0]
    return numbers_match(gold, pred)


# Words that are units wherever they stand; a single letter (m, s, g, ...) is a unit only inside \text{} or
# \mathrm{}, since "4t" and "x+4s" are mathematics.
UNIT_WORDS = frozenset(
    "mm cm km metre metres meter meters kg mg min mins hr hrs hour hours sec secs second seconds minute minutes day "
    "days week weeks month months year years unit units sq deg degree degrees rad radian radians inch inches ft feet "
    "foot yd yard yards mile miles mph kmh ml mL Pa Hz mol dollar dollars cent cents percent".split()
)
_WRAPPED_UNIT_RE = re.compile(r"\\(?:text|mathrm|mbox|textrm)\s*\{\s*~?\s*([A-Za-z]+\.?)\s*\}\s*(\^\s*\{?\d\}?)?\s*$")
_BARE_UNIT_RE = re.compile(r"(?<![A-Za-z\\])([A-Za-z]+)\s*(\^\s*\{?\d\}?)?\s*$")


def strip_unit(text: str) -> str:
    """``text`` without a trailing unit: ``9\\pi \\mathrm{cm}^{2}`` -> ``9\\pi``, ``2\\pi\\text{ s}`` -> ``2\\pi``;
    variables stay (``x+4t``). Units after a plain number are `parse_number`'s job."""
    s = text.rstrip()
    m = _WRAPPED_UNIT_RE.search(s)
    if m is None:
        m = _BARE_UNIT_RE.search(s)
        if m is not None and m.group(1) not in UNIT_WORDS:
            m = None
    if m is None or not s[: m.start()].strip():
        return text
    return s[: m.start()].rstrip().rstrip("~").rstrip()


def parse_bearing(text: str) -> tuple[str, Fraction, str] | None:
    """A compass bearing "N 34° W" as (N, 34, W); None for anything else."""
    m = _BEARING_RE.match(strip_math_delims(text).strip())
    return (m.group(1), Fraction(m.group(2)), m.group(3)) if m else None


_BEARING_RE = re.compile(r"^([NS])\s*(\d+(?:\.\d+)?)\s*(?:°|\^\s*\{?\\circ\}?)?\s*([EW])$")


def is_plain_number(text: str) -> bool:
    """A decimal number, maybe with sign, separators, % or degrees, and nothing else (no fraction, no unit)."""
    number = parse_number(text)
    return number is not None and not number.fraction and not number.unit

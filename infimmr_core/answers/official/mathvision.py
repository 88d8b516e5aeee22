"""MATH-Vision's official scoring (mathllm/MATH-V @ a1f5cc3, `evaluation/evaluate.py` and `evaluation/utils.py`).

`extract` is `evaluate()`'s answer extraction from the whole response: a response ending " C." or starting "C\\n"
is the letter; a number after the last "is " is taken as it is; without a box, the text after the last "the (final,
correct) answer is" / "the answer should be" up to the end of its line or sentence; with several boxes, the last.
`find_math_answer` then lower-cases, takes ``oxed{...}`` up to the last ``}``, keeps what follows the last ``=`` and
``\\approx``, drops units, degrees and spaces and applies the MATH-Vision variant of the MATH clean-up.

`is_equal` lower-cases both sides, compares the strings, then tuples/lists element by element (each element's value
rounded to 2 decimals), then the values of both sides, rounded to 2 decimals: the official code evaluates
``str(latex2sympy(x))`` (latex2sympy2 1.9, whose reading of LaTeX `parse_latex` reproduces) as Python with the `math`
module's names, so only what that can evaluate has a value (``pi`` and ``e`` do; ``E``, ``I``, ``oo``, ``Abs``,
symbols and sets do not). We walk the sympy tree with the same rules instead of calling ``eval``. A response is correct
when it equals the gold letter or the gold option's raw text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from infimmr_core.answers.official.hendrycks import MATH_VISION, strip_string
from infimmr_core.answers.official.verdict import Official, python_float_ok

_FLAGS = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")
_BOXED_RE = re.compile("oxed{(.*)}", flags=re.S)
# Replacements of find_math_answer, in its order (each applied to the whole string).
_FIND_REPLACEMENTS = (
    (" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
    ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""),
    ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""), ("{units}", ""), ("units", ""), ("{km}", ""), ("km", ""),
)
_OPTION_UNWRAP = tuple((f"({c})", c) for c in "abcde") + tuple((f"{{{c}}}", c) for c in "abcde")
MAX_EXPONENT = 10_000  # a larger power would hang Python as it hangs the official eval; we call it unevaluable


def find_math_answer(s: str) -> str:
    s = s.lower()
    if "{}" in s:
        s = s.replace("{}", "")
    boxed = _BOXED_RE.findall(s)
    ans = boxed[-1] if boxed else s
    close, open_ = ans.find("}"), ans.find("{")
    if close != -1 and (open_ == -1 or close < open_):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1]
    ans = ans.split("\\approx")[-1]
    for old, new in _FIND_REPLACEMENTS:
        ans = ans.replace(old, new)
    return strip_string(ans, MATH_VISION)


def extract(response: str) -> str:
    """`evaluate()`'s model_answer for a response (regenerated, as the released script does)."""
    answer = response.strip()
    for c in "ABCDE":
        if (answer.endswith(f" {c}.") or answer.endswith(f" ({c}).") or answer.startswith(f"{c}\n")
                or answer.startswith(f"({c})\n") or answer.startswith(f"({c}) {c}\n")):
            answer = c
    tail = answer.split("is ")[-1].rstrip(".")
    if python_float_ok(tail):
        answer = tail
    if "oxed{" not in answer:
        for flag in _FLAGS:
            for variant in (flag, flag.replace("the", "The")):
                before = answer
                answer = answer.split(variant)[-1].strip()
                if variant in before:
                    answer = answer.split("\n")[0].split(". ")[0]
    elif answer.count("oxed{") > 1:
        answer = "\\boxed{" + answer.split("oxed{")[-1]
    answer = find_math_answer(answer)
    for old, new in _OPTION_UNWRAP:
        answer = answer.replace(old, new)
    return answer.rstrip(".").lstrip(":").strip()


class Unevaluable(ValueError):
    """The official ``eval(str(expr))`` would raise (a name `math` lacks, a complex result, a set ...)."""


_MATH_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf, "nan": math.nan}


def python_value(expr: Any) -> int | float:
    """The value Python's ``eval`` gives ``str(expr)`` with `math`'s names in scope (ints stay ints)."""
    import sympy

    if isinstance(expr, sympy.Integer):
        return int(expr)
    if isinstance(expr, sympy.Rational):
        return int(expr.p) / int(expr.q)
    if isinstance(expr, sympy.Float):
        value = float(str(expr))
        return int(value) if value.is_integer() else value  # the original reads "2.0" as the integer 2
    if expr is sympy.pi:
        return math.pi
    if expr is sympy.nan:
        return math.nan
    if isinstance(expr, sympy.Symbol):
        if expr.name in _MATH_CONSTANTS:
            return _MATH_CONSTANTS[expr.name]
        raise Unevaluable(expr.name)
    if isinstance(expr, sympy.Add):
        return _checked(sum(python_value(a) for a in expr.args))
    if isinstance(expr, sympy.Mul):
        # str() prints negative powers and rational coefficients as a division, which Python then does on ints
        # exactly: (3**1008 - 1)/3**1009 is 0.33, not an overflow.
        numer, denom = [], []
        for factor in expr.args:
            if isinstance(factor, sympy.Pow) and factor.exp.is_Number and factor.exp < 0:
                denom.append(python_value(sympy.Pow(factor.base, -factor.exp, evaluate=False)))
            elif isinstance(factor, sympy.Rational) and not isinstance(factor, sympy.Integer):
                numer.append(int(factor.p))
                denom.append(int(factor.q))
            else:
                numer.append(python_value(factor))
        try:
            value = math.prod(numer)
            return _checked(value / math.prod(denom) if denom else value)
        except (OverflowError, ZeroDivisionError) as error:
            raise Unevaluable(str(error)) from error
    if isinstance(expr, sympy.Equality) and isinstance(expr.lhs, sympy.Symbol):  # it reads "x=5" as 5; it solves
        return python_value(expr.rhs)  # any other equation, and the list of solutions has no value
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        if exponent == sympy.Rational(1, 2):
            return _call("sqrt", python_value(base))
        if exponent == sympy.Rational(-1, 2):
            return _checked(1 / _call("sqrt", python_value(base)))
        b, e = python_value(base), python_value(exponent)
        if isinstance(e, (int, float)) and abs(e) > MAX_EXPONENT and abs(b) > 1:
            raise Unevaluable("power too large")
        try:
            return _checked(b**e)
        except (OverflowError, ZeroDivisionError) as error:
            raise Unevaluable(str(error)) from error
    if isinstance(expr, sympy.UnevaluatedExpr):
        return python_value(expr.args[0])
    if isinstance(expr, sympy.log) and len(expr.args) == 2:  # log(8, 2): math.log takes the base too
        value, base = (python_value(a) for a in expr.args)
        try:
            return math.log(value, base)
        except (ValueError, ZeroDivisionError) as error:
            raise Unevaluable(f"log: {error}") from error
    if isinstance(expr, sympy.Function) and len(expr.args) == 1:
        return _call(type(expr).__name__, python_value(expr.args[0]))
    raise Unevaluable(type(expr).__name__)


def _call(name: str, value: int | float) -> int | float:
    function = getattr(math, name, None)
    if name.startswith("_") or not callable(function):
        raise Unevaluable(name)
    try:
        return _checked(function(value))
    except (ValueError, TypeError, OverflowError) as error:
        raise Unevaluable(f"{name}: {error}") from error


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):  # e.g. (-8)**(1/3): round() of a complex raises in the official code
        raise Unevaluable("complex value")
    return value


_DIGIT_FRAC_RE = re.compile(r"(\d)\s*(?=\\frac)")


# What latex2sympy2 1.9 fails on (and latex2sympy2_extended reads): degrees, \boxed, the negative thin space, a
# percent sign that is bare or follows a space.
_UNREADABLE = ("\\circ", "\\boxed", "\\!")
_BARE_PERCENT_RE = re.compile(r"(?<!\\)%|\s\\%")


def _before_stray_dot(tex: str) -> str:
    """Its parser stops at a full stop that is not a decimal point ("5.so" -> "5", "\\frac{1}{2}. the" -> 1/2)."""
    for i, ch in enumerate(tex):
        if ch == "." and not (0 < i < len(tex) - 1 and tex[i - 1].isdigit() and tex[i + 1].isdigit()):
            return tex[:i]
    return tex


def _before_unmatched_brace(tex: str) -> str:
    depth = 0
    for i, ch in enumerate(tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return tex[:i]
    return tex


def parse_latex(tex: str) -> Any:
    """latex2sympy as the original latex2sympy2 (1.9) the official code uses reads ``tex``: surrounding ``$`` allowed,
    parsing stops at an unmatched ``}`` (its error recovery drops the rest), degrees are an error, ``2\\frac12`` is
    2 times 1/2, and no other normalisation; raises where it raises."""
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    from latex2sympy2_extended.latex2sympy2 import latex2sympy as parse
    from latex2sympy2_extended.math_normalization import NormalizationConfig

    tex = _before_stray_dot(_before_unmatched_brace(tex.strip())).strip()
    if len(tex) > 1 and tex[0] == tex[-1] == "$":
        tex = tex[1:-1]
    if len(tex) > 1 and tex[0] == "{" and tex[-1] == "}" and _before_unmatched_brace(tex[1:-1]) == tex[1:-1]:
        tex = tex[1:-1]  # a group, not a set
    if not tex.isascii() or any(mark in tex for mark in _UNREADABLE) or _BARE_PERCENT_RE.search(tex):
        raise Unevaluable(f"latex2sympy2 1.9 cannot read {tex!r}")
    tex = _DIGIT_FRAC_RE.sub(r"\1\\cdot ", tex.replace("\\displaystyle", ""))
    return parse(tex, normalization_config=NormalizationConfig(
        basic_latex=False, units=False, malformed_operators=False, nits=False, boxed="none", equations=False,
    ), conversion_config=ConversionConfig(interpret_as_mixed_fractions=False, lowercase_symbols=False))


def value_of(tex: str) -> int | float:
    """``round(eval(str(latex2sympy(tex))), 2)``; raises where the official code raises."""
    try:
        expr = parse_latex(tex)
    except Unevaluable:
        raise
    except Exception as error:  # the parser's own errors are many and untyped
        raise Unevaluable(f"latex2sympy: {error}") from error
    return round(python_value(expr), 2)


def eval_tuple(s: str) -> str:
    """`eval_tuple`: "(a,b)" / "[a,b]" with each element replaced by its value to 2 decimals (elements holding
    "infty", and "a"/"-a", kept); anything else, or any failure, leaves the string as it is."""
    parts = s[1:-1].split(",")
    if not s or len(parts) < 2 or (s[0], s[-1]) not in (("(", ")"), ("[", "]")):
        return s
    try:
        values = [part if "infty" in part or part in ("a", "-a") else str(value_of(part)) for part in parts]
    except Unevaluable:
        return s
    return s[0] + ",".join(values) + s[-1]


def is_equal(asw: str, gt_asw: str) -> bool:
    asw, gt_asw = asw.lower(), gt_asw.lower()
    if not asw.replace(" ", "") or not gt_asw.replace(" ", ""):
        return False
    if gt_asw.strip() == asw.strip():
        return True
    asw, gt_asw = eval_tuple(asw), eval_tuple(gt_asw)
    if gt_asw == asw:
        return True
    try:
        return value_of(gt_asw) == value_of(asw)
    except Unevaluable:
        return False


def verdict(response: str, gold: str, options: Sequence[str]) -> Official:
    """`evaluate()`: the extracted answer equals the gold (a letter, or the free-form answer) or, for a
    multiple-choice question, the gold option's raw text."""
    answer = extract(response)
    index = ord(gold) - ord("A") if len(gold) == 1 else -1
    option = options[index] if 0 <= index < len(options) else ""
    return Official(is_equal(gold, answer) or is_equal(option, answer), answer)

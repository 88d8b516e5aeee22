"""OlympiadBench's official judge (OpenBMB/OlympiadBench @ ba5b26a, `inference/code/math_judger.py` as
`inference/judge.py` calls it).

`judge.py` takes the text after the last "So the final answer is" on its line (else the whole output) and calls
``MathJudger.judge(model_answer, gold, precision)``: the **model answer is the first argument**, the position the
judge's comments call the ground truth. So the x/100 and x*100 percentage allowance applies to the model's number, and
a precision list is consumed in the model answer's order. The row's ``error`` is the precision (a comma list for
several answers, empty parts 1e-8) except for Tuple answers, which always use 1e-8.

`judge`: every ``\\boxed{}`` of each side, comma-joined (no box: the ``$...$`` of the last line, else the text); the
part after ``\\in ``; ``\\left``/``\\right``, ``$``, ``%`` and degree marks dropped, ``\\approx`` read as ``=``;
equal strings are equal; otherwise both sides are split on top-level commas (``\\pm`` gives two answers) and paired
without order, each pair equal when it is the same string, the same interval, numbers within the precision, the same
expression (for expressions only the text after the **first** ``=`` is compared, and two equations never pass this
test), or equations whose sides' differences divide to a non-zero integer.

The official code parses LaTeX with sympy's ``parse_latex``; we use latex2sympy2 with its case folding and
mixed-fraction reading switched off, which reads the same on the forms the released examples use.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

from infimmr_core.answers.official.verdict import Official

DEFAULT_PRECISION = 1e-8
_SPECIAL = (
    ("\\left", ""), ("\\right", ""), ("∶", ":"), ("，", ","), ("$", ""), ("\\approx", "="), ("\\simeq", "="),
    ("\\sim", "="), ("^\\prime", "'"), ("^{\\prime}", "'"), ("^\\circ", ""), ("%", ""),
)
_STRIP_CHARS = "\n$,.:;^_=+`!@#$%^&*~，。"
_MATHRM_RE = re.compile(r"\\(?:mathrm|mathbf)\{~?([^}]*)\}")
_CHINESE_RE = re.compile(r"[\u4e00-\u9fff]+")
_DOLLAR_RE = re.compile(r"\$(.*?)\$")
_FINAL_EN_RE = re.compile(r"So the final answer is (.*)")
_FINAL_ZH_RE = re.compile(r"所以最终答案是(.*)")
MAX_EXPONENT = 1000  # the official can_compute_power threshold
_SUBSCRIPT_COMMAND_RE = re.compile(r"_\{\s*\\([A-Za-z]+)\s*\}")
_UNPARSABLE_MARKS = ("\\cup", "\\{", "\\%")


class Mismatched(ValueError):
    """A ``\\boxed{`` whose brace never closes: the official preprocessing raises and the judge says False."""


def extract(output: str, *, chinese: bool = False) -> str:
    """judge.py's `extract_answer` (the non-DeepSeek branch)."""
    matches = (_FINAL_ZH_RE if chinese else _FINAL_EN_RE).findall(output)
    return matches[-1].strip() if matches else output


def boxed_or_last_line(text: str) -> str:
    """Every ``\\boxed{...}`` (nested ones too), each followed by a comma; else the last line's ``$...$`` parts;
    else the text. Braces are counted without regard to backslashes, as upstream."""
    results = ""
    for m in re.finditer(r"\\boxed{", text):
        end, depth = m.end(), 1
        while depth > 0 and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        if depth:
            raise Mismatched("mismatched braces in a \\boxed{}")
        results += text[m.end() : end - 1] + ","
    if results:
        return results
    found = _DOLLAR_RE.findall(text.strip().split("\n")[-1])
    return "".join(part + "," for part in found) if found else text


def clean(expression: str) -> str:
    if "\\in " in expression:
        expression = expression.split("\\in ")[1]
    for old, new in _SPECIAL:
        expression = expression.replace(old, new)
    expression = expression.strip(_STRIP_CHARS)
    return _MATHRM_RE.sub(r"\1", expression)


def split_by_comma(expr: str) -> list[str]:
    """Top-level comma split on ( ) and [ ] only; a trailing empty part is dropped, inner empty parts are kept."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(expr[start:i].strip())
            start = i + 1
    if start < len(expr):
        parts.append(expr[start:].strip())
    return parts


def plus_minus(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        out += [part.replace("\\pm", "+"), part.replace("\\pm", "-")] if "\\pm" in part else [part]
    return out


@functools.lru_cache(maxsize=4096)
def parse_latex(tex: str) -> Any:
    """The stand-in for sympy's ``parse_latex``: symbols keep their case, ``2\\frac12`` is a product."""
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy

    import sympy

    if any(mark in tex for mark in _UNPARSABLE_MARKS):
        raise ValueError(f"sympy's parse_latex cannot read {tex!r}")
    config = ConversionConfig(interpret_as_mixed_fractions=False, lowercase_symbols=False, interpret_contains_as_eq=False)
    try:
        expr = latex2sympy(tex, conversion_config=config)
    except Exception:
        # sympy's grammar reads any command in a subscript as its name (R_{\odot} -> R_odot); latex2sympy refuses.
        plain = _SUBSCRIPT_COMMAND_RE.sub(r"_{\1}", tex)
        if plain == tex:
            raise
        expr = latex2sympy(plain, conversion_config=config)
    # latex2sympy reads intervals, tuples, sets and unions; sympy's parse_latex fails on every one of them, so the
    # official judge never compares them as expressions (a known limit we keep).
    if isinstance(expr, (sympy.Tuple, sympy.Set, tuple, list, set)):
        raise ValueError(f"sympy's parse_latex cannot read {tex!r}")
    return expr


class Judge:
    """One judgement: `MathJudger` keeps the current pair's precision on the instance, so does this."""

    def __init__(self, precision: float | list[float]):
        self.precisions = list(precision) if isinstance(precision, list) else [precision]
        self.precision = DEFAULT_PRECISION

    def judge(self, expression1: str, expression2: str) -> bool:
        try:
            e1, e2 = (clean(boxed_or_last_line(e)) for e in (expression1, expression2))
        except Mismatched:
            return False
        if e1 == e2:
            return True
        list1 = plus_minus(split_by_comma(_CHINESE_RE.sub("", e1)))
        list2 = plus_minus(split_by_comma(_CHINESE_RE.sub("", e2)))
        precisions = self.precisions * len(list1) if len(self.precisions) <= 1 else self.precisions
        if len(list1) != len(list2):
            return False
        # Upstream's pairing loop, kept as is: it walks list1 round-robin and removes matched items (and the
        # matched precision) by value, so with repeated values or a precision list the order matters.
        idx = -1
        while list1:
            idx = (idx + 1) % len(list1)
            item1 = list1[idx]
            self.precision = precisions[idx]
            for item2 in list2:
                if self.is_equal(item1, item2):
                    list1.remove(item1)
                    list2.remove(item2)
                    precisions.remove(self.precision)
                    break
            else:
                return False
        return True

    def is_equal(self, e1: str, e2: str) -> bool:
        if e1 == e2 and e1 != "" and e2 != "":
            return True
        if _is_interval(e1) and _is_interval(e2):
            try:
                if self.interval_equal(e1, e2):
                    return True
            except Exception:
                return False
        for test in (self.numerical_equal, self._expression_test, self.equation_equal):
            try:
                if test(e1, e2):
                    return True
            except Exception:
                pass
        return False

    def numerical_equal(self, e1: str, e2: str) -> bool:
        reference, prediction = float(e1), float(e2)
        return any(abs(x - prediction) <= self.precision * 1.01 for x in (reference / 100, reference, reference * 100))

    def _expression_test(self, e1: str, e2: str) -> bool:
        return self.expression_equal(e1, e2) and not ("=" in e1 and "=" in e2)

    def expression_equal(self, e1: str, e2: str) -> bool:
        import sympy

        s1, s2 = (sympy.sympify(parse_latex(_after_first_equals(e))) for e in (e1, e2))
        if s1 == s2:
            return True
        s1, s2 = _sub_pi(s1), _sub_pi(s2)
        has1, has2 = s1.has(sympy.Symbol), s2.has(sympy.Symbol)
        if has1 != has2:
            return False
        if not has1:
            try:
                if not (_can_compute_power(s1) and _can_compute_power(s2)):
                    return False
                return bool(abs(s1.evalf() - s2.evalf()) <= self.precision * 1.01)
            except Exception:
                return False
        try:
            close = abs(sympy.simplify(s1 - s2).evalf()) < 1e-3
        except Exception:
            return False
        # Upstream returns this comparison unevaluated; one that stays symbolic raises where the caller tests it.
        return bool(close)

    def equation_equal(self, e1: str, e2: str) -> bool:
        import sympy

        d1, d2 = _moved_to_left(e1), _moved_to_left(e2)
        q1, q2 = sympy.simplify(d1 / d2), sympy.simplify(d2 / d1)
        return bool((q1.is_Integer and q1 != 0) or (q2.is_Integer and q2 != 0))

    def interval_equal(self, e1: str, e2: str) -> bool:
        if e1 == e2:
            return True
        pieces1, pieces2 = e1.split("\\cup"), e2.split("\\cup")
        if len(pieces1) != len(pieces2):
            return False
        for a, b in zip(pieces1, pieces2):
            if a[0] != b[0] or a[-1] != b[-1]:
                return False
            for x, y in zip(a.strip("[]()").split(","), b.strip("[]()").split(",")):
                if not self.expression_equal(x, y):
                    return False
        return True


def _is_interval(e: str) -> bool:
    return e.startswith(("(", "[")) and e.endswith((")", "]"))


def _after_first_equals(expression: str) -> str:
    return (expression.split("=")[1] if "=" in expression else expression).strip()


def _sub_pi(expr: Any) -> Any:
    import sympy

    # parse_latex reads \pi as the symbol "pi", which the official code replaces by math.pi; latex2sympy gives
    # sympy's pi, which must be a number in the same way.
    return expr.subs({sympy.Symbol("pi"): math.pi, sympy.pi: math.pi})


def _can_compute_power(expr: Any) -> bool:
    import sympy

    if not isinstance(expr, sympy.Pow):
        return True
    base, exponent = expr.as_base_exp()
    if not (base.is_number and exponent.is_number):
        return False
    return bool(abs(exponent.evalf()) <= MAX_EXPONENT)


def _moved_to_left(equation: str) -> Any:
    import sympy

    lhs, rhs = equation.split("=")
    relation = sympy.Eq(parse_latex(lhs), parse_latex(rhs))  # may evaluate to True/False, which then fails
    return sympy.simplify(relation.lhs - relation.rhs)


def precision_for(error: str | None, answer_type: str | None) -> float | list[float]:
    """judge.py's precision from a row's ``error`` field (Tuple answers ignore it)."""
    if (answer_type and "Tuple" in answer_type) or not error:
        return DEFAULT_PRECISION
    if "," in error:
        return [float(p) if p else DEFAULT_PRECISION for p in error.split(",")]
    return float(error)


def verdict(response: str, gold: str, *, precision: float | list[float] = DEFAULT_PRECISION,
            chinese: bool = False) -> Official:
    """judge.py on one row: extract, then ``judge(model_answer, gold, precision)``."""
    answer = extract(response, chinese=chinese)
    correct = Judge(precision).judge(answer, gold)
    return Official(correct, answer, "" if correct else _quirk(answer, gold))


def _quirk(answer: str, gold: str) -> str:
    """The known judge bug behind a wrong verdict, if it is one of those we can recognise."""
    try:
        a, g = (clean(boxed_or_last_line(x)) for x in (answer, gold))
    except Mismatched:
        return "unbalanced braces in a \\boxed{}: the judge gives up"
    if "\\cup" in g and a.replace(" ", "") == g.replace(" ", ""):
        return "a union written with other spacing: the judge cannot parse unions"
    return ""


def judge_examples(gold: str, answers: Sequence[tuple[str, float | list[float]]]) -> list[bool]:
    """The authors' scoring-examples convention: ``judge(gold, answer, precision)`` (gold first)."""
    return [Judge(precision).judge(gold, answer) for answer, precision in answers]

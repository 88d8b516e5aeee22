"""MATH-500's grader: PRM800K's ``grade_answer(given_answer, ground_truth)`` (openai/prm800k @ 7ecc794,
`prm800k/grading/grader.py`), the grader of the paper that selected the 500 problems.

An answer is correct when (a) it equals the gold after the MATH clean-up (`hendrycks.normalize_answer`), or (b) after
the grader's own normalisation (units, "\\%", "$", "million", ``\\text{}`` and braces dropped; LaTeX rendered as text;
``7 3/4`` read as a mixed number; lower case) the two are the same string, or tuple/interval elements pair up: two
fractions must be written identically (``2/4`` is not ``1/2``), an integer gold needs an integer answer, and anything
else must simplify to a zero difference in sympy, tried only on expressions with at most two distinct letters and no
``^{`` (sympy can hang there).

Upstream renders LaTeX with pylatexenc; `latex_to_text` reproduces its output for the commands answers use, including
its quirks (``\\frac{1+x}{2}`` -> ``1+x/2``, ``\\mbox{}`` and ``\\ne`` render as nothing, ``\\binom{5}{2}`` as ``52``).
"""

from __future__ import annotations

import re
import unicodedata

from infimmr_core.answers.official.hendrycks import normalize_answer
from infimmr_core.answers.official.verdict import Official, python_float_ok

_UNITS = ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month", "year",
          "foot", "feet", "inch", "yard")
_UNIT_RES = tuple(re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNITS)
_WHOLE_TEXT_RE = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_BAD_SUBSTRINGS = ("^{", "^(")
_BAD_RES = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_TUPLE_CHARS = "()[]"
_FRAC_RE = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
_COMMAS_RE = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_MIXED_RE = re.compile(r"([0-9]) +([0-9])")

# --- LaTeX rendered as text, as pylatexenc's LatexNodes2Text does -----------------------------------------------------

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "ϕ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_SYMBOLS = {
    **_GREEK, "infty": "∞", "cdot": "·", "times": "×", "cup": "∪", "cap": "∩", "le": "≤", "leq": "≤", "ge": "≥",
    "geq": "≥", "neq": "≠", "pm": "±", "mp": "∓", "circ": "∘", "approx": "≈", "to": "→", "rightarrow": "→",
    "leftarrow": "←", "Rightarrow": "⇒", "in": "∈", "emptyset": "∅", "ldots": "…", "dots": "…", "cdots": "⋯",
    "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉", "angle": "∠", "equiv": "≡", "mid": "|", "vert": "|",
    "lvert": "|", "rvert": "|", "subset": "⊂", "div": "÷", "sim": "∼", "perp": "⊥", "parallel": "∥", "cong": "≅",
    "prime": "'", "langle": "⟨", "rangle": "⟩", "dagger": "†", "textdollar": "$", "quad": "  ", "qquad": "    ",
    **{name: name for name in ("sin", "cos", "tan", "log", "ln", "exp", "max", "min", "lim", "arcsin", "arccos",
                               "arctan", "sinh", "cosh", "tanh")},
}
_CONTROL_SYMBOLS = {",": " ", ";": " ", " ": " ", ":": " ", "!": "", "%": "%", "$": "$", "{": "{", "}": "}",
                    "_": "_", "&": "&", "#": "#", "\\": "\n", "|": ""}
_ONE_ARG = frozenset("text textbf textit textrm textsf textnormal operatorname hbox mathrm emph boxed underline "
                     "overline overrightarrow widehat".split())
_DROPPED_ARG = frozenset(("mbox", "texttt"))
_ACCENTS = {"vec": "\u20d7", "hat": "\u0302", "tilde": "\u0303", "bar": "\u0305", "dot": "\u0307", "ddot": "\u0308"}
_DOUBLE_STRUCK = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ"}
_STYLED = {"mathbf": "MATHEMATICAL BOLD", "mathit": "MATHEMATICAL ITALIC", "mathcal": "MATHEMATICAL SCRIPT",
           "mathsf": "MATHEMATICAL SANS-SERIF"}


class _Reader:
    def __init__(self, text: str):
        self.text, self.i = text, 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek().isspace():
            self.i += 1

    def command(self) -> str:
        """The name after a backslash (letters, or one other character); a control word eats the spaces after it."""
        self.i += 1
        start = self.i
        while self.peek().isalpha():
            self.i += 1
        if self.i == start:
            self.i += 1 if self.i < len(self.text) else 0
            return self.text[start : self.i]
        name = self.text[start : self.i]
        self.skip_space()
        return name

    def argument(self) -> str:
        """One macro argument: a {group} or a single token, rendered."""
        self.skip_space()
        if self.peek() == "{":
            return self.group()
        if self.peek() == "\\":
            return self.node()
        ch = self.peek()
        self.i += 1 if ch else 0
        return ch

    def optional(self) -> None:
        if self.peek() == "[":
            depth = 0
            while self.i < len(self.text):
                depth += {"[": 1, "]": -1}.get(self.text[self.i], 0)
                self.i += 1
                if depth == 0:
                    return

    def group(self) -> str:
        self.i += 1  # "{"
        out = []
        while self.i < len(self.text) and self.peek() != "}":
            out.append(self.node())
        self.i += 1  # "}"
        return "".join(out)

    def environment(self) -> str:
        name = self.group()
        body_start, end = self.i, self.text.find("\\end{" + name + "}", self.i)
        end = len(self.text) if end < 0 else end
        body = self.text[body_start:end]
        self.i = min(len(self.text), end + len("\\end{" + name + "}"))
        rows = [latex_to_text(row.replace("&", " ")) for row in body.split("\\\\")]
        return "[ " + "; ".join(rows) + " ]" if name.endswith("matrix") else "".join(rows)

    def node(self) -> str:
        ch = self.peek()
        if ch == "{":
            return self.group()
        if ch == "~":
            self.i += 1
            return "\xa0"
        if ch != "\\":
            self.i += 1
            return ch
        name = self.command()
        if name in _CONTROL_SYMBOLS:
            return _CONTROL_SYMBOLS[name]
        if name == "begin":
            return self.environment()
        if name == "frac":
            top = self.argument()
            return top + "/" + self.argument()
        if name == "binom":
            top = self.argument()
            return top + self.argument()
        if name == "sqrt":
            self.optional()
            return "√(" + self.argument() + ")"
        if name in _ONE_ARG:
            return self.argument()
        if name in _DROPPED_ARG:
            self.argument()
            return ""
        if name in _ACCENTS:
            return self.argument() + _ACCENTS[name]
        if name == "mathbb":
            return "".join(_DOUBLE_STRUCK.get(c, c) for c in self.argument())
        if name in _STYLED:
            return "".join(_styled(_STYLED[name], c) for c in self.argument())
        return _SYMBOLS.get(name, "")  # pylatexenc renders commands it does not know as nothing


def _styled(style: str, ch: str) -> str:
    kind = "CAPITAL" if ch.isupper() else "SMALL"
    try:
        return unicodedata.lookup(f"{style} {kind} {ch.upper()}")
    except KeyError:
        return ch


def latex_to_text(latex: str) -> str:
    reader = _Reader(latex)
    out = []
    while reader.i < len(latex):
        if reader.peek() == "}":  # an unmatched closing brace renders as nothing
            reader.i += 1
            continue
        out.append(reader.node())
    return "".join(out)


# --- grader.py --------------------------------------------------------------------------------------------------------


def _parse_latex(expr: str) -> str:
    expr = expr.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    expr = latex_to_text(expr)
    for old, new in (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*")):
        expr = expr.replace(old, new)
    return expr.strip()


def _is_int(x: float) -> bool:
    try:
        return abs(x - int(round(x))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _strip_properly_formatted_commas(expr: str) -> str:
    while True:
        stripped = _COMMAS_RE.sub(r"\1\3\4", expr)
        if stripped == expr:
            return stripped
        expr = stripped


def _str_is_int(x: str) -> bool:
    try:
        value = float(_strip_properly_formatted_commas(x))
        return abs(value - int(round(value))) <= 1e-7
    except (ValueError, OverflowError):
        return False


def normalize(expr: str | None) -> str | None:
    """grader.py's ``_normalize``."""
    if expr is None:
        return None
    m = _WHOLE_TEXT_RE.search(expr)
    if m is not None:
        expr = m.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for unit in _UNIT_RES:
        expr = unit.sub("", expr)
    expr = re.sub(r"\^ *\\circ", "", expr)
    if len(expr) > 0 and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = re.sub(r",\\! *", "", expr)
    if python_float_ok(expr) and _is_int(float(expr)):
        expr = str(int(round(float(expr))))
    if "\\" in expr:
        try:
            expr = _parse_latex(expr)
        except Exception:  # upstream swallows any rendering error and goes on with the LaTeX
            pass
    expr = re.sub("- *", "-", expr)
    expr = _MIXED_RE.sub(r"\1+\2", expr)
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(expr):
        expr = str(int(float(expr.replace(",", ""))))
    return expr


def _should_allow_eval(expr: str) -> bool:
    letters = {c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}
    if len(letters) > 2:
        return False
    if any(bad in expr for bad in _BAD_SUBSTRINGS) or any(bad.search(expr) for bad in _BAD_RES):
        return False
    # Not upstream: sympy's parser evaluates Python, and two letters cannot spell a name that reaches anything
    # dangerous, except through dunder attributes.
    return "__" not in expr


def _equal_under_sympy(gold: str, given: str) -> bool:
    expr = f"({gold})-({given})"
    if not _should_allow_eval(expr):
        return False
    try:
        import sympy
        from sympy.parsing import sympy_parser

        parsed = sympy_parser.parse_expr(
            expr.replace("^", "**"),
            transformations=sympy_parser.standard_transformations + (sympy_parser.implicit_multiplication_application,),
        )
        return bool(sympy.simplify(parsed) == 0)
    except Exception:  # upstream: any parse or simplify failure is "not equal"
        return False


def split_tuple(expr: str) -> list[str]:
    expr = _strip_properly_formatted_commas(expr)
    if not expr:
        return []
    if (len(expr) > 2 and expr[0] in _TUPLE_CHARS and expr[-1] in _TUPLE_CHARS
            and all(ch not in expr[1:-1] for ch in _TUPLE_CHARS)):
        return [elem.strip() for elem in expr[1:-1].split(",")]
    return [expr]


def grade_answer(given: str | None, gold: str) -> bool:
    if given is None:
        return False
    if normalize_answer(gold) == normalize_answer(given):
        return True
    gold_n, given_n = normalize(gold), normalize(given)
    if gold_n is None:
        return False
    if gold_n == given_n:
        return True
    if not given_n:
        return False
    gold_elems, given_elems = split_tuple(gold_n), split_tuple(given_n)
    if len(gold_elems) > 1 and (gold_n[0] != given_n[0] or gold_n[-1] != given_n[-1]):
        return False
    if len(gold_elems) != len(given_elems):
        return False
    for g, p in zip(gold_elems, given_elems):
        if _FRAC_RE.search(g) and _FRAC_RE.search(p):
            # unreduced fractions must not pass as equal, so no simplification between two fractions
            ok = g == p
        elif _str_is_int(g) != _str_is_int(p):
            ok = False  # an integer gold needs an integer answer, compared strictly
        else:
            ok = _equal_under_sympy(g, p)
        if not ok:
            return False
    return True


def verdict(answer: str | None, gold: str) -> Official:
    return Official(grade_answer(answer, gold), answer)

"""The symbolic back end of the semantic comparison: math-verify.

It is imported lazily (sympy, an ANTLR parser: ~0.5 s). Nothing here sets a timeout: callers run symbolic work
under `rewards.deadline`, because math-verify's own `signal.alarm` is whole seconds, cannot be nested and reports a
timeout as a plain mismatch.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from infimmr_core.answers.latex import squash

_log = logging.getLogger(__name__)


class _TimeoutWarningFilter(logging.Filter):
    # We disable math-verify's timeouts on purpose (see the module docstring); its warning says to add our own,
    # which callers do, so it is noise.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


@functools.cache
def math_verify() -> dict[str, Any]:
    """math-verify's parse/verify, the extraction config we use, and the sympy types a parse may yield."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify
    from sympy import Basic, MatrixBase

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_TimeoutWarningFilter())
    return {
        "parse": parse,
        "verify": verify,
        # units=False: math-verify's unit clean-up deletes the letters t, m, s, h, d, g, l and c after a number, so
        # "x+4t" would read as x+4. Units are dropped by `numbers.strip_unit` instead, which knows words from variables.
        "config": [LatexExtractionConfig(boxed_match_priority=0, normalization_config=NormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False))],
        "sympy_types": (Basic, MatrixBase),
    }


@functools.lru_cache(maxsize=8192)
def mv_parse(tex: str) -> tuple:
    """Sympy objects math-verify reads from ``tex`` (wrapped in a box); strings are dropped.

    Only sympy results are kept because math-verify compares its string fallbacks with plain
    string equality, so garbage gold == the same garbage prediction would score 1.
    Cached: in GRPO every gold (and many answers) repeats once per group member.
    """
    mv = math_verify()
    parsed = mv["parse"]("\\boxed{" + tex + "}", mv["config"], parsing_timeout=None)
    return tuple(x for x in parsed if isinstance(x, mv["sympy_types"]))


def mv_compare(gold_tex: str, pred_tex: str, *, constant_gold: bool = False) -> tuple[float, str]:
    """(1.0, "") when math-verify finds the two equivalent, else (0.0, reason): "unparsable gold", "mismatch" or
    "verifier error" (math-verify raised on every pairing it tried)."""
    gold_objs = mv_parse(gold_tex)
    if constant_gold:
        # A numeric gold that reads as symbols ("abc" -> a*b*c) is a data error, not an answer.
        gold_objs = tuple(g for g in gold_objs if not getattr(g, "free_symbols", None))
    if not gold_objs:
        return 0.0, "unparsable gold"
    # Same LaTeX as a gold that parses: equal without another ~10-50 ms ANTLR parse. This is
    # the common case in GRPO, where many group members write the answer exactly like the key.
    if squash(gold_tex) == squash(pred_tex):
        return 1.0, ""
    pred_objs = mv_parse(pred_tex)
    if not pred_objs:
        return 0.0, "mismatch"
    verify = math_verify()["verify"]
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

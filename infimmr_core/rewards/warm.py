"""Importing this warms math-verify up: its LaTeX parser (ANTLR) and sympy's caches, ~0.4 s the first time.

The reward pool's forkserver preloads it, so every worker forked from there, including the replacement of a killed
one, starts warm instead of paying that before its first verdict. Import it nowhere else: the work is done at import.
"""

from infimmr_core.rewards.accuracy import answer_accuracy

# A sum, since plain numbers never reach math-verify (`compare_math` decides them exactly).
answer_accuracy("x+\\frac{1}{2}", "0.5+x", "expression", None, timeout=None)

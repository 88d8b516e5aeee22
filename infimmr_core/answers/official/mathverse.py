"""MathVerse's scoring rules (ZrrSkywalker/MathVerse @ 937b090, `evaluation/prompts.py` ``demo_prompt_score``).

MathVerse's official score is an LLM judge (GPT-4) reading this prompt; there is no rule-based official scorer except
``--quick_match`` (exact string equality, which the authors call "not accurate enough"). This policy is our reading of
the prompt's rules, **not the official judge**: configure `evaluation.judge` for the judged score.

* Multiple choice: "only when the model answer completely matches the standard answer": the chosen option (its
  letter, in any case, or its full text, as in the prompt's fifth example) must be the gold option; ``B:2√3`` is
  option B (second example). A gold naming two options (``C\\nD``) needs exactly those two.
* Free form: "if the meaning is expressed in the same way, it is also considered consistent, for example, 0.5m and
  50cm": the same number in compatible units, an equivalent expression or equation, or the same text; an interval
  with another bracket is different (first example), and a partial answer is different (third example).
* No answer ("null") is never consistent (fourth example).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from infimmr_core.answers.choices import letter_of, letters_in, option_index
from infimmr_core.answers.compare import compare_math
from infimmr_core.answers.latex import drop_label, norm_text, split_top_level, squash, strip_math_delims
from infimmr_core.answers.numbers import parse_bearing, parse_number, same_quantity
from infimmr_core.answers.official.verdict import Official

_INTERVAL_RE = re.compile(r"[\[(][^\[\]()]*,[^\[\]()]*[\])]")


def chosen_letters(answer: str, choices: Sequence[str]) -> frozenset[str]:
    """The option(s) an answer picks: letters ("C", "(c)", "B:2√3", "C and D") or an option's full text."""
    letter = letter_of(answer)
    if letter is not None:
        return frozenset(letter)
    index = option_index(answer, choices) if choices else None
    if index is not None:
        return frozenset("ABCDEFGH"[index])
    return letters_in(answer)


def gold_letters(gold: str, choices: Sequence[str]) -> frozenset[str]:
    index = option_index(gold, choices) if choices else None
    if index is not None:
        return frozenset("ABCDEFGH"[index])
    letter = letter_of(gold)
    return frozenset(letter) if letter is not None else letters_in(gold)


def free_form_equal(answer: str, gold: str) -> bool:
    answer, gold = (x.replace("\\left", "").replace("\\right", "") for x in (answer, gold))
    if squash(strip_math_delims(answer)) == squash(strip_math_delims(gold)):
        return True  # the same answer, written the same way
    gold_bearing, answer_bearing = parse_bearing(gold), parse_bearing(answer)
    if gold_bearing or answer_bearing:
        return gold_bearing == answer_bearing
    gold_parts, answer_parts = _INTERVAL_RE.findall(gold), _INTERVAL_RE.findall(answer)
    if len(gold_parts) > 1 or (gold_parts and len(answer_parts) > 1):
        # several intervals (domain and range, ...): every one, in order, with its own brackets
        return len(gold_parts) == len(answer_parts) and all(
            _interval_equal(a, g) for a, g in zip(answer_parts, gold_parts))
    if gold_parts:
        return len(answer_parts) == 1 and _interval_equal(answer_parts[0], gold_parts[0])
    g, a = drop_label(gold), drop_label(answer)
    g_num, a_num = parse_number(g), parse_number(a)
    if g_num is not None and a_num is not None:
        return same_quantity(g_num, a_num)
    if g_num is not None or a_num is not None:
        return False  # a number against an expression ("9" and "9x") is not the same answer
    if norm_text(g) == norm_text(a) and norm_text(g):
        return True
    return compare_math(a, g, constant_gold=False)[0] == 1.0


def _interval_equal(answer: str, gold: str) -> bool:
    if (answer[0], answer[-1]) != (gold[0], gold[-1]):
        return False
    a_ends, g_ends = split_top_level(answer[1:-1]), split_top_level(gold[1:-1])
    return len(a_ends) == len(g_ends) == 2 and all(
        compare_math(a, g, constant_gold=False)[0] == 1.0 for a, g in zip(a_ends, g_ends))


def verdict(answer: str | None, gold: str, *, multiple_choice: bool, choices: Sequence[str]) -> Official:
    if answer is None or not answer.strip() or answer.strip().lower() == "null":
        return Official(False, answer)
    if multiple_choice:
        wanted = gold_letters(gold, choices)
        if wanted:
            return Official(chosen_letters(answer, choices) == wanted, answer)
    return Official(free_form_equal(answer, gold), answer)

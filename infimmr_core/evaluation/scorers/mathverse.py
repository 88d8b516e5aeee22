"""MathVerse: its official score is an LLM judge; `official` here is our reading of the judge prompt's rules
(`answers.official.mathverse`), labelled as such, and a configured judge adds the judged score. Semantic = the option
chosen (letter or text, several letters as a set), or free-form equivalence with labels ("Area =") and units aside.
Headline = mean over the five vision versions."""

from __future__ import annotations

from infimmr_core.answers.choices import letters_in
from infimmr_core.answers.compare import compare
from infimmr_core.answers.extract import extract_final
from infimmr_core.answers.latex import drop_label
from infimmr_core.answers.numbers import parse_bearing, parse_number, same_quantity
from infimmr_core.answers.official import mathverse as official_mathverse
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import NO_ANSWER, Scorer, Verdict, from_compare, from_official


def official(item: EvalItem, response: str) -> Verdict:
    answer = extract_final(response)
    result = official_mathverse.verdict(
        answer, item.gold, multiple_choice=item.multiple_choice, choices=item.choices)
    return from_official(result.correct, answer)


def semantic(item: EvalItem, response: str) -> Verdict:
    answer = extract_final(response)
    if answer is None:
        return NO_ANSWER
    if item.multiple_choice:
        wanted = letters_in(item.gold)
        if wanted:  # several options together ("C\nD")
            ok = official_mathverse.chosen_letters(answer, item.choices) == wanted
            return Verdict(ok, answer, "" if ok else "mismatch")
        return from_compare(answer, compare(answer, item.gold, "multiple_choice", list(item.choices) or None))
    gold, value = drop_label(item.gold), drop_label(answer)
    bearing = parse_bearing(gold)
    if bearing is not None:
        ok = parse_bearing(value) == bearing
        return Verdict(ok, answer, "" if ok else "mismatch")
    g, a = parse_number(gold), parse_number(value)
    if g is not None and a is not None:
        ok = same_quantity(g, a)
        return Verdict(ok, answer, "" if ok else "mismatch")
    return from_compare(answer, compare(value, gold))


SCORER = Scorer(
    "mathverse",
    "MathVerse judge-prompt rules (evaluation/prompts.py demo_prompt_score @ 937b090) applied by rule, not the "
    "official GPT judge: option letter or full option text; free-form same meaning (0.5m = 50cm), intervals exact, "
    "partial answers wrong; headline = mean over the five vision versions",
    "semantic: option by letter or text; free-form equivalence with labels and units aside",
    official, semantic, judge_mode="verdict",
)

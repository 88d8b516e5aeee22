"""The reward benchmark's inputs and bookkeeping (benchmarks/perf/rewards.py, reward_items.py); its quick run is slow."""

from __future__ import annotations

import collections

import pytest

from benchmarks.perf import rewards
from benchmarks.perf.reward_items import GROUP, Item, build_items


def test_items_are_deterministic_and_mixed():
    items = build_items(4096, seed=0)
    assert items == build_items(4096, seed=0) and items != build_items(4096, seed=1)
    kinds = collections.Counter(it.category.split("/")[0] for it in items)
    assert {"integer", "decimal", "fraction", "latex_frac", "expression", "choice", "text"} <= set(kinds)
    assert {k for k in kinds if k.startswith("patho_")} >= {"patho_huge", "patho_long", "patho_unicode", "patho_tower"}
    wrappings = collections.Counter(it.category.split("/")[1] for it in items)
    assert set(wrappings) == {"tag_boxed", "tag", "boxed", "plain", "tag_sentence"}
    verdicts = collections.Counter(it.category.split("/")[2] for it in items)
    assert verdicts["right"] > 1000 and verdicts["wrong"] > 1000
    assert sum(map(rewards.is_hanging, items)) == 4  # "a few" that hang math-verify, placed evenly


def test_items_come_in_groups():
    with pytest.raises(ValueError, match="multiple of the group size"):
        build_items(GROUP + 1)
    items = build_items(64, seed=3)
    assert all(len({it.gold for it in items[i : i + GROUP]}) == 1 for i in range(0, 64, GROUP))


def test_agreement_counts_by_category():
    items = [Item("c", "1", None, None, cat) for cat in ("integer/boxed/right", "text/tag/wrong", "integer/boxed/right")]
    same, total, differ = rewards.agreement(items, [1.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert (same, total) == (1, 3)
    assert differ == {"text/tag/wrong (B says right)": 1, "integer/boxed/right (B says right)": 1}


@pytest.mark.parametrize("gold, whole", [("42", True), ("3.75", True), ("\\frac{3}{4}", True), ("39\\pi", False),
                                         ("x^2+3x", False)])
def test_gold_read_whole(gold, whole):
    assert rewards.gold_read_whole(gold) is whole


@pytest.mark.parametrize("completion, one_box", [
    ("<think>so the total is \\boxed{84}. we get 912.</think><answer>\\boxed{912}</answer>", True),
    # math-verify joins these two boxes into "84,912", the number 84912: its semantics differ from a single answer's
    ("<think>First, note that the area is base times height. so the total is an intermediate value is \\boxed{84}. "
     "Simplifying the fraction, we get 912.</think><answer>\\boxed{912}</answer>", False),
    ("<answer>\\boxed{\\frac{3}{4}}</answer>", True),
    ("no box at all: 7", True),
])
def test_reads_one_box(completion, one_box):
    assert rewards.reads_one_box(completion) is one_box


@pytest.mark.slow
def test_quick_run_reports_every_row():
    rows = rewards.run(quick=True)
    measures = {(r["measure"], r["b"]) for r in rows}
    assert ("items/s", "serial math-verify") in measures and ("items/s", "TRL accuracy_reward") in measures
    assert all(r["a_value"] > 0 for r in rows if r["measure"] == "items/s")
    before = next(r for r in rows if r["b"] == "ours before")
    assert before["ratio"] > 0.99  # the same verdicts as before the speed-up, but for fixes listed in its note

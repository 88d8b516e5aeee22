"""Intervals on the curriculum table: Wilson intervals for accuracies, paired intervals for what a phase changed, and
the table people read (marks on each phase's own task)."""

from __future__ import annotations

import json

import pytest

from infimmr_core.evaluation.curriculum_view import markdown_table, own_sets, text_table
from infimmr_core.evaluation.intervals import add_intervals, paired_change, verdicts, wilson
from infimmr_core.recipes import load_recipe


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    [
        (50, 100, 40.38, 59.62),
        (0, 200, 0.0, 1.88),  # zero hits still leaves room above
        (200, 200, 98.12, 100.0),
        (0, 0, 0.0, 100.0),
    ],
)
def test_wilson_interval(hits, n, low, high):
    assert wilson(hits, n) == (low, high)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([False] * 100, [True] * 50 + [False] * 50, (50.0, 40.15, 59.85)),
        ([True, False] * 50, [True, False] * 50, (0.0, 0.0, 0.0)),  # same answers: no change, no doubt
        ([True] * 10 + [False] * 90, [False] * 10 + [True] * 10 + [False] * 80, (0.0, -8.81, 8.81)),
    ],
)
def test_paired_change_is_measured_on_the_same_items(before, after, expected):
    assert paired_change(before, after) == expected


def test_paired_change_needs_the_same_items():
    with pytest.raises(ValueError, match="same items"):
        paired_change([True], [True, False])


def _table():
    return {
        "columns": ["sum-text", "sum-image"], "models": ["base", "phase1"],
        "rows": [
            {"label": "base", "kind": "measured", "scorer": "official", "scores": {"sum-text": 25.0, "sum-image": 50.0}},
            {"label": "phase1", "kind": "measured", "scorer": "official", "scores": {"sum-text": 75.0, "sum-image": 50.0}},
            {"label": "phase1 - base", "kind": "delta", "scorer": "official", "scores": {"sum-text": 50.0, "sum-image": 0.0}},
            {"label": "base", "kind": "measured", "scorer": "semantic", "scores": {"sum-text": 25.0, "sum-image": 50.0}},
        ],
        "own": {"sum-text": "phase1"},
    }


def test_intervals_come_from_the_per_item_verdicts(tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    rows = []
    for i in range(4):
        rows.append({"model": "base", "set": "sum-text", "id": str(i), "correct": i == 0})
        rows.append({"model": "phase1", "set": "sum-text", "id": str(i), "correct": i < 3})
        rows.append({"model": "base", "set": "sum-image", "id": str(i), "correct": i < 2})
        rows.append({"model": "phase1", "set": "sum-image", "id": str(i), "correct": i < 2})
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = add_intervals(_table(), verdicts(predictions))
    base, phase1, delta, semantic = table["rows"]
    assert base["intervals"]["sum-text"] == list(wilson(1, 4))
    assert delta["intervals"]["sum-text"] == list(paired_change([True, False, False, False], [True, True, True, False])[1:])
    assert delta["intervals"]["sum-image"] == [0.0, 0.0]
    assert "intervals" not in semantic and table["n"] == {"sum-text": 4, "sum-image": 4}
    text = text_table(table)
    assert "sum-text (n=4)" in text and "+50.0 [" in text
    own_line = next(line for line in text.splitlines() if line.startswith("phase1 - base"))
    assert own_line.count(" *") == 1  # phase 1's change on its own task is marked, not its change elsewhere
    assert markdown_table(table).splitlines()[0].startswith("| | sum-text (n=4)")


def test_each_phase_owns_the_eval_sets_of_its_input():
    assert own_sets(load_recipe("demo")) == {"sum-text": "phase1", "sum-caption": "phase2", "sum-image": "phase3"}
    assert own_sets(load_recipe("infimmr-3b")) == {}  # benchmarks are nobody's training task

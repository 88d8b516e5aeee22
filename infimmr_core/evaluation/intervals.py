"""How sure a score is: 95% intervals for each model's accuracy and for the change between two checkpoints.

Every model is scored on the same items, so a change is measured per item (after minus before: -1, 0 or +1) and its
interval comes from those paired differences; that is much tighter than two independent intervals, and it is the
right question ("did this phase change the answers on these items?"). Pure functions of per-item verdicts.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

Z95 = 1.959963984540054


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent (sensible at 0% and 100%, unlike hits/n +- 2 se)."""
    if n == 0:
        return (0.0, 100.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(100 * max(0.0, centre - half), 2), round(100 * min(1.0, centre + half), 2))


def paired_change(before: list[bool], after: list[bool], z: float = Z95) -> tuple[float, float, float]:
    """after - before on the same items, in points, with its interval (normal approximation of the mean paired
    difference)."""
    if len(before) != len(after):
        raise ValueError(f"paired change needs the same items: {len(before)} verdicts before, {len(after)} after")
    n = len(before)
    if n == 0:
        return (0.0, 0.0, 0.0)
    diffs = [int(a) - int(b) for b, a in zip(before, after)]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return (round(100 * mean, 2), round(100 * (mean - half), 2), round(100 * (mean + half), 2))


def verdicts(predictions: Path) -> dict[tuple[str, str], dict[str, bool]]:
    """(model, set) -> item id -> official verdict, from an evaluation's predictions.jsonl."""
    found: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    with predictions.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            found[(row["model"], row["set"])][row["id"]] = bool(row["correct"])
    return found


def add_intervals(table: dict[str, Any], by_item: dict[tuple[str, str], dict[str, bool]]) -> dict[str, Any]:
    """The curriculum table with `intervals` ({set: [low, high]}) on each official measured and delta row: Wilson
    intervals for accuracies, paired intervals for deltas ("after - before" rows)."""
    for row in table["rows"]:
        if row.get("scorer") != "official" or row["kind"] not in ("measured", "delta"):
            continue
        intervals = {}
        for column in table["columns"]:
            if row["kind"] == "measured":
                items = by_item.get((row["label"], column))
                if items:
                    intervals[column] = list(wilson(sum(items.values()), len(items)))
            else:
                after, _, before = row["label"].partition(" - ")
                first, second = by_item.get((before, column)), by_item.get((after, column))
                if first and second and first.keys() == second.keys():
                    ids = sorted(first)
                    _, low, high = paired_change([first[i] for i in ids], [second[i] for i in ids])
                    intervals[column] = [low, high]
        row["intervals"] = intervals
    table["n"] = {c: len(by_item.get((table["models"][0], c), {})) for c in table["columns"]}
    return table

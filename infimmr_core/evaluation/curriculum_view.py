"""The curriculum table for people: each checkpoint's held-out accuracy per set, then what each phase changed, with
95% intervals (see `intervals`), as terminal text or Markdown. A phase's own set (`own`, stored in the table by the
evaluate stage) is marked, so what a phase taught (its own task) and what it moved elsewhere (transfer, forgetting)
read apart."""

from __future__ import annotations

from typing import Any

from infimmr_core.config import Recipe


def own_sets(recipe: Recipe) -> dict[str, str]:
    """Eval set -> the phase that trains on its kind of input (generated and local sets only: a benchmark is no
    phase's task)."""
    return {
        s.name: f"phase{n}" for s in recipe.evaluation.sets for n in (1, 2, 3)
        if s.kind != "benchmark" and recipe.phases[n].input == s.input
    }


def _number(value: float | None, signed: bool) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _cell(row: dict[str, Any], column: str) -> str:
    signed = row["kind"] == "delta"
    text = _number(row["scores"].get(column), signed)
    if (interval := row.get("intervals", {}).get(column)) is not None:
        text += f" [{_number(interval[0], signed)}, {_number(interval[1], signed)}]"
    return text


def _rows(table: dict[str, Any]) -> list[tuple[str, list[str]]]:
    models, own = table["models"], table.get("own", {})
    rows = []
    for row in table["rows"]:
        if row.get("scorer") != "official" or row["kind"] not in ("measured", "delta"):
            continue
        after, _, before = row["label"].partition(" - ")
        consecutive = row["kind"] == "delta" and before in models and models.index(before) == models.index(after) - 1
        cells = [_cell(row, c) + (" *" if consecutive and own.get(c) == after else "") for c in table["columns"]]
        rows.append((row["label"], cells))
    return rows


def text_table(table: dict[str, Any]) -> str:
    """Fixed-width text for a terminal."""
    header = ["", *(f"{c} (n={_n(table, c)})" for c in table["columns"])]
    body = _rows(table)
    widths = [max(len(r[0]) for r in [(header[0], [])] + body)] + [
        max(len(header[i + 1]), *(len(cells[i]) for _, cells in body)) for i in range(len(table["columns"]))
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    for label, cells in body:
        lines.append("  ".join(v.ljust(w) for v, w in zip([label, *cells], widths)))
    return "\n".join(lines)


def markdown_table(table: dict[str, Any]) -> str:
    header = "| | " + " | ".join(f"{c} (n={_n(table, c)})" for c in table["columns"]) + " |"
    lines = [header, "|---" * (len(table["columns"]) + 1) + "|"]
    for label, cells in _rows(table):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LEGEND = ("held-out accuracy (%, greedy, official verdict) of each checkpoint, then each phase's change on the same "
          "items; [95% interval]; * = the phase's own task")


def _n(table: dict[str, Any], column: str) -> Any:
    return table.get("n", {}).get(column, "?")

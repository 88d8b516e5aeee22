"""The learning figure of a run (`learning.png` in the evaluate artifact): the warm-up's dev accuracy per task (when the
recipe has one), each phase's training reward and accuracy per step, and every checkpoint's held-out accuracy per
eval set with its 95% interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infimmr_core.plots import Panel, Series, phase_panel, render


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def warmup_panel(log: list[dict[str, Any]]) -> Panel | None:
    checks = [e for e in log if e.get("stage") == "warmup" and "dev_accuracy" in e]
    if not checks:
        return None
    tasks = list(checks[0]["dev_accuracy"])
    kept = next((e["kept_step"] for e in log if "kept_step" in e), None)
    title = "warm-up: dev accuracy % (supervised)" + (f", kept step {kept}" if kept is not None else "")
    return Panel(title, [
        Series(task, [(e["step"], 100 * e["dev_accuracy"][task]) for e in checks]) for task in tasks
    ], y_range=(0, 100))


def held_out_panel(table: dict[str, Any]) -> Panel:
    models = table["models"]
    measured = {r["label"]: r for r in table["rows"] if r["kind"] == "measured" and r.get("scorer") == "official"}
    series = []
    for column in table["columns"]:
        rows = [(i, measured[m]) for i, m in enumerate(models) if m in measured and measured[m]["scores"].get(column) is not None]
        series.append(Series(
            column, [(i, r["scores"][column]) for i, r in rows],
            [(i, *r["intervals"][column]) for i, r in rows if column in r.get("intervals", {})],
        ))
    return Panel("held-out accuracy % (95% interval)", series, y_range=(0, 100),
                 x_labels={i: m for i, m in enumerate(models)})


def learning_png(table: dict[str, Any], phases: dict[str, tuple[str, Path]], warmup_log: Path | None) -> bytes:
    """`phases`: label -> (what it trains on, its metrics.jsonl)."""
    panels = [warmup_panel(read_jsonl(warmup_log))] if warmup_log is not None else []
    panels += [phase_panel(f"{label} ({trains_on}): training", read_jsonl(path)) for label, (trains_on, path) in phases.items()]
    panels.append(held_out_panel(table))
    return render([p for p in panels if p is not None])

"""Small line charts drawn with Pillow (no plotting library in the install): a training phase's reward curve, the
demo's learning figure. Deterministic: the same data always gives the same PNG bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    bars: list[tuple[float, float, float]] = field(default_factory=list)  # (x, low, high): an interval at x


@dataclass
class Panel:
    title: str
    series: list[Series]
    y_range: tuple[float, float] | None = None  # None = fitted to the data
    x_labels: dict[float, str] | None = None  # categorical x axis (e.g. base, phase1, ...); None = first/last x


def _bounds(panel: Panel) -> tuple[float, float, float, float]:
    xs = [x for s in panel.series for x, _ in s.points] or [0.0]
    ys = [y for s in panel.series for _, y in s.points] + [v for s in panel.series for _, lo, hi in s.bars for v in (lo, hi)]
    y_lo, y_hi = panel.y_range or (min(ys or [0.0]), max(ys or [1.0]))
    x_lo, x_hi = min(xs), max(xs)
    if panel.x_labels:
        x_lo, x_hi = min(panel.x_labels), max(panel.x_labels)
        pad = 0.25 * max(x_hi - x_lo, 1)
        x_lo, x_hi = x_lo - pad, x_hi + pad
    return x_lo, (x_hi if x_hi > x_lo else x_lo + 1), y_lo, (y_hi if y_hi > y_lo else y_lo + 1.0)


def _draw_panel(draw: ImageDraw.ImageDraw, panel: Panel, box: tuple[int, int, int, int]) -> None:
    left0, top0, right0, bottom0 = box
    left, top, right, bottom = left0 + 44, top0 + 22, right0 - 10, bottom0 - 28
    x_lo, x_hi, y_lo, y_hi = _bounds(panel)

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left), bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

    draw.text((left0 + 6, top0 + 4), panel.title, fill="black")
    draw.rectangle((left, top, right, bottom), outline="black")
    for value in (y_lo, (y_lo + y_hi) / 2, y_hi):
        y = px(x_lo, value)[1]
        draw.line((left - 3, y, left, y), fill="black")
        draw.text((left0 + 2, y - 5), f"{value:.3g}", fill="black")
    labels = panel.x_labels or {x_lo: f"step {x_lo:g}", x_hi: f"{x_hi:g}"}
    for x, label in labels.items():
        cx = px(x, y_lo)[0]
        draw.text((min(max(cx - 3 * len(label), left0), right0 - 6 * len(label)), bottom + 6), label, fill="black")
    for i, series in enumerate(panel.series):
        colour = COLOURS[i % len(COLOURS)]
        points = [px(x, y) for x, y in series.points]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for cx, cy in points:
            draw.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=colour)
        for x, lo, hi in series.bars:
            (cx, ylo), (_, yhi) = px(x, lo), px(x, hi)
            draw.line((cx, ylo, cx, yhi), fill=colour, width=1)
            draw.line((cx - 3, ylo, cx + 3, ylo), fill=colour)
            draw.line((cx - 3, yhi, cx + 3, yhi), fill=colour)
        draw.text((left + 6, top + 4 + 12 * i), series.name, fill=colour)


def render(panels: list[Panel], panel_size: tuple[int, int] = (300, 240)) -> bytes:
    """The panels side by side, as PNG bytes."""
    width, height = panel_size
    image = Image.new("RGB", (width * max(len(panels), 1), height), "white")
    draw = ImageDraw.Draw(image)
    for i, panel in enumerate(panels):
        _draw_panel(draw, panel, (i * width, 0, (i + 1) * width, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def phase_panel(title: str, log: list[dict[str, Any]]) -> Panel | None:
    """A GRPO phase's training reward and (sampled) accuracy per step, from its log history; None without steps."""
    steps = [e for e in log if "reward" in e and "step" in e]
    if not steps:
        return None
    return Panel(title, [
        Series("reward (0-1.5)", [(e["step"], e["reward"]) for e in steps]),
        Series("accuracy (0-1)", [(e["step"], e["rewards/accuracy/mean"]) for e in steps if "rewards/accuracy/mean" in e]),
    ], y_range=(0, 1.5))


def line_chart_png(rows: list[dict[str, Any]], series: tuple[str, ...], size: tuple[int, int] = (480, 280)) -> bytes:
    """One chart of `series` against `step`, from rows of logged metrics."""
    lines = [Series(name, [(r["step"], float(r[name])) for r in rows if name in r and "step" in r]) for name in series]
    return render([Panel("", lines)], size)

"""`make bench`: run every benchmark module, write bench.json and bench.md, print the table.

    .venv/bin/python -m benchmarks.perf.run [--only rewards,store] [--quick] [--out build/bench]

A module that is not there is a row "not built"; one that fails is a row carrying its error, and the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.perf.common import ROW_KEYS

# Fixed order: the cheap, self-contained ones first so that a late failure still leaves their figures.
MODULES = ("rewards", "store", "generation", "prompts", "grpo_step", "rerun", "curation", "demo")
# Run only when named (`--only demo`, `make bench-demo`): a cold demo run alone is 9 minutes of the 20 `make bench` has.
OPT_IN = ("demo",)


def status_row(name: str, note: str) -> dict[str, Any]:
    """A row saying a module produced no figures, and why."""
    return {"bench": name, "measure": "-", "a": "-", "b": "-", "a_value": float("nan"), "b_value": float("nan"),
            "unit": "", "ratio": float("nan"), "target": "", "met": None, "note": note}


def run_module(name: str, quick: bool) -> tuple[list[dict[str, Any]], float]:
    """The module's rows (or one row saying why there are none) and its wall seconds."""
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.perf.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"benchmarks.perf.{name}":
            return [status_row(name, "not built")], 0.0
        return [status_row(name, f"import failed: {exc!r}")], time.perf_counter() - started
    except Exception as exc:  # a broken module must not take the others down
        return [status_row(name, f"import failed: {exc!r}")], time.perf_counter() - started
    try:
        rows = list(module.run(quick=quick))
    except Exception as exc:
        traceback.print_exc()
        return [status_row(name, f"failed: {type(exc).__name__}: {exc}")], time.perf_counter() - started
    if not rows:
        return [status_row(name, "no rows" + (" in quick mode" if quick else ""))], time.perf_counter() - started
    return [normalise(row, name) for row in rows], time.perf_counter() - started


def normalise(row: Any, name: str) -> dict[str, Any]:
    """A row as a dict of exactly ROW_KEYS (a Row dataclass or a dict; missing keys become empty)."""
    if hasattr(row, "as_dict"):
        row = row.as_dict()
    out = {key: row.get(key) for key in ROW_KEYS}
    out["bench"] = out["bench"] or name
    extra = sorted(set(row) - set(ROW_KEYS))
    if extra:
        out["note"] = ((out["note"] or "") + f" (unknown keys dropped: {', '.join(extra)})").strip()
    return out


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
    }
    try:  # the installed version, without the seconds importing torch takes
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = None
    return info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fmt(value: Any) -> str:
    """A figure for the table: 3 significant digits, '-' when missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return "-"
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    head = ["bench", "measure", "A", "B", "A value", "B value", "unit", "ratio", "target", "met", "note"]
    keys = ["bench", "measure", "a", "b", "a_value", "b_value", "unit", "ratio", "target", "met", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(key)) for key in keys) + " |")
    return "\n".join(lines) + "\n"


def jsonable(value: Any) -> Any:
    """NaN is not JSON: write it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(MODULES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds per module (a smoke check)")
    parser.add_argument("--out", default="build/bench", help="folder for bench.json and bench.md")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or [n for n in MODULES if n not in OPT_IN]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")

    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        module_rows, seconds[name] = run_module(name, args.quick)
        print(f"[bench] {name}: {len(module_rows)} row(s) in {seconds[name]:.1f} s", file=sys.stderr, flush=True)
        rows.extend(module_rows)
        # Written after every module, so an interrupted run still leaves the figures it has.
        text = write_report(out, info, args.quick, seconds, rows)
    print(text)
    return 0


def write_report(out: Path, info: dict[str, Any], quick: bool, seconds: dict[str, float],
                 rows: list[dict[str, Any]]) -> str:
    """bench.json and bench.md in `out`; returns the markdown."""
    report = {"machine": info, "quick": quick, "module_seconds": seconds, "rows": rows}
    (out / "bench.json").write_text(json.dumps(jsonable(report), indent=2, default=str) + "\n")
    header = (f"{info['date']}, commit {info['commit']}, {info['cores_usable']} cores ({info['cpu']}), "
              f"{info['memory_gib']} GiB, Python {info['python']}, torch {info['torch']}"
              f"{', --quick' if quick else ''}\n\n")
    text = header + table(rows)
    (out / "bench.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())

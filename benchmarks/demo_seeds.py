"""Benchmark: `make demo`'s run for several seeds, each from a cold cache, then again to show it is fully cached.

    .venv/bin/python benchmarks/demo_seeds.py [--seeds 0 1 2] [--out DIR]

A seed is the tiny model's initialisation, the warm-up's data order and every phase's sampling. For each seed this
prints the curriculum table, the wall time of the cold run (tiny model build included, install excluded) and of the
rerun, and checks the demo's promises: each phase raises its own held-out task by at least 25 points over the
checkpoint it started from, each phase started from the previous stage's weights (by digest), the cold run takes under
12 minutes, and the rerun computes nothing. `tests/test_demo_learning.py` runs it as its slow test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEEDS = (0, 1, 2)
MIN_GAIN = 25.0  # points of held-out accuracy on a phase's own task
MAX_SECONDS = 12 * 60
PREVIOUS = {"phase1": "base", "phase2": "phase1", "phase3": "phase2"}


def seed_overrides(seed: int) -> list[str]:
    return [f"base_model.seed={seed}", f"warmup.seed={seed}", *(f"phases.{n}.seed={seed}" for n in (1, 2, 3))]


def _infimmr(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "infimmr.flows.cli", *args, "--json"], env=env, cwd=cwd,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"infimmr {' '.join(args)} failed:\n{proc.stderr[-6000:]}")
    return seconds, json.loads(proc.stdout)


def _artifact(summary: dict[str, Any], stage: str) -> Path:
    return Path(summary["stages"][stage]["uri"].removeprefix("file://"))


def _weights(summary: dict[str, Any], stage: str) -> str:
    from infimmr_core.models import load_model
    from infimmr_core.weights import weights_digest

    return weights_digest(load_model(_artifact(summary, stage) / "model"))


def run_seed(seed: int, folder: Path, rerun: bool = True) -> dict[str, Any]:
    """The demo for one seed in `folder` (its own store, cache and Prefect home); what it measured."""
    from infimmr_core.evaluation.curriculum_view import LEGEND, text_table

    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "INFIMMR_CACHE_DIR": str(folder / "cache"), "PREFECT_HOME": str(folder / "prefect"),
           "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    args = ["run", "--recipe", "demo", "--store", f"file://{folder / 'store'}",
            *(arg for item in seed_overrides(seed) for arg in ("--set", item))]
    seconds, summary = _infimmr(args, env, folder)
    result: dict[str, Any] = {"seed": seed, "seconds": round(seconds, 1), "summary": summary}
    table = json.loads((_artifact(summary, "evaluate") / "curriculum.json").read_text())
    result["table"] = table
    deltas = {r["label"]: r for r in table["rows"] if r["kind"] == "delta" and r["scorer"] == "official"}
    result["gains"] = {
        phase: {"set": column, "change": deltas[f"{phase} - {PREVIOUS[phase]}"]["scores"][column],
                "interval": deltas[f"{phase} - {PREVIOUS[phase]}"]["intervals"].get(column)}
        for column, phase in table["own"].items()
    }
    result["handoffs"] = {
        phase: summary["stages"][phase]["metrics"]["start_weights"] == _weights(summary, before)
        for phase, before in PREVIOUS.items()
    }
    if rerun:
        again, second = _infimmr(args, env, folder)
        result["rerun_seconds"] = round(again, 1)
        result["rerun_states"] = {name: stage["state"] for name, stage in second["stages"].items()}
    stage_seconds = ", ".join(f"{name} {s['seconds']:.0f}" for name, s in summary["stages"].items())
    result["report"] = "\n".join([
        f"seed {seed}: cold run {seconds:.0f} s ({stage_seconds})"
        + (f"; rerun {result['rerun_seconds']:.0f} s, states {set(result['rerun_states'].values())}" if rerun else ""),
        f"{LEGEND}:", text_table(table),
        "own-task gains: " + ", ".join(f"{p} {g['set']} {g['change']:+.1f} {g['interval']}" for p, g in result["gains"].items()),
        f"hand-offs by weight digest: {result['handoffs']}",
    ])
    return result


def check(result: dict[str, Any]) -> list[str]:
    """What the demo promises and this seed did not keep."""
    seed, problems = result["seed"], []
    for phase, gain in result["gains"].items():
        if gain["change"] < MIN_GAIN:
            problems.append(f"seed {seed}: {phase} moved its own task {gain['set']} by {gain['change']:+.1f} < {MIN_GAIN}")
    problems += [f"seed {seed}: {phase} did not start from the previous weights"
                 for phase, ok in result["handoffs"].items() if not ok]
    if result["seconds"] > MAX_SECONDS:
        problems.append(f"seed {seed}: cold run took {result['seconds']:.0f} s > {MAX_SECONDS} s")
    if "rerun_states" in result and set(result["rerun_states"].values()) != {"cached"}:
        problems.append(f"seed {seed}: the rerun computed {result['rerun_states']}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, help="keep each seed's store here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="infimmr-demo-") as tmp:
        root = args.out or Path(tmp)
        failures = []
        for seed in args.seeds:
            result = run_seed(seed, root / f"seed{seed}")
            print(result["report"] + "\n", flush=True)
            failures += check(result)
    print("\n".join(failures) if failures else f"all {len(args.seeds)} seeds kept every promise")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

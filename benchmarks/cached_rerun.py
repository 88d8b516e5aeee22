"""Benchmark: a cold `infimmr run` against the same command once every stage is stored, side by side in one process.

    .venv/bin/python benchmarks/cached_rerun.py [--recipe smoke]

Runs in a fresh temporary store, cache and Prefect home, so the first run really is cold (tiny model build included)
and prints both wall times and their ratio (the target is < 0.15).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def timed_run(recipe: str, env: dict[str, str], cwd: str) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "infimmr.flows.cli", "run", "--recipe", recipe, "--json"],
        env=env, cwd=cwd, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"infimmr run failed:\n{proc.stderr[-4000:]}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="smoke")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="infimmr-bench-") as tmp:
        env = {**os.environ, "INFIMMR_CACHE_DIR": f"{tmp}/cache", "PREFECT_HOME": f"{tmp}/prefect", "DO_NOT_TRACK": "1"}
        cold, first = timed_run(args.recipe, env, tmp)
        warm, second = timed_run(args.recipe, env, tmp)
    states = {name: stage["state"] for name, stage in second["stages"].items()}
    per_stage = ", ".join(f"{name} {stage['seconds']:.1f}" for name, stage in first["stages"].items())
    print(f"cold run       {cold:8.1f} s  ({per_stage})")
    print(f"all-cached run {warm:8.1f} s  states: {states}")
    print(f"ratio          {warm / cold:8.3f}  (target < 0.15)")


if __name__ == "__main__":
    main()

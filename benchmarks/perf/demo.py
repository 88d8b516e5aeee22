"""Benchmark: the orchestration overhead of a cold `infimmr run --recipe demo` (issue 15's target: at most 5% of a cold
demo run), and the demo's fully cached rerun against it.

    .venv/bin/python -m benchmarks.perf.demo [--quick]

The run is a user's first `make demo`: no PREFECT_API_URL, and a fresh store, download cache and Prefect home (the
tiny model is built, the warm-up and every stage computed). Overhead = (wall - stage compute) / wall as in
`benchmarks.perf.rerun`: stage compute is the time inside each stage's own `run`, summed over every artifact the run
stored. A cold demo run takes about 8 minutes on 2 cores, so it runs once; quick mode leaves it out.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.perf.common import print_rows, ratio_row
from benchmarks.perf.rerun import CACHED_TARGET, cli_run, compute_seconds, fresh_env, overhead_row


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:  # a cold demo run takes about 8 minutes on 2 cores
        return []
    with tempfile.TemporaryDirectory(prefix="infimmr-bench-demo-") as tmp:
        home = Path(tmp)
        env, store = fresh_env(home), f"file://{home / 'store'}"
        args = ["run", "--recipe", "demo", "--store", store]
        cold, first = cli_run(args, env, home)
        compute = compute_seconds(store, home / "cache")
        cached, again = cli_run(args, env, home)
    if any(stage["state"] != "cached" for stage in again["stages"].values()):
        raise RuntimeError(f"the demo's rerun computed something: {again['stages']}")
    total = sum(compute.values())
    in_flow = float(first["seconds"])
    in_tasks = sum(stage["seconds"] for stage in first["stages"].values())
    split = (f"cold {cold:.1f} s: {cold - in_flow:.1f} s before the flow (imports, Prefect's temporary server), "
             f"{in_flow - in_tasks:.1f} s between stage tasks, {in_tasks - total:.1f} s in stage tasks around the "
             f"stages' own work (process start, imports, download, upload); compute "
             + ", ".join(f"{stage} {s:.1f}" for stage, s in compute.items()))
    return [
        overhead_row("cold demo CLI", cold, total, split, bench="demo"),
        ratio_row("demo", "cached CLI rerun / cold run", "cached rerun", "cold run", cached, cold, "s",
                  target=CACHED_TARGET, note="recipe demo, each measured once (a cold run is the cost)"),
    ]


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))

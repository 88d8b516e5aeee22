"""Benchmark: the orchestration overhead of a cold `infimmr run --recipe demo` (issue 15's target: at most 5% of a cold
demo run), and the demo's fully cached rerun against it.

    .venv/bin/python -m benchmarks.perf.demo [--quick]

The run is cold: no PREFECT_API_URL, a fresh store and download cache (the tiny model is built, the warm-up and every
stage computed). Overhead = (wall - stage compute) / wall as in `benchmarks.perf.rerun`: stage compute is the time
inside each stage's own `run`, summed over every artifact the run stored. Prefect's database in a new Prefect home is
created once per machine (migrations, block registration: 9-10 s here); that is timed first, on its own, and shown
both apart and added to the run, as a machine's very first run would pay it. A cold demo run takes about 8 minutes
on 2 cores, so it runs once; quick mode leaves it out.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.perf.common import print_rows, ratio_row
from benchmarks.perf.rerun import (
    CACHED_TARGET, OVERHEAD_TARGET, cli_run, cold_split, compute_seconds, fresh_env, overhead_row,
)

# What `infimmr run` does first on a new Prefect home: start the temporary server, which creates its database.
CREATE_DATABASE = ("from prefect.server.api.server import SubprocessASGIServer as S; s = S(); s.start(timeout=300); "
                   "s.stop()")


def create_prefect_database(env: dict[str, str], cwd: Path) -> float:
    """Seconds to start Prefect's temporary server on the empty Prefect home of `env`, minus a start on the same home
    once created: the one-time part, database creation."""
    def start() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", CREATE_DATABASE], env=env, cwd=cwd, check=True, capture_output=True)
        return time.perf_counter() - started

    first = start()
    return max(first - start(), 0.0)


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:  # a cold demo run takes about 8 minutes on 2 cores
        return []
    with tempfile.TemporaryDirectory(prefix="infimmr-bench-demo-") as tmp:
        home = Path(tmp)
        env, store = fresh_env(home), f"file://{home / 'store'}"
        args = ["run", "--recipe", "demo", "--store", store]
        database = create_prefect_database(env, home)
        cold, first = cli_run(args, env, home)
        compute = compute_seconds(store, home / "cache")
        cached, again = cli_run(args, env, home)
    if any(stage["state"] != "cached" for stage in again["stages"].values()):
        raise RuntimeError(f"the demo's rerun computed something: {again['stages']}")
    total = sum(compute.values())
    split = cold_split(cold, first, compute)
    return [
        overhead_row("cold demo CLI", cold, total, split, bench="demo", target=OVERHEAD_TARGET),
        ratio_row("demo", "orchestration overhead of a machine's first demo run (cold, and Prefect's database created): "
                  "(wall - stage compute) / wall", "wall - compute", "wall", cold - total + database, cold + database,
                  "s", target=OVERHEAD_TARGET, note=f"the run above plus creating the database of a new Prefect home, "
                  f"{database:.1f} s measured apart (once per machine)"),
        ratio_row("demo", "cached CLI rerun / cold run", "cached rerun", "cold run", cached, cold, "s",
                  target=CACHED_TARGET, note="recipe demo, each measured once (a cold run is the cost)"),
    ]


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))

"""torch's intra-op threads in stage processes (issue 15): the recipe's `runtime.torch_threads`, else the process's
share of the cores it may run on, applied by every stage's child process before it touches the store or a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infimmr_core.recipes import load_recipe
from infimmr_core.stages import SHARD
from infimmr_core.threads import intra_op_threads
from worker_child import STOPPED_AT_STORE

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("configured", "processes", "cores", "expected"), [
    (None, 1, 2, 2),  # the process's cores
    (None, 1, 1, 1),
    (None, 2, 2, 1),  # two parallel shards share two cores
    (None, 4, 2, 1),  # never fewer than one
    (None, 3, 16, 5),
    (4, 1, 2, 4),  # the recipe decides, whatever the cores
    (1, 8, 64, 1),
])
def test_intra_op_threads(configured, processes, cores, expected):
    assert intra_op_threads(configured, processes=processes, cores=cores) == expected


@pytest.mark.parametrize(("configured", "processes"), [(0, 1), (None, 0)])
def test_intra_op_threads_refuses_nonsense(configured, processes):
    with pytest.raises(ValueError):
        intra_op_threads(configured, processes=processes, cores=2)


# Runs the real worker entry point (python -m infimmr_core.worker's main) on each spec, in one child process (one
# torch import), stopping it where it would open the store: by then the threads must be set.
CHILD = STOPPED_AT_STORE + """
import torch
for case in json.loads(sys.argv[1]):
    os.sched_setaffinity(0, set(case["cpus"]))
    torch.set_num_threads(7)  # whatever the process had before
    try:
        worker.main(case["spec"])
    except Stop:
        pass
    print(json.dumps([torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")]), flush=True)
"""


@pytest.mark.slow  # about 3 s on an idle 2-core box (one import of torch), twice that on a loaded one
def test_every_stage_process_sets_its_threads(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    cases, expected = [], []

    def case(name: str, stage: str, overrides: list[str], cpu_count: int, threads: int) -> None:
        recipe = load_recipe("smoke", overrides)
        spec = tmp_path / f"{name}.json"
        spec.write_text(json.dumps({"stage": stage, "key": "k", "recipe": recipe.model_dump(mode="json", by_alias=True),
                                    "upstream": {}}))
        cases.append({"spec": str(spec), "cpus": cpus[:cpu_count]})
        expected.append([threads, str(threads)])

    case("configured", "phase1", ["runtime.torch_threads=3"], 1, 3)
    case("one-core", "evaluate", [], 1, 1)
    if len(cpus) >= 2:
        case("all-cores", "evaluate", [], 2, 2)
        case("parallel-shards", SHARD, ["runtime.parallel_shards=2"], 2, 1)
        case("one-shard-at-a-time", SHARD, [], 2, 2)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [json.loads(line) for line in out.stdout.splitlines()] == expected

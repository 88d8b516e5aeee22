"""Stage processes that need no model never import torch (issue 15): importing it costs a stage process 2-4 s on a
shared 2-core box and tearing it down ~1 s more, several times what curate-collect, the curate merge or publish spend
in their own code. Each module below is imported alone in a fresh interpreter, as a stage process would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infimmr_core.recipes import load_recipe
from infimmr_core.stages import COLLECT, SHARD, SPECS, plan_stage, produce
from infimmr_core.store import LocalStore
from worker_child import STOPPED_AT_STORE

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "trl", "accelerate", "peft", "vllm")

# Module -> why it must stay free of HEAVY at import time.
LIGHT: dict[str, str] = {
    "infimmr_core.worker": "every stage process starts here, whether its stage loads a model or not",
    "infimmr_core.runner": "the orchestrator imports it to start stage processes",
    "infimmr_core.inference": "curation's caption and rollout modules (and so the curate merge) use its request and "
                              "sampling types; torch is loaded when a generator is built",
    "infimmr_core.curation.collect": "curate-collect reads, filters, decontaminates and deduplicates rows",
    "infimmr_core.curation.stage": "the curate merge: the pass-rate band, the pools and the report, from files",
    "infimmr_core.curation.enrich": "a curate-shard without captions or rollouts copies its samples",
    "infimmr_core.publish": "publish writes the Hub folder and pushes it",
    "infimmr_core.evaluation.curriculum_view": "a fully stored run's CLI prints the curriculum table with it: torch "
                                               "was 1.3 s of a 5 s cached rerun",
    "infimmr.flows.cli": "a fully stored run is answered by the CLI alone",
}

# Imports `module` and prints, for each heavy library it loaded, the infimmr_core lines that imported it.
CHILD = r"""
import json, sys, traceback
module, heavy = sys.argv[1], set(json.loads(sys.argv[2]))
chains = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in heavy and top not in chains:
            chains[top] = [f"{f.filename.rsplit('/infimmr_core/', 1)[-1]}:{f.lineno}"
                           for f in traceback.extract_stack() if "/infimmr_core/" in f.filename]
        return None

sys.meta_path.insert(0, Watch())
__import__(module)
print(json.dumps({lib: chain for lib, chain in chains.items() if lib in sys.modules}))
"""


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_module_imports_no_ml_library(module):
    out = subprocess.run([sys.executable, "-c", CHILD, module, json.dumps(HEAVY)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert loaded == {}, f"{module} ({LIGHT[module]}) imports " + "; ".join(
        f"{lib} via {' -> '.join(chain)}" for lib, chain in loaded.items())


def test_every_deviceless_stage_module_is_held_light():
    from infimmr_core.worker import NO_DEVICE

    assert {SPECS[stage].module for stage in NO_DEVICE} <= set(LIGHT)


def test_a_collect_part_runs_without_torch_even_on_device_auto(tmp_path, monkeypatch):
    """The real part, as the pipeline runs it (runner -> worker child process), on a recipe whose device is `auto`,
    which would otherwise take a torch import to resolve: the child's own import log names no torch module."""
    recipe = load_recipe("smoke", ["runtime.device=auto"])
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    recipe.store.uri, recipe.store.cache_dir = store.uri, str(store.cache_dir)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the child prints each import to stderr, which we read
    lines: list[str] = []
    from infimmr_core.runner import close_warm_workers, run_stage_process

    close_warm_workers()  # the part must start a worker of its own, with the variable set

    plan = plan_stage(COLLECT, recipe, {})
    ref = produce(store, plan, lambda p: run_stage_process(p, recipe, {}, on_line=lines.append))
    assert not ref.reused and store.manifest(COLLECT, plan.key) is not None
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    close_warm_workers()
    assert "infimmr_core.config" in imported  # the log is there (the worker itself runs as __main__)
    assert not {name for name in imported if name.partition(".")[0] in HEAVY}, [l for l in lines if "torch" in l][:5]


# The real worker entry point, stopped where it would open the store (threads are set by then): a stage that computes
# with torch has it loaded with its threads set; one that needs no device leaves it unloaded, with OMP_NUM_THREADS
# set for anything that loads it later.
THREADS_CHILD = STOPPED_AT_STORE + """
try:
    worker.main(sys.argv[1])
except Stop:
    pass
torch = sys.modules.get("torch")
print(json.dumps([torch.get_num_threads() if torch else None, os.environ.get("OMP_NUM_THREADS")]))
"""


@pytest.mark.slow  # a torch import: 3 s on an idle 2-core box, more on a loaded one
@pytest.mark.parametrize(("stage", "overrides", "torch_threads"), [
    (SHARD, [], True),
    (SHARD, ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image"], False),
    (COLLECT, [], False),
    ("publish", [], False),
])
def test_the_worker_sets_threads_whether_or_not_it_loads_torch(tmp_path, stage, overrides, torch_threads):
    # More threads than cores, which torch would not take from OMP_NUM_THREADS alone (it caps that at the cores).
    threads = len(os.sched_getaffinity(0)) + 1
    recipe = load_recipe("smoke", [f"runtime.torch_threads={threads}", *overrides])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"stage": stage, "key": "k", "recipe": recipe.model_dump(mode="json", by_alias=True),
                                "upstream": {}}))
    out = subprocess.run([sys.executable, "-c", THREADS_CHILD, str(spec)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [threads if torch_threads else None, str(threads)]

"""Every recipe field, changed one at a time: it changes exactly the keys of the artifacts it shapes, and a field
that only says how or where a stage runs (a node's rank, a port, a worker count, a token's name) changes none.

The table below is the decision, written once per field; a new field that it does not cover fails the test, so
whoever adds a field decides whether it shapes an artifact (and marks it `operational` in config.py if not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from infimmr_core.config import Recipe
from infimmr_core.recipes import load_recipe, validate_recipe
from infimmr_core.stages import COLLECT, SHARD, SPECS, stage_key
from test_keys import ROOT

DIGESTS = {"curate": "a" * 64, "phase1": "b" * 64, "phase2": "c" * 64, "phase3": "d" * 64, "evaluate": "e" * 64,
           "shard": "f" * 64, "base": "0" * 64}
CURATION = {COLLECT, SHARD, "curate", "publish"}
BAND = {"curate", "publish"}  # applied when the shards are merged
ROLLOUTS = {SHARD, "curate", "publish"}  # captions and rollouts are the shard's work
EVERY_MODEL_STAGE = {"base", SHARD, "curate", "phase1", "phase2", "phase3", "evaluate", "publish"}
NONE: set[str] = set()

# Longest matching prefix wins; `N` stands for a phase number.
EXPECTED: dict[str, set[str]] = {
    "name": {"publish"},
    "description": {"publish"},
    # The base model is warmed up (base), rolled out and captions in the shards (no captioner or policy of its own),
    # is what the merge's key stands for, starts phase 1 and is evaluated; later phases start from the previous
    # artifact.
    "base_model": {"base", SHARD, "curate", "phase1", "evaluate", "publish"},
    # The warm-up shapes the base stage's artifact only: the stages that read it follow its digest.
    "warmup": {"base", "publish"},
    "store": NONE,
    "store.retry_attempts": NONE,  # how a flaky S3 is retried and how big the cache may grow: never content
    "store.retry_seconds": NONE,
    "store.request_attempts": NONE,
    "store.cache_max_bytes": NONE,
    "runtime": NONE,
    "prompts": EVERY_MODEL_STAGE,
    "rewards": EVERY_MODEL_STAGE,
    "rewards.workers": NONE,
    "curation": CURATION - {SHARD},  # what is read, filtered, decontaminated, deduplicated, and how it is sharded
    "curation.seed": CURATION,
    "curation.captioning": ROLLOUTS,
    "curation.difficulty": ROLLOUTS,
    "curation.difficulty.min_pass_rate": BAND,
    "curation.difficulty.max_pass_rate": BAND,
    "curation.difficulty.inclusive": BAND,
    "curation.pools": BAND,
    "phases.N": {"phaseN", "publish"},
    "phases.N.distributed.accelerate_config": NONE,
    "phases.N.distributed.machine_rank": NONE,
    "phases.N.distributed.main_process_ip": NONE,
    "phases.N.distributed.main_process_port": NONE,
    "phases.N.gradient_checkpointing": NONE,
    "phases.N.save_steps": NONE,
    "phases.N.keep_last_checkpoints": NONE,
    "phases.N.report_to": NONE,
    "phases.N.vllm_mode": NONE,
    "phases.N.vllm_server_base_url": NONE,
    "phases.N.vllm_gpu_memory_utilization": NONE,
    "phases.N.vllm_tensor_parallel_size": NONE,
    "evaluation": {"evaluate", "publish"},
    "evaluation.judge.base_url": NONE,
    "evaluation.judge.api_key_env": NONE,
    "evaluation.judge.timeout_seconds": NONE,
    "evaluation.judge.max_retries": NONE,
    "publish": {"publish"},
    "publish.token_env": NONE,
    "publish.token_secret": NONE,
}

# Optional sections switched on, so that their own fields are in the table too.
BASE_OVERRIDES = [
    "evaluation.judge={base_url: 'http://127.0.0.1:8000/v1', model: judge}",
    "phases.1.lora={}",
    "evaluation.reference_rows=[{label: paper, source: 'Table 1', scores: {math500: 50.0}}]",
    "warmup={tasks: [{name: sums, source: {kind: canonical, path: data/worked.jsonl}}]}",
]


# Settings whose every other value needs a second change to stay valid: the keys must change for both.
COMPANIONS = {
    "curation.captioning.enabled": {"phases.2.input": "image"},  # phase 2 reads captions
    "phases.N.eval_steps": {"phases.N.eval_samples": 8},  # evaluating needs held-out rows
    # vLLM rollouts of an image phase go to a server (colocate misaligns images): it needs the server's address.
    "phases.N.use_vllm": {"phases.N.vllm_server_base_url": "http://127.0.0.1:8000"},
}
SPECIAL_VALUES = {
    "phases.N.per_device_train_batch_size": 16,  # 9 would not divide 256 prompts x 8 generations
    "evaluation.sets.0.source": "fixture",  # "local" needs a path
}


def _pattern(path: str) -> str:
    parts = path.split(".")
    return ".".join("N" if i == 1 and parts[0] == "phases" else p for i, p in enumerate(parts))


def _with_phase(path_pattern: str, path: str) -> str:
    return path_pattern.replace(".N.", f".{path.split('.')[1]}.") if path.startswith("phases.") else path_pattern


def expected_for(path: str) -> set[str]:
    parts = path.split(".")
    phase = parts[1] if parts[0] == "phases" else None
    pattern = ".".join("N" if i == 1 and phase else p for i, p in enumerate(parts))
    while pattern and pattern not in EXPECTED:
        pattern = pattern.rpartition(".")[0]
    assert pattern, f"the table decides nothing for {path}: add it to EXPECTED"
    return {stage.replace("phaseN", f"phase{phase}") for stage in EXPECTED[pattern]}


def _leaves(model: BaseModel, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, field annotation, current value) of every leaf setting; a list of sections counts through its
    first item."""
    found = []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        path, value = f"{prefix}{key}", getattr(model, name)
        if isinstance(value, BaseModel):
            found += _leaves(value, f"{path}.")
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            found += _leaves(value[0], f"{path}.0.")
        else:
            found.append((path, field.annotation, value))
    return found


def _choices(annotation: Any) -> list[Any]:
    """The values of a Literal (or an optional Literal)."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [c for a in typing.get_args(annotation) if a is not type(None) for c in _choices(a)]
    return []


def changed(annotation: Any, value: Any) -> Any:
    """Another valid value for a setting."""
    if choices := [c for c in _choices(annotation) if c != value]:
        return choices[0]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value > 0.5 else value + 0.25
    if isinstance(value, str):
        return value + " (changed)"
    if isinstance(value, dict):
        return {k: v + 1 for k, v in value.items()} if value else {"changed": "value"}
    if isinstance(value, list):
        item = typing.get_args(annotation)[0]
        return value[:-1] if len(value) > 1 and _choices(item) else value + ["x"]
    assert value is None, (annotation, value)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    kind = typing.get_origin(args[0]) or args[0]
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {"name_or_path": "org/another-model"} if "name_or_path" in kind.model_fields else {}
    return {int: 7, float: 0.5, str: "changed", list: ["x"], dict: {"a": "b"}}[kind]


def _set(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value


def keys_of(recipe: Recipe) -> dict[str, str]:
    return {stage: stage_key(stage, recipe, {u: DIGESTS[u] for u in spec.upstream}) for stage, spec in SPECS.items()}


BASE = load_recipe("infimmr-3b", BASE_OVERRIDES)
LEAVES = _leaves(BASE)


def test_the_table_covers_every_setting_and_optional_sections_are_on():
    paths = [path for path, _, _ in LEAVES]
    assert len(paths) > 150 and "evaluation.judge.base_url" in paths and "phases.1.lora.r" in paths
    for path in paths:
        expected_for(path)


@pytest.mark.parametrize(("path", "annotation", "value"), LEAVES, ids=[path for path, _, _ in LEAVES])
def test_each_setting_changes_exactly_the_keys_it_shapes(path, annotation, value):
    data = BASE.model_dump(mode="json", by_alias=True)
    new = SPECIAL_VALUES.get(_pattern(path), changed(annotation, value))
    _set(data, path, new)
    expected = expected_for(path)
    for companion, companion_value in COMPANIONS.get(_pattern(path), {}).items():
        _set(data, _with_phase(companion, path), companion_value)
        expected |= expected_for(_with_phase(companion, path))
    edited = validate_recipe(data, source=f"{path}={new!r}")
    before, after = keys_of(BASE), keys_of(edited)
    assert {stage for stage in before if before[stage] != after[stage]} == expected, f"{path}: {value!r} -> {new!r}"


NODE_SCRIPT = """
import json, sys
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import stage_key
recipe = load_recipe("infimmr-3b", json.loads(sys.argv[1]))
print(stage_key("phase2", recipe, {"curate": "a" * 64, "phase1": "b" * 64}))
"""


def test_every_node_of_a_multi_node_phase_computes_one_key(tmp_path):
    """The README's multi-node instructions: the same command on each node, differing in machine_rank only (plus
    whatever each machine's own runtime and cache are)."""
    common = ["phases.2.distributed.num_machines=2", "phases.2.distributed.main_process_ip=10.1.2.3",
              "phases.2.distributed.main_process_port=29500"]
    keys = set()
    for rank in (0, 1):
        node = [f"phases.2.distributed.machine_rank={rank}", f"store.cache_dir={tmp_path / str(rank)}",
                f"runtime.torch_threads={rank + 1}"]
        env = {**os.environ, "PYTHONHASHSEED": "random"}
        out = subprocess.run([sys.executable, "-c", NODE_SCRIPT, json.dumps(common + node)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        keys.add(out.stdout.strip())
    assert len(keys) == 1
    assert keys != {keys_of(load_recipe("infimmr-3b"))["phase2"]}  # two machines is a different (global) batch

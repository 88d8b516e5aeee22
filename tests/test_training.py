"""The phase stage end to end on CPU, run exactly as the pipeline runs it (`python -m infimmr_core.worker`):
checkpoints synced to the store and resumed from it after a SIGKILL, a 2-process `accelerate launch` (gloo) run,
and the reference model and vision freezing on a real trainer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import has_exited, signal_own_group

from infimmr_core import checkpoints
from infimmr_core.config import DistributedSettings
from infimmr_core.data import synthetic
from infimmr_core.data.pool_io import write_pool
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import ArtifactRef, key_inputs, stage_key
from infimmr_core.store import LocalStore

CAPTION = "A labelled diagram of the problem"


@pytest.fixture
def env(tmp_path, tiny_model_dir):
    """Store, cache and a smoke recipe whose phase 1 starts from the session's tiny model (no rebuild)."""
    cache = tmp_path / "cache"
    store = LocalStore(tmp_path / "store", cache_dir=cache)
    return store, cache, tiny_model_dir


def recipe_for(store: LocalStore, model_dir: Path, **phase1):
    recipe = load_recipe("smoke")
    recipe.store.uri = store.uri
    recipe.store.cache_dir = str(store.cache_dir)
    recipe.base_model.name_or_path = str(model_dir)
    recipe.rewards.workers = 1
    recipe.runtime.torch_threads = 1
    for name, value in phase1.items():
        setattr(recipe.phases.p1, name, value)
    return recipe


def seed_curate(store: LocalStore, recipe, tmp: Path) -> ArtifactRef:
    """A real curate artifact (pools written by the pool writer), so a phase can run without running curation."""
    pools = tmp / "curate-out"
    images = [s.model_copy(update={"caption": CAPTION}) for s in synthetic.image_problems(8, seed=2)]
    write_pool(synthetic.text_problems(16, seed=1), pools / "pools" / "text.parquet")
    write_pool(images, pools / "pools" / "image_caption.parquet")
    write_pool(images, pools / "pools" / "image.parquet")
    key = stage_key("curate", recipe, {})
    manifest = store.put_dir("curate", key, pools, key_inputs=key_inputs("curate", recipe, {}))
    return ArtifactRef.from_manifest(store, manifest, reused=False)


def start_phase(recipe, curate: ArtifactRef, tmp: Path) -> tuple[subprocess.Popen, str, Path]:
    """Start stage phase1 as the runner does (worker child in its own process group); returns (proc, key, result)."""
    upstream = {"curate": curate.digest}
    key = stage_key("phase1", recipe, upstream)
    result = tmp / f"result-{time.monotonic_ns()}.json"
    spec = tmp / f"spec-{time.monotonic_ns()}.json"
    spec.write_text(json.dumps({
        "stage": "phase1", "key": key, "key_inputs": key_inputs("phase1", recipe, upstream),
        "recipe": recipe.model_dump(mode="json", by_alias=True),
        "upstream": {"curate": curate.model_dump(mode="json")}, "result_path": str(result),
    }))
    log = (tmp / f"phase-{time.monotonic_ns()}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infimmr_core.worker", str(spec)], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc.log_path = Path(log.name)  # type: ignore[attr-defined]
    return proc, key, result


def kill_after_checkpoints(proc: subprocess.Popen, store, key: str, count: int, timeout: float = 240) -> None:
    """SIGKILL a running phase, and every process it started (its own session), once `count` of its checkpoints are
    stored (or as soon as it exits by itself)."""
    deadline = time.monotonic() + timeout
    try:
        while len(checkpoints.stored_steps(store, "phase1", key)) < count and not has_exited(proc):
            assert time.monotonic() < deadline, f"no checkpoint number {count} in time"
            time.sleep(0.02)
    finally:
        signal_own_group(proc)
        proc.wait()


def finish(proc: subprocess.Popen, timeout: float) -> None:
    rc = proc.wait(timeout=timeout)
    assert rc == 0, Path(proc.log_path).read_text()[-4000:]  # type: ignore[attr-defined]


def stored_phase(store: LocalStore, key: str) -> tuple[dict, list[dict]]:
    manifest = store.manifest("phase1", key)
    assert manifest is not None
    root = store.get_dir("phase1", key)
    history = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    return manifest.metrics, history


ARTIFACT_FILES = {"model/config.json", "model/model.safetensors", "model/tokenizer.json", "model/generation_config.json",
                  "metrics.jsonl"}


def test_sigkill_after_second_sync_resumes_from_the_store(env, tmp_path):
    store, cache, model_dir = env
    recipe = recipe_for(store, model_dir, max_steps=12, save_steps=2, keep_last_checkpoints=2)
    curate = seed_curate(store, recipe, tmp_path)
    proc, key, _ = start_phase(recipe, curate, tmp_path)
    kill_after_checkpoints(proc, store, key, 2)
    steps = checkpoints.stored_steps(store, "phase1", key)
    assert len(steps) >= 2 and steps[-1] >= 4, steps
    assert store.manifest("phase1", key) is None, "killed before the end: no phase artifact"
    # Only the store survives: wipe the work directory (and with it every local checkpoint) as a new machine would.
    shutil.rmtree(cache / "work", ignore_errors=True)

    killed_at = max(checkpoints.stored_steps(store, "phase1", key))
    proc, key2, _ = start_phase(recipe, curate, tmp_path)
    assert key2 == key
    finish(proc, timeout=300)
    metrics, history = stored_phase(store, key)
    assert metrics["resumed_from_step"] >= killed_at >= 4
    assert metrics["steps"] == 12
    # The restored trainer state carries the log history: steps before the kill are there once, after it continue.
    logged = [h["step"] for h in history if "loss" in h]
    assert logged == list(range(1, 13))
    # Checkpoints served their purpose once the artifact was committed, and never became part of it.
    assert checkpoints.stored_steps(store, "phase1", key) == []
    files = {f.path for f in store.manifest("phase1", key).files}
    assert ARTIFACT_FILES <= files and not any("checkpoint" in f for f in files)


def test_keep_last_prunes_the_store_while_training(tmp_path):
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    key = "k" * 64
    sync = checkpoints.CheckpointSync(store, "phase1", key, tmp_path / "staging", keep=2)
    ckpt = tmp_path / "ckpt"
    for step in range(1, 5):
        (ckpt / f"checkpoint-{step}").mkdir(parents=True)
        (ckpt / f"checkpoint-{step}" / "weights.bin").write_bytes(bytes([step]) * 64)
        sync.submit(step, ckpt / f"checkpoint-{step}")
        shutil.rmtree(ckpt / f"checkpoint-{step}")  # the trainer rotating it away must not break the upload
    sync.close()
    assert sync.synced == [1, 2, 3, 4]
    assert checkpoints.stored_steps(store, "phase1", key) == [3, 4]
    restored = checkpoints.restore_latest(store, "phase1", key, tmp_path / "trainer")
    assert restored.name == "checkpoint-4" and (restored / "weights.bin").read_bytes() == bytes([4]) * 64


def test_two_process_accelerate_run(env, tmp_path):
    store, cache, model_dir = env
    recipe = recipe_for(
        store, model_dir, distributed=DistributedSettings(num_processes=2), per_device_train_batch_size=2,
        max_steps=2, save_steps=1,
    )
    curate = seed_curate(store, recipe, tmp_path)
    proc, key, _ = start_phase(recipe, curate, tmp_path)
    finish(proc, timeout=400)
    metrics, history = stored_phase(store, key)
    assert metrics["processes"] == 2 and metrics["steps"] == 2
    assert metrics["checkpoints_synced"] == [1, 2]
    assert [h["step"] for h in history if "loss" in h] == [1, 2]
    files = {f.path for f in store.manifest("phase1", key).files}
    assert ARTIFACT_FILES <= files and not any("checkpoint" in f for f in files)
    log = Path(proc.log_path).read_text()  # type: ignore[attr-defined]
    assert "accelerate.commands.launch" in log and "--num_processes 2" in log


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_generations": 8, "per_device_train_batch_size": 4}, "not divisible by num_generations"),
        ({"prompts_per_step": 3}, "prompts_per_step \\* num_generations = 12 is not divisible"),
        ({"eval_steps": 5}, "eval_samples is 0"),
        ({"use_vllm": True, "vllm_mode": "server"}, "needs vllm_server_base_url"),
    ],
)
def test_invalid_phase_settings_fail_at_validation(overrides, message):
    from pydantic import ValidationError

    from infimmr_core.config import PhaseConfig

    base = {"input": "text", "num_generations": 4, "per_device_train_batch_size": 8}
    with pytest.raises(ValidationError, match=message):
        PhaseConfig.model_validate(base | overrides)

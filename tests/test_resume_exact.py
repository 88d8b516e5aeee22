"""A phase killed mid-run and resumed from the store ends with exactly the model an uninterrupted run ends with.

Both runs are the real phase stage (`python -m infimmr_core.worker`, as the runner starts it) with the same recipe and
seed, one intra-op thread (so CPU float reductions do not depend on scheduling), on CPU: the final weights must be
bitwise equal, and the first step trained after the resume must log the uninterrupted run's loss and reward for that
step (the restored weights, optimizer, RNG and data order all show up there). No tolerance is used anywhere.
"""

from __future__ import annotations

import shutil

import pytest
from test_training import finish, kill_after_checkpoints, recipe_for, seed_curate, start_phase, stored_phase

from infimmr_core import checkpoints
from infimmr_core.grpo_phase import MODEL_DIR
from infimmr_core.store import LocalStore

MAX_STEPS, SAVE_STEPS = 8, 2  # checkpoints at 2, 4, 6, 8: killed after the second, at least two steps still to go


def _run_dir(tmp_path, name: str):
    root = tmp_path / name
    root.mkdir()
    return root, LocalStore(root / "store", cache_dir=root / "cache")


def _final_weights(store: LocalStore, key: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(store.get_dir("phase1", key) / MODEL_DIR / "model.safetensors"))


def _steps(history: list[dict]) -> dict[int, dict]:
    return {h["step"]: h for h in history if "loss" in h}


def _measured(entry: dict) -> dict:
    """A log entry without its wall-clock fields (step_time, tokens_per_second, seconds/*, mfu, ...), which no two runs
    share."""
    return {k: v for k, v in entry.items() if not any(t in k for t in ("time", "second", "runtime", "mfu"))}


@pytest.fixture
def uninterrupted(tmp_path, tiny_model_dir):
    root, store = _run_dir(tmp_path, "uninterrupted")
    recipe = recipe_for(store, tiny_model_dir, max_steps=MAX_STEPS, save_steps=SAVE_STEPS, keep_last_checkpoints=2)
    curate = seed_curate(store, recipe, root)
    proc, key, _ = start_phase(recipe, curate, root)
    finish(proc, timeout=300)
    metrics, history = stored_phase(store, key)
    assert metrics["resumed_from_step"] == 0 and metrics["steps"] == MAX_STEPS
    return key, _final_weights(store, key), _steps(history)


def test_resumed_phase_ends_with_the_uninterrupted_weights(uninterrupted, tmp_path, tiny_model_dir):
    import torch

    ref_key, ref_weights, ref_steps = uninterrupted
    root, store = _run_dir(tmp_path, "resumed")
    recipe = recipe_for(store, tiny_model_dir, max_steps=MAX_STEPS, save_steps=SAVE_STEPS, keep_last_checkpoints=2)
    curate = seed_curate(store, recipe, root)
    proc, key, _ = start_phase(recipe, curate, root)
    kill_after_checkpoints(proc, store, key, 2)
    assert store.manifest("phase1", key) is None, "the phase finished before the kill: nothing was resumed"
    killed_at = checkpoints.stored_steps(store, "phase1", key)[-1]
    assert SAVE_STEPS * 2 <= killed_at < MAX_STEPS
    shutil.rmtree(store.cache_dir / "work")  # only the store survives, as on a new machine

    proc, key2, _ = start_phase(recipe, curate, root)
    assert key2 == key == ref_key  # same stage key: the resumed artifact stands for the uninterrupted one
    finish(proc, timeout=300)
    metrics, history = stored_phase(store, key)
    assert metrics["resumed_from_step"] == killed_at and metrics["steps"] == MAX_STEPS

    # The first step this process trained logs what the uninterrupted run logged: loss and rewards, and the
    # weight-sensitive entropy and gradient norm (the rewards alone barely move at the smoke learning rate).
    first = killed_at + 1
    resumed, expected = _measured(_steps(history)[first]), _measured(ref_steps[first])
    assert {"loss", "reward", "entropy", "grad_norm"} <= expected.keys()
    assert resumed == expected

    weights = _final_weights(store, key)
    assert weights.keys() == ref_weights.keys()
    differing = [name for name in weights if not torch.equal(weights[name], ref_weights[name])]
    assert not differing, f"{len(differing)} of {len(weights)} tensors differ from the uninterrupted run: {differing[:5]}"
    log = proc.log_path.read_text()
    assert "missing keys" not in log and "unexpected keys" not in log, log[-3000:]

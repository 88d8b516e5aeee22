"""The base model's background fetch (infimmr_core.prefetch): which runs start it, and that a stage needing the model
while the fetch builds it waits for that build instead of building it a second time."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

import pytest

from infimmr_core import prefetch, tiny_model
from infimmr_core.base_model import model_dir
from infimmr_core.config import ModelRef, TinyModelConfig
from infimmr_core.recipes import load_recipe


@pytest.mark.parametrize(
    "recipe_name, first_to_run, fetches",
    [
        # With a warm-up only the base stage reads the base model; every later stage reads the warm-up's model.
        ("demo", "base", True),
        ("demo", "curate", False),
        ("demo", "phase1", False),
        ("demo", "evaluate", False),
        # Without one, curation (captions, rollouts), phase 1 and evaluation (it scores `base`) read it.
        ("smoke", "curate", True),
        ("smoke", "phase1", True),
        ("smoke", "phase3", True),
        ("smoke", "evaluate", True),
        ("smoke", "publish", False),
    ],
)
def test_the_fetch_starts_only_when_the_run_computes_a_stage_that_reads_the_base_model(recipe_name, first_to_run,
                                                                                       fetches):
    assert prefetch.needs_fetch(load_recipe(recipe_name), first_to_run) is fetches


def _locked_by_someone(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open("w") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def test_a_stage_that_needs_the_model_while_the_fetch_builds_it_waits_for_that_build(tmp_path, monkeypatch):
    ref = ModelRef(name_or_path="tiny", seed=3, tiny=TinyModelConfig(layers=1, hidden_size=32, warm_start_steps=150))
    fetch = prefetch.start(ref, tmp_path)
    try:
        deadline = time.monotonic() + 120
        locks = tmp_path / "models"
        while not any(_locked_by_someone(p) for p in locks.glob(".tiny-*.lock")):
            assert fetch.poll() is None, f"the fetch ended before it took the build lock: {fetch.stderr.read()}"
            assert time.monotonic() < deadline, "the fetch never took the build lock"
            time.sleep(0.05)
        builds: list[Path] = []
        monkeypatch.setattr(tiny_model, "build_tiny_model", lambda out, **kw: builds.append(out))

        found = model_dir(ref, tmp_path)  # what a stage does: blocks until the fetch's build is complete

        assert builds == []  # it did not build beside the fetch
        assert tiny_model._is_complete_tiny_model(found)
        assert fetch.wait(60) == 0
        assert prefetch.stop(fetch) is None
    finally:
        if fetch.poll() is None:
            fetch.kill()
            fetch.wait()


def test_stopping_an_unfinished_fetch_says_so_and_leaves_no_partial_model(tmp_path):
    ref = ModelRef(name_or_path="tiny", seed=4, tiny=TinyModelConfig(layers=1, hidden_size=32, warm_start_steps=2000))
    fetch = prefetch.start(ref, tmp_path)
    deadline = time.monotonic() + 120
    while not any(_locked_by_someone(p) for p in (tmp_path / "models").glob(".tiny-*.lock")):
        assert fetch.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)

    assert "stopped before it finished" in prefetch.stop(fetch)

    assert fetch.returncode is not None
    # Its staging directory was cleaned up (SIGTERM ends it through its `finally`) and no model directory appeared.
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []

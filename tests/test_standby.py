"""A stage of its own runs in the standby process started while the previous one ran (runner._Standby, issue 15): the
interpreter's start and torch's import are done by then. Same artifacts as a fresh process; not used when this
process's environment changed since it started (a variable set for one stage, e.g. publish's Hub token)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infimmr_core import runner
from infimmr_core.recipes import load_recipe
from infimmr_core.runner import close_warm_workers, run_stage_process
from infimmr_core.stages import COLLECT, plan_stage, produce
from infimmr_core.store import LocalStore

NO_MODEL = ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image"]


@pytest.fixture(autouse=True)
def no_standby():
    close_warm_workers()  # another test's standby would otherwise run this test's first stage
    yield
    close_warm_workers()


def _collect(home: Path):
    store = LocalStore(home / "store", cache_dir=home / "cache")
    recipe = load_recipe("smoke", NO_MODEL)
    recipe.store.uri, recipe.store.cache_dir = store.uri, str(store.cache_dir)
    plan = plan_stage(COLLECT, recipe, {})
    ref = produce(store, plan, lambda p: run_stage_process(p, recipe, {}, on_line=lambda line: None, warm=False))
    return store, ref


def test_the_next_stage_runs_in_the_standby_and_stores_what_a_fresh_process_stores(tmp_path):
    first_store, first = _collect(tmp_path / "first")  # no standby yet: a fresh process, and one is started
    standby = runner._STANDBY.pid()
    assert standby is not None and Path(f"/proc/{standby}").exists()

    second_store, second = _collect(tmp_path / "second")

    assert second_store.manifest(second.stage, second.key).producer["pid"] == standby
    assert first_store.manifest(first.stage, first.key).producer["pid"] != standby
    assert (second.key, second.digest) == (first.key, first.digest)
    assert runner._STANDBY.pid() not in (None, standby)  # the one after it is already starting


def test_a_changed_environment_gets_a_fresh_process(tmp_path, monkeypatch):
    _collect(tmp_path / "first")
    standby = runner._STANDBY.pid()
    monkeypatch.setenv("INFIMMR_TEST_ONLY_FOR_THIS_STAGE", "1")

    store, ref = _collect(tmp_path / "second")

    assert store.manifest(ref.stage, ref.key).producer["pid"] != standby


def test_an_unused_standby_ends_after_the_idle_time(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "WARM_IDLE_SECONDS", 0.5)
    _collect(tmp_path / "first")
    standby = runner._STANDBY.pid()
    assert standby is not None

    deadline = time.monotonic() + 30
    while runner._STANDBY.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)

    assert runner._STANDBY.pid() is None


def test_the_standby_preloads_the_model_libraries():
    """A standby imports what a model stage would wait for (worker.preload, PRELOADED). A name that no longer imports
    would be skipped in silence (a preload must never end the standby), so each one is checked here."""
    import subprocess
    import sys

    code = ("import sys; from infimmr_core.worker import PRELOADED, preload; preload(); "
            "print([m for m in ('torch', *PRELOADED) if m not in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("recipe_name, overrides, missing, force, starts", [
    ("demo", [], "base", [], True),  # the warm-up runs in a process of its own
    ("smoke", [], "curate", [], False),  # curation's parts run in warm workers
    ("demo", [], None, ["phase2"], True),  # everything stored, phase 2 forced
    ("demo", [], None, [], False),  # nothing to run
    ("demo", ["runtime.gpu_stage_deployment=infimmr-gpu"], "base", [], False),  # the stage may run elsewhere
])
def test_the_cli_starts_the_first_stages_standby_beside_prefects_start(recipe_name, overrides, missing, force, starts):
    from infimmr.flows.cli import _start_standby

    _start_standby(load_recipe(recipe_name, overrides), missing, force)

    assert (runner._STANDBY.pid() is not None) == starts

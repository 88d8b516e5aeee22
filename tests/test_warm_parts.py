"""Curation's parts run one after another in a warm worker process (issue 15): the same keys and the same artifacts,
byte for byte, as one fresh process per part; a part that fails or times out ends its process, and the next part
gets a new one; idle workers end when told to (or after runner.WARM_IDLE_SECONDS, or with the orchestrator)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from infimmr_core import runner
from infimmr_core.config import Recipe
from infimmr_core.recipes import load_recipe
from infimmr_core.runner import StageFailed, close_warm_workers, run_stage_process
from infimmr_core.stages import COLLECT, ArtifactRef, curate_from_parts, plan_stage, produce
from infimmr_core.store import LocalStore

# Parts without a model: each shard copies its samples, so the test times process start-up and bookkeeping only.
NO_MODEL = ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image"]


@dataclass
class Part:
    ref: ArtifactRef
    state: str


@pytest.fixture(autouse=True)
def no_idle_workers():
    close_warm_workers()  # another test's idle worker would otherwise run this test's first part
    yield
    close_warm_workers()


def _in_store(recipe: Recipe, home: Path) -> tuple[Recipe, LocalStore]:
    store = LocalStore(home / "store", cache_dir=home / "cache")
    recipe = recipe.model_copy(deep=True)
    recipe.store.uri, recipe.store.cache_dir = store.uri, str(store.cache_dir)
    return recipe, store


def curate(recipe: Recipe, home: Path, **how) -> tuple[LocalStore, dict[str, ArtifactRef]]:
    """Every part of the curate stage in a fresh store, as a run computes them; `how` goes to run_stage_process."""
    recipe, store = _in_store(recipe, home)

    def part(stage: str, upstream: dict[str, ArtifactRef]) -> Part:
        ref = produce(store, plan_stage(stage, recipe, upstream),
                      lambda plan: run_stage_process(plan, recipe, upstream, on_line=lambda line: None, **how))
        return Part(ref, "cached" if ref.reused else "completed")

    merged, parts = curate_from_parts(store, recipe, force=False, run_part=part,
                                      run_shards=lambda upstreams: {n: part("curate-shard", u) for n, u in upstreams.items()})
    assert merged is not None
    return store, {name: p.ref for name, p in parts.items()} | {"curate": merged.ref}


def _pids(store: LocalStore, refs: dict[str, ArtifactRef]) -> dict[str, int]:
    return {name: store.manifest(ref.stage, ref.key).producer["pid"] for name, ref in refs.items()}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _same_parts(warm: dict[str, ArtifactRef], fresh: dict[str, ArtifactRef]) -> None:
    assert list(warm) == list(fresh) == ["curate-collect", "shard-00000", "shard-00001", "shard-00002", "curate"]
    assert {n: (r.key, r.digest) for n, r in warm.items()} == {n: (r.key, r.digest) for n, r in fresh.items()}


def test_parts_share_one_process_and_store_what_fresh_processes_store(tmp_path, monkeypatch):
    # The warm worker waits idle while the fresh processes compute the same parts; on a loaded 2-core box that took
    # longer than WARM_IDLE_SECONDS, the worker ended on its own, and close_warm_workers() found nothing to close.
    monkeypatch.setattr(runner, "WARM_IDLE_SECONDS", 3600.0)
    recipe = load_recipe("smoke", NO_MODEL)
    warm_store, warm = curate(recipe, tmp_path / "warm")
    fresh_store, fresh = curate(recipe, tmp_path / "fresh", warm=False)
    _same_parts(warm, fresh)
    warm_pids, fresh_pids = _pids(warm_store, warm), _pids(fresh_store, fresh)
    assert len(set(warm_pids.values())) == 1, warm_pids
    assert len(set(fresh_pids.values())) == len(fresh), fresh_pids
    (pid,) = set(warm_pids.values())
    assert _alive(pid)  # idle, waiting for the next part
    assert close_warm_workers() == 1
    assert not _alive(pid)


def _collect(recipe: Recipe, home: Path, sources: list[dict]) -> ArtifactRef:
    recipe, store = _in_store(recipe, home)
    recipe.curation = recipe.curation.model_validate({**recipe.curation.model_dump(), "sources": sources})
    plan = plan_stage(COLLECT, recipe, {})
    return produce(store, plan, lambda p: run_stage_process(p, recipe, {}, on_line=lambda line: None))


def _producer(home: Path, ref: ArtifactRef) -> int:
    return LocalStore(home / "store", cache_dir=home / "cache").manifest(ref.stage, ref.key).producer["pid"]


def test_a_failed_part_ends_its_process_and_the_next_part_gets_a_new_one(tmp_path):
    recipe = load_recipe("smoke", NO_MODEL)
    good = [{"kind": "synthetic_text", "count": 4, "seed": 1}]
    first = _collect(recipe, tmp_path / "a", good)
    pid = _producer(tmp_path / "a", first)
    with pytest.raises(StageFailed, match=r"stage curate-collect failed with FileNotFoundError: .*missing\.jsonl"):
        _collect(recipe, tmp_path / "b", [{"kind": "canonical", "path": str(tmp_path / "missing.jsonl")}])
    assert not _alive(pid)  # the worker that ran the good part ran the failing one, and ended with it
    after = _collect(recipe, tmp_path / "c", good)
    assert _producer(tmp_path / "c", after) != pid


def test_a_part_that_times_out_is_killed_with_its_process(tmp_path):
    recipe = load_recipe("smoke", NO_MODEL)
    pid = _producer(tmp_path / "a", _collect(recipe, tmp_path / "a", [{"kind": "synthetic_text", "count": 4, "seed": 1}]))
    with pytest.raises(StageFailed, match=r"stage curate-collect timed out after 2 s"):
        # Far more rows than two seconds read (about a millisecond each), in the worker that is warm now
        _collect(load_recipe("smoke", NO_MODEL + ["runtime.stage_timeout_seconds=2"]), tmp_path / "b",
                 [{"kind": "synthetic_text", "count": 200_000, "seed": 1}])
    assert not _alive(pid)
    after = _collect(recipe, tmp_path / "c", [{"kind": "synthetic_text", "count": 4, "seed": 2}])
    assert _producer(tmp_path / "c", after) != pid


def test_a_forked_child_never_uses_the_parents_warm_workers(tmp_path):
    recipe = load_recipe("smoke", NO_MODEL)
    pid = _producer(tmp_path / "a", _collect(recipe, tmp_path / "a", [{"kind": "synthetic_text", "count": 4, "seed": 1}]))
    child = os.fork()
    if child == 0:  # the child has no idle worker of its own, and closing none must not touch the parent's
        os._exit(0 if close_warm_workers() == 0 else 1)
    assert os.waitpid(child, 0)[1] == 0
    assert _alive(pid) and close_warm_workers() == 1


@pytest.mark.slow  # the smoke curation with its model, twice: about a minute on a shared 2-core box
def test_shards_with_a_model_store_the_same_samples_in_a_warm_process(tmp_path):
    """Captions and rollouts (sampled, seeded per batch) in one process after another part's model: the same bytes."""
    recipe = load_recipe("smoke")
    warm_store, warm = curate(recipe, tmp_path / "warm")
    _, fresh = curate(recipe, tmp_path / "fresh", warm=False)
    _same_parts(warm, fresh)
    assert len(set(_pids(warm_store, warm).values())) == 1

"""Cleaning up after itself (issue 13, item 6), the lease's expiry as a setting, and a lease write whose answer was lost.

- A failed task run's Prefect record (its exception, under a random name no cache lookup asks for) used to be written
  into `<store>/_prefect/results/` and pile up there; it is never written now, while a finished stage's record is.
- A stage's work directory and its lock files go when the run that made them ends, success or failure (a failed key's
  own directory stays: it is the state a rerun resumes from). What a run that died left (a private directory whose lock
  nobody holds any more) is removed by the next run on that cache; whatever a live run holds is never touched.
- `store.lease_seconds` sets the lease's expiry, and no key holds it.
- On S3 a conditional write whose answer is lost is sent again and refused (412): the record is already the one it
  wrote. The lease sees that it holds the key (never two holders, never a false "lost")."""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from faulty_s3_proxy import FaultyS3Proxy
from infimmr_core.config import StoreConfig
from infimmr_core.lease import LEASE_SECONDS, LeaseRecord, acquire
from infimmr_core.recipes import load_recipe
from infimmr_core.s3_retry import RetryBudget
from infimmr_core.stages import ArtifactRef, StagePlan, key_inputs, produce
from infimmr_core.store import LocalStore, open_store
from infimmr_core.worker import _try_lock, remove_dead_runs, remove_stale_keys, work_dir_of
from trees import write_tree

pytestmark = pytest.mark.reliability

STAGE = "phase1"


def leftovers(cache: Path) -> list[str]:
    """What is under <cache>/work/<stage>/, relative to <cache>/work."""
    work = cache / "work"
    return sorted(p.relative_to(work).as_posix() for p in work.glob("*/*"))


# ---------------------------------------------------------------------------------------------------------------
# Prefect records of failed task runs
# ---------------------------------------------------------------------------------------------------------------


def test_a_failed_task_runs_record_is_never_written_a_finished_ones_is(prefect_server, tmp_path):
    """Through Prefect's own ResultStore on the stage tasks' result storage (a block saved on the Prefect server), as
    a task run with persist_result=True writes its records."""
    from prefect.results import ResultStore
    from prefect.serializers import JSONSerializer
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import exception_to_failed_state

    from infimmr.tasks.cache import record_name
    from infimmr.tasks.results import RESULTS_PREFIX, result_storage

    cfg = StoreConfig(uri=f"file://{tmp_path / 'store'}", cache_dir=str(tmp_path / "cache"))
    store = open_store(cfg.uri, cache_dir=cfg.cache_dir)
    manifest = store.put_dir("curate", "k1", write_tree(tmp_path / "a", {"rows.jsonl": b"{}\n"}), key_inputs={})
    name = record_name(cfg.uri, "curate", "k1")
    failure = RuntimeError("stage curate failed with ValueError: no rows")
    with temporary_settings({PREFECT_API_URL: prefect_server}):
        results = ResultStore(result_storage=result_storage(cfg), serializer=JSONSerializer())
        ref = ArtifactRef.from_manifest(store, manifest, reused=False)
        results.persist_result_record(results.create_result_record(ref, key=name))
        state = asyncio.run(exception_to_failed_state(failure, result_store=results, write_result=True))

    folder = store.root / RESULTS_PREFIX
    assert sorted(p.name for p in folder.iterdir()) == [name]  # the finished stage's record, and nothing else
    with pytest.raises(RuntimeError, match="no rows"):  # the run itself still has the failure, from memory
        state.result(_sync=True)


# ---------------------------------------------------------------------------------------------------------------
# Work directories
# ---------------------------------------------------------------------------------------------------------------


def test_a_run_that_ends_leaves_no_private_directory_and_no_lock(tmp_path):
    with work_dir_of(tmp_path, "curate-shard", "k1") as own:
        (own / "captions").mkdir(parents=True)
        with work_dir_of(tmp_path, "curate-shard", "k1") as private:  # another process's view: the key's lock is held
            (private / "captions").mkdir(parents=True)
            assert ".run-" in private.name
        assert leftovers(tmp_path) == ["curate-shard/k1", "curate-shard/k1.lock"]
    # The key's own directory (resumable state of a run that did not finish) stays; its lock does not.
    assert leftovers(tmp_path) == ["curate-shard/k1"]
    with pytest.raises(RuntimeError):
        with work_dir_of(tmp_path, "curate-shard", "k1") as own:
            with work_dir_of(tmp_path, "curate-shard", "k1") as private:
                (private / "half").mkdir(parents=True)
                raise RuntimeError("the stage failed")
    assert leftovers(tmp_path) == ["curate-shard/k1"]


def _hold_a_work_dir(cache: Path, stage: str, key: str, ready) -> None:
    """A run (a forked process) that is in its work directory until it is killed."""
    with work_dir_of(cache, stage, key) as work:
        (work / "state").mkdir(parents=True)
        ready.send(str(work))
        time.sleep(600)


def test_what_dead_runs_left_is_removed_by_the_next_run_and_live_runs_are_left_alone(tmp_path):
    fork = multiprocessing.get_context("fork")
    procs, works = [], []
    with work_dir_of(tmp_path, "curate-shard", "k1") as own:  # so the runs below get private directories
        (own / "state").mkdir(parents=True)
        try:
            for stage, key in [("curate-shard", "k1"), ("curate-shard", "k1"), ("evaluate", "k2")]:
                ours, theirs = fork.Pipe()
                proc = fork.Process(target=_hold_a_work_dir, args=(tmp_path, stage, key, theirs), daemon=True)
                proc.start()
                assert ours.poll(60), "the run did not start"
                procs.append(proc)
                works.append(Path(ours.recv()))
            dead, live, dead_key = procs[0], procs[1], procs[2]
            for proc in (dead, dead_key):
                os.kill(proc.pid, signal.SIGKILL)  # no cleanup of its own
                proc.join(30)
            assert works[0].is_dir() and works[2].is_dir()  # what they left

            with work_dir_of(tmp_path, "evaluate", "k3"):  # the next run, of another stage and key
                pass
            assert not works[0].exists()  # a dead run's private directory
            assert works[1].is_dir() and (works[1] / "state").is_dir()  # a live run's, and the key's held lock
            assert own.is_dir() and (tmp_path / "work" / "curate-shard" / "k1.lock").is_file()
            # A dead run's key directory is the key's resumable state: it stays; its lock goes.
            assert works[2].is_dir() and not (tmp_path / "work" / "evaluate" / "k2.lock").exists()
        finally:
            for proc in procs:
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.join(30)
    assert remove_dead_runs(tmp_path / "work") == [works[1], works[1].with_name(works[1].name + ".lock")]
    assert leftovers(tmp_path) == ["curate-shard/k1", "evaluate/k2"]


def test_a_failed_keys_work_directory_goes_once_nothing_touched_it_for_the_configured_age(tmp_path):
    work = tmp_path / "work"
    day, now = 86400.0, time.time()

    def key_dir(name: str, age_days: float) -> Path:
        directory = work / "evaluate" / name
        (directory / "shards").mkdir(parents=True)
        (directory / "shards" / "0.json").write_text("{}")
        for path in (directory / "shards" / "0.json", directory / "shards", directory):
            os.utime(path, (now - age_days * day, now - age_days * day))
        return directory

    old, recent, in_use = key_dir("old", 9), key_dir("recent", 2), key_dir("in-use", 30)
    touched = key_dir("touched", 30)
    os.utime(touched / "shards" / "0.json", (now, now))  # a file written today keeps its whole directory
    held = _try_lock(in_use.with_name("in-use.lock"))  # a live run of that key
    try:
        assert remove_stale_keys(work, max_age_seconds=7 * day, now=now) == [old]
    finally:
        os.close(held)
    assert leftovers(tmp_path) == ["evaluate/in-use", "evaluate/in-use.lock", "evaluate/recent", "evaluate/touched"]
    assert not (work / "evaluate" / "old.lock").exists()  # the lock it took to remove it goes too

    # Through a run: the setting reaches the worker's clean-up; 0 keeps everything.
    assert load_recipe("smoke").store.keep_failed_work_days == 7
    with work_dir_of(tmp_path, "curate", "k", keep_failed_days=0):
        pass
    assert (work / "evaluate" / "recent").is_dir()
    with work_dir_of(tmp_path, "curate", "k", keep_failed_days=1):
        pass
    # One day: the two-day-old directory goes, and so does the one whose run has ended since; today's stays.
    assert leftovers(tmp_path) == ["evaluate/touched"]


# ---------------------------------------------------------------------------------------------------------------
# The lease's expiry is a setting
# ---------------------------------------------------------------------------------------------------------------


def test_the_lease_expiry_is_a_setting_that_no_key_holds(tmp_path):
    default, longer = load_recipe("smoke"), load_recipe("smoke", ["store.lease_seconds=900"])
    assert default.store.lease_seconds == LEASE_SECONDS and longer.store.lease_seconds == 900
    assert "lease" in StoreConfig.model_fields["lease_seconds"].description
    for bad in ("0", "-5", ".inf"):
        with pytest.raises(ValueError):
            load_recipe("smoke", [f"store.lease_seconds={bad}"])
    assert key_inputs("curate", default, {}) == key_inputs("curate", longer, {})

    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    held: list[LeaseRecord] = []

    def run(plan: StagePlan):
        held.append(LeaseRecord.model_validate_json(store.lease_read(plan.stage, plan.key)[0]))
        return store.put_dir(plan.stage, plan.key, write_tree(tmp_path / "a", {"w": b"1"}), key_inputs={})

    produce(store, StagePlan(stage=STAGE, key="k1", key_inputs={}), run, lease_seconds=longer.store.lease_seconds)
    assert [record.ttl for record in held] == [900]


# ---------------------------------------------------------------------------------------------------------------
# A conditional lease write whose answer was lost (S3)
# ---------------------------------------------------------------------------------------------------------------

FAST = RetryBudget(attempts=6, seconds=30, request_attempts=1, base_delay=0.01, max_delay=0.05)

@pytest.fixture
def faulty(s3_server):
    with FaultyS3Proxy(s3_server.endpoint_url) as proxy:
        yield proxy


def is_lease_put(method: str, path: str) -> bool:
    return method == "PUT" and "/.leases/" in path


def is_lease_delete(method: str, path: str) -> bool:
    return method == "DELETE" and "/.leases/" in path


@pytest.mark.parametrize("request_attempts", [1, 3])  # the store's retry loop, and botocore's own retries
def test_a_lease_write_whose_answer_was_lost_is_recognised_as_done(faulty, s3_env, tmp_path, request_attempts):
    budget = RetryBudget(attempts=6, seconds=30, request_attempts=request_attempts, base_delay=0.01, max_delay=0.05)
    mine = open_store(f"s3://{s3_env}/runs", endpoint_url=faulty.url, cache_dir=tmp_path / "a", retry=budget)
    other = open_store(f"s3://{s3_env}/runs", endpoint_url=faulty.url, cache_dir=tmp_path / "b", retry=budget)

    # Create (If-None-Match: *): S3 stored it, the answer was lost, the retry is refused as the record exists.
    faulty.plan(["reset_after"], is_lease_put)
    lease = acquire(mine, STAGE, "k1", ttl=60, poll=0.05)
    assert faulty.faults["reset_after"] == 1 and faulty.repeated == 1
    try:
        # Renew (If-Match: <ETag>): the same.
        faulty.plan(["reset_after"], is_lease_put)
        assert lease.renew() and not lease.lost.is_set()
        assert faulty.faults["reset_after"] == 2
        raw, token = mine.lease_read(STAGE, "k1")
        assert LeaseRecord.model_validate_json(raw) == lease.record and token == lease.token
        assert lease.renew()  # its token is the stored one: the next swap goes through
        # Nobody else gets the key meanwhile.
        with pytest.raises(TimeoutError):
            _acquire_within(other, 1.0)
    finally:
        faulty.plan(["reset_after"], is_lease_delete)
        lease.release()
    assert faulty.faults["reset_after"] == 3
    assert mine.lease_read(STAGE, "k1") is None  # released, although the answer to the delete was lost
    _acquire_within(other, 5.0).release()


def test_taking_over_a_dead_owners_lease_whose_answer_was_lost_holds_it_once(faulty, s3_env, tmp_path):
    mine = open_store(f"s3://{s3_env}/runs", endpoint_url=faulty.url, cache_dir=tmp_path / "a", retry=FAST)
    other = open_store(f"s3://{s3_env}/runs", endpoint_url=faulty.url, cache_dir=tmp_path / "b", retry=FAST)
    dead = LeaseRecord(owner="gone-1-abc", host="gone", pid=1, beat=0, ttl=0.5, written_at=time.time())
    assert mine.lease_create(STAGE, "k1", dead.model_dump_json().encode())
    # With this clock the dead owner's record has expired when first seen: the waiter's first lease PUT is its
    # create (refused: the record exists), the second its takeover swap (If-Match), which S3 does and whose answer
    # is lost; the retry of the swap is refused, as the record changed (to the waiter's own).
    times = iter([0.0] + [1000.0] * 100)
    puts = itertools.count(1)
    faulty.plan(["reset_after"], lambda method, path: is_lease_put(method, path) and next(puts) == 2)
    lease = acquire(mine, STAGE, "k1", ttl=60, poll=0.05, clock=lambda: next(times))
    try:
        assert faulty.faults["reset_after"] == 1 and faulty.planned_left == 0
        raw, token = mine.lease_read(STAGE, "k1")
        assert json.loads(raw)["owner"] == lease.record.owner and token == lease.token
        assert lease.renew() and not lease.lost.is_set()
        with pytest.raises(TimeoutError):
            _acquire_within(other, 1.0)
    finally:
        lease.release()
    assert mine.lease_read(STAGE, "k1") is None


def _acquire_within(store, seconds: float):
    """The lease on (STAGE, k1) if it comes within `seconds`, else TimeoutError (it is held by a live owner)."""
    started = time.monotonic()

    def clock() -> float:
        if time.monotonic() - started > seconds:
            raise TimeoutError(f"no lease within {seconds} s")
        return time.monotonic()

    return acquire(store, STAGE, "k1", ttl=60, poll=0.05, clock=clock)

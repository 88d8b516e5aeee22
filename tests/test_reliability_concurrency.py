"""Concurrent runs on one machine or one store (issue 13, item 3).

Two runs of one recipe at once used to collide: they shared the key's work directory (each deleted it under the
other), both computed every key and both committed it (last writer wins, so the first run's downstream artifacts cited
a digest no longer stored), and put_dir deleted the committed artifact before uploading its replacement. Now a key is
computed once (a lease in the store: infimmr_core.lease), a committed artifact is never replaced in place, and no two
processes share a work directory. Every test runs on a local store and on S3 (the moto server) where the store
matters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from infimmr_core.lease import acquire, holding
from infimmr_core.stages import StagePlan, produce
from infimmr_core.store import MANIFEST_NAME, StoreError, open_store
from infimmr_core.worker import work_dir_of
from trees import read_tree, write_tree

pytestmark = pytest.mark.reliability

STAGE = "phase1"


def stored_objects(store, stage: str, key: str) -> list[str]:
    """Every object (file) the store holds for (stage, key), relative to the artifact's directory."""
    if store.uri.startswith("file://"):
        base = store.root / stage / key
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    base = store._key_prefix(stage, key)
    return sorted(k[len(base):] for k in store._list(base))


# ---------------------------------------------------------------------------------------------------------------
# The lease
# ---------------------------------------------------------------------------------------------------------------


def test_one_holder_at_a_time_among_threads(store):
    inside, most, order = 0, 0, []
    count = threading.Lock()

    def contender(n: int) -> None:
        nonlocal inside, most
        with holding(store, STAGE, "k1", ttl=10, poll=0.02):
            with count:
                inside += 1
                most = max(most, inside)
            time.sleep(0.1)
            with count:
                inside -= 1
                order.append(n)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(order) == list(range(5)) and most == 1
    assert store.lease_read(STAGE, "k1") is None  # released: nothing operational is left behind


HOLDER = """
import sys, time
from infimmr_core.lease import acquire
from infimmr_core.store import open_store
store = open_store(sys.argv[1])
lease = acquire(store, sys.argv[2], sys.argv[3], ttl=float(sys.argv[4]), poll=0.02)
print("held", time.time(), flush=True)
time.sleep(float(sys.argv[5]))
print("release", time.time(), flush=True)
lease.release()
print("lost" if lease.lost.is_set() else "kept", flush=True)
"""


def holder(store, key: str, ttl: float, hold: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, store.uri, STAGE, key, str(ttl), str(hold)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_one_holder_at_a_time_among_processes(store):
    procs = [holder(store, "k1", 10, 0.3) for _ in range(3)]
    spans = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        lines = dict(line.split()[:2] if " " in line else (line, "") for line in out.splitlines())
        spans.append((float(lines["held"]), float(lines["release"])))
        assert "kept" in lines
    spans.sort()
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans


def test_a_dead_owners_lease_is_taken_over_after_its_ttl(store):
    proc = holder(store, "k1", 1.5, 300)
    assert proc.stdout.readline().startswith("held")
    proc.kill()  # SIGKILL: no release, no more heartbeats
    proc.wait(timeout=30)
    waited_for = []
    started = time.monotonic()
    lease = acquire(store, STAGE, "k1", ttl=1.5, poll=0.05, on_wait=waited_for.append)
    elapsed = time.monotonic() - started
    try:
        assert 1.5 <= elapsed < 15, elapsed
        assert waited_for and waited_for[0].pid == proc.pid
        raw, _ = store.lease_read(STAGE, "k1")
        assert json.loads(raw)["owner"] == lease.record.owner
    finally:
        lease.release()


def test_a_live_owner_keeps_its_lease_past_its_ttl(store):
    """Heartbeats keep it: a waiter gets the key only when the owner releases it, 4 ttls later."""
    proc = holder(store, "k1", 0.5, 2.5)
    line = proc.stdout.readline()
    assert line.startswith("held"), proc.stderr.read()[-3000:]
    lease = acquire(store, STAGE, "k1", ttl=0.5, poll=0.02)
    got = time.time()
    lease.release()
    out, _ = proc.communicate(timeout=60)
    released = float(next(l for l in out.splitlines() if l.startswith("release")).split()[1])
    assert got >= released and "kept" in out


def test_only_the_owner_releases(store):
    """An owner that stalls past its ttl (SIGSTOP) loses the key; when it wakes, its release leaves the new owner's
    lease alone, and it knows it lost."""
    proc = holder(store, "k1", 1.0, 2.0)
    assert proc.stdout.readline().startswith("held")
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        lease = acquire(store, STAGE, "k1", ttl=30, poll=0.05)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert out.splitlines()[-1] == "lost"
    raw, _ = store.lease_read(STAGE, "k1")
    assert json.loads(raw)["owner"] == lease.record.owner
    lease.release()
    assert store.lease_read(STAGE, "k1") is None


def test_the_lease_is_never_part_of_an_artifact(store, tmp_path):
    with holding(store, STAGE, "k1", ttl=10):
        manifest = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", {"w.bin": b"weights"}), key_inputs={})
        assert [f.path for f in manifest.files] == ["w.bin"]
        assert stored_objects(store, STAGE, "k1") == sorted([MANIFEST_NAME, "w.bin"])
        assert store.list_keys(STAGE) == ["k1"]


# ---------------------------------------------------------------------------------------------------------------
# A committed artifact is never replaced in place
# ---------------------------------------------------------------------------------------------------------------


def test_a_second_commit_of_a_key_adopts_the_first(store, tmp_path):
    first = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", {"w.bin": b"first run"}), key_inputs={})
    second = store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", {"w.bin": b"second run"}), key_inputs={})
    assert second == first
    assert store.manifest(STAGE, "k1") == first
    assert read_tree(store.get_dir(STAGE, "k1")) == {"w.bin": b"first run"}


def test_a_forced_commit_goes_beside_the_old_artifact_then_switches(store, tmp_path):
    old = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", {"w.bin": b"old", "sub/c.txt": b"c"}), key_inputs={})
    new = store.put_dir(STAGE, "k1", write_tree(tmp_path / "b", {"w.bin": b"new"}), key_inputs={}, replace=True)
    assert new.digest != old.digest and store.manifest(STAGE, "k1") == new
    assert read_tree(store.get_dir(STAGE, "k1")) == {"w.bin": b"new"}
    assert store.get_file(STAGE, "k1", "w.bin").read_bytes() == b"new"
    assert store.read_file(STAGE, "k1", "w.bin") == b"new"
    # The old files are gone once the new manifest is committed; nothing else is left.
    assert stored_objects(store, STAGE, "k1") == sorted([MANIFEST_NAME, f"{new.version}/w.bin"])
    # A third version replaces the second the same way.
    third = store.put_dir(STAGE, "k1", write_tree(tmp_path / "c", {"w.bin": b"third"}), key_inputs={}, replace=True)
    assert read_tree(store.get_dir(STAGE, "k1")) == {"w.bin": b"third"}
    assert stored_objects(store, STAGE, "k1") == sorted([MANIFEST_NAME, f"{third.version}/w.bin"])


def test_a_forced_commit_that_fails_keeps_the_old_artifact(store, tmp_path, monkeypatch):
    """The upload dies after its first file (a crash, a lost connection): the committed artifact is untouched."""
    old = store.put_dir(STAGE, "k1", write_tree(tmp_path / "a", {"a.bin": b"old a", "b.bin": b"old b"}), key_inputs={})
    upload = type(store)._upload_files

    def dies_midway(self, stage, key, local_dir, files, *args, **kwargs):
        upload(self, stage, key, local_dir, files[:1], *args, **kwargs)
        raise StoreError("connection lost")

    monkeypatch.setattr(type(store), "_upload_files", dies_midway)
    new = write_tree(tmp_path / "b", {"a.bin": b"new a", "b.bin": b"new b"})
    with pytest.raises(StoreError, match="connection lost"):
        store.put_dir(STAGE, "k1", new, key_inputs={}, replace=True)
    monkeypatch.undo()
    assert store.manifest(STAGE, "k1") == old
    assert read_tree(store.get_dir(STAGE, "k1")) == {"a.bin": b"old a", "b.bin": b"old b"}


# ---------------------------------------------------------------------------------------------------------------
# produce: one key, one computation, one digest
# ---------------------------------------------------------------------------------------------------------------


def test_concurrent_producers_compute_a_key_once(store, tmp_path):
    """Four runs need the same key at once; each would make different bytes (a run id inside, like wall times in
    metrics). One computes, the others wait and reuse its artifact: one digest everywhere."""
    plan = StagePlan(stage=STAGE, key="k1", key_inputs={})
    runs: list[str] = []

    def run(p: StagePlan):
        run_id = uuid.uuid4().hex
        runs.append(run_id)
        time.sleep(0.5)
        return store.put_dir(p.stage, p.key, write_tree(tmp_path / run_id, {"w.bin": run_id.encode()}),
                             key_inputs={}, replace=p.replace)

    refs = []
    threads = [threading.Thread(target=lambda: refs.append(produce(store, plan, run))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(runs) == 1 and len(refs) == 4
    assert {ref.digest for ref in refs} == {store.manifest(STAGE, "k1").digest}
    assert sorted(ref.reused for ref in refs) == [False, True, True, True]
    forced = produce(store, plan, run, force=True)  # --force: a new version, switched over when complete
    assert len(runs) == 2 and not forced.reused
    assert store.manifest(STAGE, "k1").digest == forced.digest != refs[0].digest


# ---------------------------------------------------------------------------------------------------------------
# Work directories
# ---------------------------------------------------------------------------------------------------------------


def test_work_directories_are_never_shared(tmp_path):
    """The key's own directory (resumable state) goes to one process; another gets a private one, which it removes;
    nobody removes a directory it does not hold."""
    with work_dir_of(tmp_path, "curate-shard", "k1") as first:
        (first / "captions").mkdir(parents=True)
        (first / "captions" / "done.json").write_text("{}")
        with work_dir_of(tmp_path, "curate-shard", "k1") as second:
            assert second != first and not second.is_relative_to(first)
            (second / "captions").mkdir(parents=True)
        assert not second.exists() and (first / "captions" / "done.json").is_file()
    with work_dir_of(tmp_path, "curate-shard", "k1") as again:  # a rerun finds the state it can resume from
        assert again == first and (again / "captions" / "done.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# End to end: two `infimmr run` at once, one store, one cache
# ---------------------------------------------------------------------------------------------------------------


# Every stage of the smoke recipe, each smaller: captions stay (their work directory once collided), difficulty
# rollouts go, one training step per phase, one evaluation set of two items for the last phase. What is checked (who
# computes which key, what is committed) is the same for every stage, whatever its size.
SMALL_SMOKE = ["--set", "curation.difficulty.enabled=false",
               *[arg for n in (1, 2, 3) for arg in ("--set", f"phases.{n}.max_steps=1")],
               "--set", "evaluation.models=[phase3]", "--set", "evaluation.reference_rows=[]",
               "--set", "evaluation.sets=[{name: synthetic-image, kind: synthetic_image, count: 2, seed: 10002, "
                        "input: image}]"]


@pytest.mark.slow
def test_two_concurrent_runs_share_one_store_and_one_cache(cli_env, tmp_path):
    """Both succeed; every key is computed by one of them and committed once; both cite the same digests, which are
    the store's; no lease, lock, private work directory or replaced version is left behind."""
    from test_pipeline import INFIMMR

    store = tmp_path / "store"
    args = INFIMMR + ["run", "--recipe", "smoke", "--store", f"file://{store}", *SMALL_SMOKE, "--json"]
    procs = [subprocess.Popen(args, env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for _ in range(2)]
    try:
        outputs = [proc.communicate(timeout=1500) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-6000:]
    runs = [json.loads(out)["stages"] for out, _ in outputs]
    assert runs[0].keys() == runs[1].keys()
    committed = open_store(f"file://{store}")
    for stage in runs[0]:
        key = runs[0][stage]["uri"].rsplit("/", 1)[1]
        assert runs[1][stage]["uri"] == runs[0][stage]["uri"]
        assert runs[0][stage]["digest"] == runs[1][stage]["digest"] == committed.manifest(stage, key).digest, stage
        assert sorted(run[stage]["state"] for run in runs) == ["cached", "completed"], stage
    # Every key directory holds one committed artifact, never replaced (no version folders), and nothing else.
    for stage_dir in (d for d in store.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))):
        for key_dir in stage_dir.iterdir():
            manifest = committed.manifest(stage_dir.name, key_dir.name)
            assert manifest is not None and not manifest.version, key_dir
            assert sorted(stored_objects(committed, stage_dir.name, key_dir.name)) == \
                sorted([MANIFEST_NAME, *(f.path for f in manifest.files)]), key_dir
    assert not list((store / ".leases").rglob("*.json"))
    work = Path(cli_env["INFIMMR_CACHE_DIR"]) / "work"
    assert not [p for p in work.rglob("*") if ".run-" in p.name or p.name.endswith(".lock")]
    print(f"\ntwo concurrent runs: {sum(1 for r in runs for s in r.values() if s['state'] == 'completed')} stages "
          f"computed, {max(sum(s['seconds'] for s in r.values()) for r in runs):.0f} s")


@pytest.mark.parametrize(("stage", "overrides", "leads"), [
    ("curate-shard", [], True),
    ("phase1", [], True),
    ("phase2", ["phases.2.distributed.num_machines=2", "phases.2.distributed.machine_rank=0"], True),
    # The other nodes of a multi-node phase join rank 0's computation: a lease would deadlock its rendezvous.
    ("phase2", ["phases.2.distributed.num_machines=2", "phases.2.distributed.machine_rank=1"], False),
    ("phase1", ["phases.2.distributed.num_machines=2", "phases.2.distributed.machine_rank=1"], True),
])
def test_which_process_takes_the_lease(stage, overrides, leads):
    from infimmr_core.recipes import load_recipe
    from infimmr_core.stages import leads_its_key

    assert leads_its_key(stage, load_recipe("smoke", overrides)) is leads


def test_a_process_without_single_flight_does_not_wait(store, tmp_path):
    """What a secondary node (or a run handed to a deployment) does: it runs while another holds the lease."""
    plan = StagePlan(stage=STAGE, key="k1", key_inputs={})
    with holding(store, STAGE, "k1", ttl=30):
        ref = produce(store, plan, lambda p: store.put_dir(p.stage, p.key, write_tree(tmp_path / "a", {"w": b"1"}),
                                                           key_inputs={}), single_flight=False)
    assert not ref.reused and store.manifest(STAGE, "k1").digest == ref.digest


@pytest.mark.slow
def test_two_concurrent_curations_on_one_s3_store(s3_env, cli_env, tmp_path):
    """The same through S3's conditional writes: two `infimmr stage curate` at once on one bucket prefix and one cache
    compute every part once (collect, each shard, the merge) and agree on its digest."""
    from test_pipeline import INFIMMR

    uri = f"s3://{s3_env}/shared"
    fast = ["--set", "curation.difficulty.enabled=false"]  # captions stay: their work directory once collided
    args = INFIMMR + ["stage", "curate", "--recipe", "smoke", "--store", uri, *fast, "--json"]
    procs = [subprocess.Popen(args, env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for _ in range(2)]
    try:
        outputs = [proc.communicate(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-6000:]
    runs = [json.loads(out)["stages"]["curate"] for out, _ in outputs]
    assert runs[0]["digest"] == runs[1]["digest"]
    store = open_store(uri)
    computed = [name for run in runs for name, state in {**run.get("parts", {}), "curate": run["state"]}.items()
                if state == "completed"]
    assert len(computed) == len(set(computed)), f"computed twice: {computed}"
    stored = {stage: store.list_keys(stage) for stage in ("curate-collect", "curate-shard", "curate")}
    assert len(computed) == sum(len(keys) for keys in stored.values()), (computed, stored)
    for stage, keys in stored.items():
        for key in keys:
            assert not store.manifest(stage, key).version  # committed once, never replaced
    assert not list(store._list(f"shared/.leases/"))

"""Things that heal (issue 13, item 8): a damaged file that a rerun reads is discarded and recomputed, never a failure
of every rerun; and what a rerun reads is written atomically (temp file, fsync, rename), so a crash leaves the old
file or the whole new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infimmr_core.atomic import read_json_or_none, write_atomic
from infimmr_core.checkpoints import checkpoint_key, checkpoint_stage, restore_latest
from infimmr_core.curation.shards import resumable, results_of
from infimmr_core.data.pool_io import write_pool
from infimmr_core.data.schema import Sample
from infimmr_core.evaluation.generation import generate_resumable
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.inference import SamplingSpec
from infimmr_core.stages import StagePlan, produce
from infimmr_core.store import MANIFEST_NAME, open_store
from test_pipeline import infimmr

pytestmark = pytest.mark.reliability

DAMAGE = {
    "empty": b"",  # no fsync before the rename, then a power cut
    "truncated": b'{"ids": ["a", "b"], "complet',
    "not an object": b"[1, 2, 3]",
    "wrong shape": b'{"ids": ["2", "3"], "completions": [1]}',  # the right rows, but no texts
    "binary junk": b"\x00\xff\xfe" * 10,
}


class CountingGenerator:
    """Deterministic completions (the model is not what these tests are about), counting the rows generated."""

    def __init__(self):
        self.generated: list[str] = []

    def generate(self, requests, sampling):
        self.generated += requests
        return [[f"answer to {request}"] for request in requests]


def _items(n: int) -> list[EvalItem]:
    return [EvalItem(id=str(i), question=f"q{i}", gold=str(i)) for i in range(n)]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_evaluation_shard_is_generated_again(tmp_path, damage):
    items, ids = _items(4), [str(i) for i in range(4)]
    model = CountingGenerator()

    def run():
        return generate_resumable(ids, items, lambda item: item.id, lambda: model, SamplingSpec(), tmp_path, 2)

    first = run()
    (tmp_path / "00001.json").write_bytes(DAMAGE[damage])
    model.generated.clear()
    assert run() == first
    assert model.generated == ["2", "3"]  # only the damaged shard
    assert json.loads((tmp_path / "00001.json").read_text())["completions"] == first[2:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.json", "00001.json"]  # no temp files left


def test_a_damaged_curation_shard_result_is_computed_again(tmp_path):
    shard = tmp_path / "shards" / "shard-00000.parquet"
    write_pool([Sample(id=f"s{i}", source="t", problem=f"p{i}", answer="1") for i in range(3)], shard)
    calls = []

    def compute(samples):
        calls.append(len(samples))
        return {s.id: f"caption {s.id}" for s in samples}

    state = tmp_path / "state"
    assert resumable([shard], state, compute, log=lambda line: None) == 1
    for junk in DAMAGE.values():
        (state / "shard-00000.json").write_bytes(junk)
        assert results_of(state, shard) == {}  # never a crash on read
        assert resumable([shard], state, compute, log=lambda line: None) == 1
    assert calls == [3] * (1 + len(DAMAGE))
    assert results_of(state, shard) == {"s0": "caption s0", "s1": "caption s1", "s2": "caption s2"}


def _damage_manifest(store, stage: str, key: str, data: bytes) -> None:
    if store.uri.startswith("file://"):
        (store.root / stage / key / MANIFEST_NAME).write_bytes(data)
    else:
        store._client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{stage}/{key}/{MANIFEST_NAME}", Body=data)


@pytest.mark.parametrize("damage", [b"", b'{"stage": "curate", "key": "k1", "fil', b"null", b'{"stage": "phase1"}'])
def test_a_damaged_manifest_means_recompute_not_a_permanent_failure(store, tmp_path, damage):
    """The stage's one path from key to artifact (`produce`) runs the stage again and commits a good manifest."""
    src = tmp_path / "out"
    src.mkdir()
    (src / "report.json").write_text('{"kept": 3}')
    plan = StagePlan(stage="curate", key="k1", key_inputs={})
    runs = []

    def run(plan):
        runs.append(plan.key)
        return store.put_dir(plan.stage, plan.key, src, key_inputs={})

    first = produce(store, plan, run)
    _damage_manifest(store, "curate", "k1", damage)
    again = produce(store, plan, run)
    assert runs == ["k1", "k1"] and not again.reused and again.digest == first.digest
    assert produce(store, plan, run).reused  # and the repaired artifact is reused from then on


def test_resume_passes_over_a_damaged_newest_checkpoint(tmp_path):
    store = open_store(f"file://{tmp_path}/store")
    for step in (2, 4):
        src = tmp_path / f"ckpt{step}"
        src.mkdir()
        (src / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        store.put_dir(checkpoint_stage("phase1"), checkpoint_key("k", step), src, key_inputs={})
    (store.root / checkpoint_stage("phase1") / checkpoint_key("k", 4) / MANIFEST_NAME).write_bytes(b"")
    restored = restore_latest(store, "phase1", "k", tmp_path / "trainer")
    assert restored == tmp_path / "trainer" / "checkpoint-2"
    assert json.loads((restored / "trainer_state.json").read_text()) == {"global_step": 2}


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "state.json"
    write_atomic(target, b'{"v": 1}')
    with pytest.raises(TypeError):
        write_atomic(target, object())  # fails mid-write: the old content stays, no temp file is left behind
    assert read_json_or_none(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    for damage in ("empty", "truncated", "binary junk"):
        target.write_bytes(DAMAGE[damage])
        assert read_json_or_none(target) is None, damage
    assert read_json_or_none(tmp_path / "missing.json") is None


@pytest.mark.slow  # two CLI runs: `make test-reliability` and `make test-slow`
def test_a_truncated_manifest_is_recomputed_by_the_cli(cli_env, tmp_path):
    """End to end: `infimmr stage curate`, its MANIFEST.json cut in half, and the same command again succeeds."""
    store = tmp_path / "store"
    args = ["stage", "curate", "--recipe", "smoke", "--store", f"file://{store}", "--set",
            "curation.captioning.enabled=false", "--set", "curation.difficulty.enabled=false",
            "--set", "phases.2.input=image", "--json"]
    first = json.loads(infimmr(args, cli_env, tmp_path).stdout)["stages"]["curate"]
    manifest = Path(first["uri"].removeprefix("file://")) / MANIFEST_NAME
    manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])
    again = json.loads(infimmr(args, cli_env, tmp_path).stdout)["stages"]["curate"]
    assert again["state"] == "completed" and again["uri"] == first["uri"]
    assert json.loads(manifest.read_text())["digest"] == again["digest"]

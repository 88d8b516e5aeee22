"""The curate stage in parts: each part's key holds only what shapes that part, so the expensive shards are reused
when only the band, the pools or a later stage change, and a source that grows keeps the keys of its earlier shards."""

from __future__ import annotations

import hashlib

import pytest

from curation_fixtures import stage_context, write_jsonl
from infimmr_core.curation.collect import collect_part
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import COLLECT, SHARD, stage_key

SHARD_DIGEST = {"shard": "0" * 64}  # a shard's key reads its file's digest, not the whole collect artifact's


def _keys(overrides: list[str]) -> dict[str, str]:
    recipe = load_recipe("smoke", overrides)
    return {stage: stage_key(stage, recipe, SHARD_DIGEST if stage == SHARD else {}) for stage in (COLLECT, SHARD, "curate")}


BASE = _keys([])


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("curation.difficulty.min_pass_rate=0.1", {"curate"}),  # the band is applied in the merge
        ("curation.difficulty.inclusive=false", {"curate"}),
        ("curation.pools.max_text=3", {"curate"}),
        ("curation.pools.overlap=disjoint", {"curate"}),
        ("curation.captioning.max_chars=100", {SHARD, "curate"}),  # caption checks run in the shard
        ("curation.difficulty.rollouts=2", {SHARD, "curate"}),
        ("curation.difficulty.generation.temperature=0.7", {SHARD, "curate"}),
        ("rewards.timeout_seconds=9", {SHARD, "curate"}),
        ("curation.seed=7", {COLLECT, SHARD, "curate"}),
        ("curation.max_problem_chars=100", {COLLECT, "curate"}),  # shards see it only through their content
        ("curation.shard_size=5", {COLLECT, "curate"}),
        ("curation.decontamination.threshold=0.9", {COLLECT, "curate"}),
        ("phases.1.learning_rate=1e-7", set()),
        ("runtime.parallel_shards=4", set()),
    ],
)
def test_a_change_rekeys_exactly_the_parts_it_shapes(override, changed):
    keys = _keys([override])
    assert {stage for stage in keys if keys[stage] != BASE[stage]} == changed


def test_rollouts_off_the_shard_key_ignores_prompts_and_rewards():
    overrides = ["curation.difficulty.pass_rate_column=PassRate_32BTrained"]
    assert _keys(overrides + ["rewards.timeout_seconds=9"])[SHARD] == _keys(overrides)[SHARD]
    assert _keys(overrides + ["curation.difficulty.rollouts=3"])[SHARD] == _keys(overrides)[SHARD]


def _shard_digests(tmp_path, name: str, rows: int) -> dict[str, str]:
    source = write_jsonl(tmp_path / name / "data.jsonl", [{"id": str(i), "problem": f"What is {i} + {i}?", "answer": str(2 * i)}
                                                          for i in range(rows)])
    ctx = stage_context(tmp_path / name, ["curation.shard_size=4"], sources=[{"kind": "canonical", "path": str(source), "name": "d"}])
    shards = collect_part(ctx, ctx.out_dir)
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in shards}


def test_a_grown_source_keeps_its_earlier_shards(tmp_path):
    before, after = _shard_digests(tmp_path, "v1", 10), _shard_digests(tmp_path, "v2", 17)
    # 10 rows -> 4 + 4 + 2; 17 rows -> 4 + 4 + 4 + 4 + 1: the two full shards are byte-identical, so their keys match.
    assert list(before) == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert len(after) == 5
    assert {n: d for n, d in after.items() if before.get(n) == d} == {n: before[n] for n in list(before)[:2]}

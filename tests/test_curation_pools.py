"""Pools written by the stage across many shards: seeded membership, caps and row order, exactly as `assign_pools`
decides from ids alone."""

from __future__ import annotations

import pytest

from curation_fixtures import png, stage_context, write_jsonl
from infimmr_core.config import PoolsConfig
from infimmr_core.curation.stage import curate_locally
from infimmr_core.curation.pools import Candidate, assign_pools
from infimmr_core.data.pool_io import read_pool

FAST = ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image",
        "curation.shard_size=4"]


@pytest.mark.parametrize("overlap", ["shared", "disjoint"])
def test_pools_across_shards(tmp_path, overlap):
    folder = tmp_path / "d"
    (folder / "img").mkdir(parents=True)
    rows = [{"id": f"t{i}", "problem": f"What is {i} + 100?", "answer": str(i + 100)} for i in range(13)]
    for i in range(9):
        (folder / "img" / f"{i}.png").write_bytes(png(20 + i))
        rows.append({"id": f"i{i}", "problem": f"Shape {i}: how many?", "answer": str(i + 10), "images": [f"img/{i}.png"]})
    path = write_jsonl(folder / "mixed.jsonl", rows)
    ctx = stage_context(tmp_path, FAST + [f"curation.pools.overlap={overlap}", "curation.pools.max_text=10"],
                        sources=[{"kind": "canonical", "path": str(path), "name": "m"}])
    metrics = curate_locally(ctx)
    candidates = [Candidate(f"m-{r['id']}", "images" in r, False) for r in rows]
    expected = assign_pools(candidates, PoolsConfig(overlap=overlap, max_text=10), seed=0)
    written = {name: [s.id for s in read_pool(ctx.out_dir / "pools" / f"{name}.parquet")] for name in expected}
    assert written == expected
    assert metrics["pools"] == {name: len(ids) for name, ids in expected.items()}
    assert len(written["text"]) == 10 and len(written["image"]) == (9 if overlap == "shared" else 5)

"""A shard process loads the base model once for its captions and its rollouts (issue 15): both steps default to the
base model, and each shard used to load it twice. The samples are the ones two separate copies write."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
from curation_fixtures import stage_context

import infimmr_core.curation.enrich as enrich_module
from infimmr_core.curation.collect import collect_part
from infimmr_core.curation.enrich import SAMPLES_FILE, enrich, opener


def test_one_model_load_per_shard_for_captions_and_rollouts(tmp_path, tiny_model_dir, monkeypatch):
    ctx = stage_context(tmp_path, [
        f"base_model.name_or_path={tiny_model_dir}", "curation.shard_size=3",
        "curation.captioning.generation.max_new_tokens=4", "curation.difficulty.generation.max_new_tokens=4",
        "curation.difficulty.rollouts=2"],
        sources=[{"kind": "synthetic_image", "count": 3, "seed": 2}])
    (shard,) = collect_part(ctx, tmp_path / "collect")
    loads = []
    real = enrich_module.make_generator
    monkeypatch.setattr(enrich_module, "make_generator", lambda *a, **kw: loads.append(a[1]) or real(*a, **kw))

    enrich(ctx, shard, tmp_path / "shared")
    assert loads == [tiny_model_dir], loads  # the old code loaded it for the captioner, then for the policy
    cur, again = ctx.recipe.curation, replace(ctx, work_dir=tmp_path / "again")  # no captions or rollouts to resume
    enrich(again, shard, tmp_path / "separate", opener(again, cur.captioning.model, cur.captioning.generation),
           opener(again, cur.difficulty.policy, cur.difficulty.generation))
    assert len(loads) == 3
    shared, separate = (pq.read_table(tmp_path / way / SAMPLES_FILE).to_pylist() for way in ("shared", "separate"))
    assert shared == separate and len(shared) == 3 and all(s["caption"] for s in shared)

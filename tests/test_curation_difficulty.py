"""Difficulty filtering with a scripted policy whose pass rates are known: exactly the in-band samples stay, each
carrying its pass rate; rollouts are judged by the training reward code."""

from __future__ import annotations

import re

import pytest

from curation_fixtures import stage_context, write_jsonl, write_parquet
from infimmr_core.curation.stage import curate_locally
from infimmr_core.data.pool_io import read_pool
from infimmr_core.inference import GenerationRequest, SamplingSpec

K = 4
# problem -> (gold, how many of K rollouts are right)
SCRIPT = {f"What is {n} + {n}?": (str(2 * n), n % (K + 1)) for n in range(1, 11)}


class ScriptedPolicy:
    """Answers each known problem right in exactly the scripted number of its rollouts (and in the answer format
    the reward expects), wrong in the others."""

    def __init__(self):
        self.calls = 0

    def generate(self, requests: list[GenerationRequest], sampling: SamplingSpec) -> list[list[str]]:
        self.calls += 1
        out = []
        for request in requests:
            text = request.messages[-1]["content"][-1]["text"]
            gold, right = SCRIPT[text]
            answers = [gold] * right + [str(int(gold) + 1)] * (sampling.n - right)
            out.append([f"<think>adding</think> <answer>\\boxed{{{a}}}</answer>" for a in answers])
        return out


def _context(tmp_path, overrides):
    path = write_jsonl(tmp_path / "d" / "add.jsonl", [{"id": str(i), "problem": p, "answer": g} for i, (p, (g, _)) in enumerate(SCRIPT.items())])
    return stage_context(tmp_path, ["curation.captioning.enabled=false", "phases.2.input=image",
                                    f"curation.difficulty.rollouts={K}", "curation.shard_size=3", *overrides],
                         sources=[{"kind": "canonical", "path": str(path), "name": "add"}])


def _kept(ctx):
    return [s for name in ("text", "image") for s in read_pool(ctx.out_dir / "pools" / f"{name}.parquet")]


@pytest.mark.parametrize(
    ("band_overrides", "kept_rights"),
    [
        (["curation.difficulty.inclusive=false"], {1, 2, 3}),  # default band 0 < p < 1
        (["curation.difficulty.inclusive=true"], {0, 1, 2, 3, 4}),
        (["curation.difficulty.min_pass_rate=0.25", "curation.difficulty.max_pass_rate=0.5", "curation.difficulty.inclusive=true"], {1, 2}),
    ],
)
def test_exactly_in_band_samples_stay(tmp_path, band_overrides, kept_rights):
    ctx = _context(tmp_path, band_overrides)
    policy = ScriptedPolicy()
    report = curate_locally(ctx, open_policy=lambda: policy)
    expected = {p: right / K for p, (_, right) in SCRIPT.items() if right in kept_rights}
    assert {s.problem: s.pass_rate for s in _kept(ctx)} == expected
    assert report["filtered"].get("pass rate out of band", 0) == len(SCRIPT) - len(expected)
    assert policy.calls == 4  # 10 samples in shards of 3


def test_rollouts_resume_per_shard(tmp_path):
    ctx = _context(tmp_path, [])
    curate_locally(ctx, open_policy=ScriptedPolicy)
    (ctx.work_dir / "parts" / "shard-00001-work" / "pass_rates" / "shard-00001.json").unlink()  # as if it died there
    again = ScriptedPolicy()
    curate_locally(ctx, open_policy=lambda: again)
    assert again.calls == 1


def test_dataset_pass_rate_column(tmp_path):
    rows = [
        {"qid": f"q{i}", "question": f"What is {i} + 1?", "answer": f"\\boxed{{{i + 1}}}", "PassRate_32BTrained": rate,
         "PassRate_7BBase": -1.0, "category": "Commonsense", "source": "K12", "image": []}
        for i, rate in enumerate([0.0, 0.25, 1.0, -1.0, 0.5])
    ]
    path = write_parquet(tmp_path / "v" / "39Krelease.parquet", rows)
    ctx = stage_context(tmp_path, ["curation.captioning.enabled=false", "phases.2.input=image",
                                   "curation.difficulty.pass_rate_column=PassRate_32BTrained", "curation.difficulty.inclusive=false"],
                        sources=[{"kind": "virl39k", "path": str(path)}])
    report = curate_locally(ctx, open_policy=lambda: pytest.fail("the column stands in for rollouts"))
    kept = _kept(ctx)
    assert {s.id: s.pass_rate for s in kept} == {"virl39k-q1": 0.25, "virl39k-q4": 0.5}
    assert report["filtered"] == {"pass rate out of band": 2, "no pass rate": 1}
    assert all(re.fullmatch(r"\d+", s.answer) for s in kept)  # the boxed gold was unwrapped

"""The evaluate stage end to end on offline fixtures of every benchmark with the tiny model: the curriculum table,
the protocol on every number, the per-sample JSONL, identical bytes on a rerun, and resuming from saved shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from infimmr_core.context import StageContext
from infimmr_core.evaluation.stage import run
from infimmr_core.evaluation.benchmarks import load_items
from infimmr_core.evaluation.generation import generate_resumable, request_for
from infimmr_core.inference import SamplingSpec, make_generator
from infimmr_core.recipes import load_recipe

PHASES = ("phase1", "phase2", "phase3")
BENCHMARK_SETS = ("mathverse", "mathvision", "mathvista", "olympiadbench", "math500")


def _context(tmp_path: Path, name: str, model_dir: Path, overrides: list[str] = ()) -> StageContext:
    recipe = load_recipe("smoke", [f"base_model.name_or_path={model_dir}", *overrides])
    inputs = {}
    for phase in PHASES:  # every phase artifact holds the tiny model: the stage only reads <artifact>/model
        (tmp_path / "inputs" / phase).mkdir(parents=True, exist_ok=True)
        link = tmp_path / "inputs" / phase / "model"
        if not link.exists():
            link.symlink_to(model_dir, target_is_directory=True)
        inputs[phase] = link.parent
    out = tmp_path / name / "artifact"
    out.mkdir(parents=True)
    return StageContext(
        stage="evaluate", recipe=recipe, inputs=inputs, out_dir=out, work_dir=tmp_path / name / "work",
        cache_dir=tmp_path / "cache", device="cpu", upstream_digests={p: f"{p}-digest" for p in PHASES},
    )


@pytest.fixture(scope="module")
def single_thread():
    # The tiny model is ~100x faster on one thread than on oversubscribed ones (2 shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_runs(tiny_model_dir, tmp_path_factory, single_thread):
    tmp = tmp_path_factory.mktemp("eval")
    first, second = _context(tmp, "first", tiny_model_dir), _context(tmp, "second", tiny_model_dir)
    return (first, run(first)), (second, run(second))


def test_every_benchmark_table_protocol_and_predictions(two_runs):
    (ctx, metrics), _ = two_runs
    recipe = ctx.recipe
    scores = json.loads((ctx.out_dir / "scores.json").read_text())
    assert set(BENCHMARK_SETS) <= set(scores) and set(metrics) == set(scores)
    for name, entry in scores.items():
        assert set(entry["results"]) == {"base", "phase1", "phase2", "phase3"}
        assert entry["protocol"]["model_digest"] == "phase3-digest" and entry["model"] == "phase3"
        # Both verdicts, always; the headline (top level) is the official one, the semantic one sits beside it.
        assert entry["verdict"] == "official" and entry["accuracy"] == entry["results"]["phase3"]["official"]["accuracy"]
        assert entry["semantic_accuracy"] == entry["results"]["phase3"]["semantic"]["accuracy"]
        assert metrics[name]["semantic_accuracy"] == entry["semantic_accuracy"]
        for model, by_scorer in entry["results"].items():
            for verdict in ("official", "semantic"):
                rule = by_scorer[verdict]
                proto = rule["protocol"]
                assert rule["n"] == proto["n"] > 0 and 0 <= rule["accuracy"] <= 100
                assert proto["model"] == model and proto["scorer"]["kind"] == verdict
                assert proto["decoding"] == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 32, "greedy": True}
                assert proto["max_pixels"] == recipe.evaluation.generation.max_pixels
                assert len(proto["prompt_template_id"]) == 12 and proto["libraries"]["math-verify"] != "absent"
                assert proto["split"] and proto["dataset"]
            assert set(by_scorer["official"]["differs_from_semantic"]) == {"official_only", "semantic_only"}
        assert entry["results"]["base"]["official"]["protocol"]["model_digest"]  # the base model's files, hashed
    assert scores["mathverse"]["dataset"] == "fixture:AI4Math/MathVerse" and scores["mathverse"]["split"] == "testmini"
    assert set(scores["mathverse"]["results"]["base"]["official"]["breakdown"]) == {
        "Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only"}

    table = json.loads((ctx.out_dir / "curriculum.json").read_text())
    assert table["columns"] == [s.name for s in recipe.evaluation.sets]
    kinds = [(r["kind"], r["label"]) for r in table["rows"]]
    assert kinds[:4] == [("measured", m) for m in ("base", "phase1", "phase2", "phase3")]
    assert table["headline"] == "official" and table["rows"][0]["scorer"] == "official"
    assert {r["scorer"] for r in table["rows"] if r["kind"] == "measured"} == {"official", "semantic"}
    assert ("delta", "phase3 - base") in kinds and ("published", "Infi-MMR-3B (published)") in kinds
    base = next(r for r in table["rows"] if r["label"] == "base")
    phase3 = next(r for r in table["rows"] if r["label"] == "phase3")
    delta = next(r for r in table["rows"] if r["label"] == "phase3 - base")
    assert delta["scores"] == {c: round(phase3["scores"][c] - base["scores"][c], 2) for c in table["columns"]}

    report = (ctx.out_dir / "report.md").read_text()
    assert "| phase3 - base | delta | official |" in report and "| phase3 | measured | semantic |" in report
    assert "not measured here" in report and "**official** (the headline)" in report

    rows = [json.loads(line) for line in (ctx.out_dir / "predictions.jsonl").read_text().splitlines()]
    n_items = sum(len(load_items(s)) for s in recipe.evaluation.sets)
    assert len(rows) == 4 * n_items
    for row in rows:
        assert {"model", "set", "benchmark", "id", "gold", "completion", "extracted", "correct", "official",
                "semantic"} <= set(row)
        assert row["correct"] == row["official"]["correct"] and isinstance(row["semantic"]["correct"], bool)


def test_rerun_gives_identical_predictions_and_scores(two_runs):
    (first, metrics1), (second, metrics2) = two_runs
    for name in ("predictions.jsonl", "scores.json", "curriculum.json", "report.md"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    assert metrics1 == metrics2


def test_generation_resumes_from_saved_shards(tiny_model_dir, tmp_path, single_thread):
    recipe = load_recipe("smoke")
    items = load_items(recipe.evaluation.sets[3])  # mathvision fixture: images and options
    sampling = SamplingSpec(max_new_tokens=8)
    to_request = lambda item: request_for(item, recipe.prompts.system_prompt, "{question}")  # noqa: E731
    loads = []

    def generator():
        loads.append(1)
        return make_generator("transformers", tiny_model_dir, device="cpu", batch_size=4, max_pixels=50176)

    ids = [item.id for item in items]
    first = generate_resumable(ids, items, to_request, generator, sampling, tmp_path, shard_size=1)
    assert len(first) == len(items) and loads == [1]
    (tmp_path / "00001.json").unlink()  # a crash before the second shard was saved
    again = generate_resumable(ids, items, to_request, generator, sampling, tmp_path, shard_size=1)
    assert again == first and loads == [1, 1]
    generate_resumable(ids, items, to_request, generator, sampling, tmp_path, shard_size=1)
    assert loads == [1, 1]  # everything saved: the model is not even loaded

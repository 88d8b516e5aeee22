"""Decontamination: a training pool seeded with copies of benchmark items loses exactly those, and each removal
records the benchmark item it matched."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from curation_fixtures import png, read_jsonl, stage_context, write_jsonl, write_parquet
from infimmr_core.config import DecontaminationConfig
from infimmr_core.curation.stage import curate_locally
from infimmr_core.curation.decontam import BenchmarkItem, ContaminationIndex, ngrams
from infimmr_core.data.schema import Sample

FAST = ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image"]
MATH500_Q = "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates. Enter your answer in the form $(r,\\theta)$."
MATHVERSE_Q = "As shown in the figure, AB is the diameter of circle O and angle BOC is 50 degrees. Find angle A."


def _jpeg(data: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").resize((80, 80)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _benchmarks(tmp_path):
    math500 = write_jsonl(tmp_path / "bench" / "math500.jsonl", [
        {"problem": MATH500_Q, "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "unique_id": "test/precalculus/807.json"},
        {"problem": "What is the sum of the first 10 positive odd integers?", "answer": "100", "unique_id": "test/algebra/1.json"},
    ])
    mathverse = write_parquet(tmp_path / "bench" / "mathverse.parquet", [
        {"sample_index": "1", "question": MATHVERSE_Q, "image": {"bytes": png(10), "path": None}, "answer": "25"},
        {"sample_index": "5", "question": "", "image": {"bytes": png(11), "path": None}, "answer": "B"},
    ])
    return [{"kind": "math500", "path": str(math500)}, {"kind": "mathverse", "path": str(mathverse)}]


def test_pool_loses_exactly_the_benchmark_copies(tmp_path):
    data = tmp_path / "train"
    (data / "img").mkdir(parents=True)
    for seed in (1, 2, 10):
        (data / "img" / f"{seed}.png").write_bytes(png(seed))
    (data / "img" / "vo.jpg").write_bytes(_jpeg(png(11)))  # the vision-only item's figure, re-encoded and resized
    rows = [
        {"id": "clean1", "problem": "What is 17 + 25?", "answer": "42"},
        {"id": "clean2", "problem": "Convert 3 feet to inches.", "answer": "36"},  # shares words, not the item
        {"id": "clean3", "problem": "How many circles are there?", "answer": "3", "images": ["img/1.png"]},
        {"id": "clean4", "problem": "Find angle A in the triangle.", "answer": "30", "images": ["img/2.png"]},
        {"id": "copy_exact", "problem": MATH500_Q, "answer": "(3, pi/2)"},
        {"id": "copy_case", "problem": "  WHAT is the sum of the first 10 positive odd   integers ", "answer": "100"},
        {"id": "copy_mm", "problem": MATHVERSE_Q, "answer": "25", "images": ["img/10.png"]},
        {"id": "copy_image", "problem": "Answer the question shown in the figure.", "answer": "B", "images": ["img/vo.jpg"]},
    ]
    path = write_jsonl(data / "train.jsonl", rows)
    ctx = stage_context(tmp_path, FAST, sources=[{"kind": "canonical", "path": str(path), "name": "t"}],
                        decontamination={"benchmarks": _benchmarks(tmp_path)})
    curate_locally(ctx)
    report = json.loads((ctx.out_dir / "report.json").read_text())
    assert report["kept"] == 4 and report["filtered"] == {"contaminated": 4}
    assert report["decontamination"] == {"math500": 2, "mathverse": 2}
    removed = {r["id"]: (r["benchmark"], r["item_id"], r["signal"]) for r in read_jsonl(ctx.out_dir / "decontamination.jsonl")}
    assert removed == {
        "t-copy_exact": ("math500", "test/precalculus/807.json", "text"),
        "t-copy_case": ("math500", "test/algebra/1.json", "text"),
        "t-copy_mm": ("mathverse", "1", "text"),
        "t-copy_image": ("mathverse", "5", "image"),
    }


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("What is 2+2?", 8, {"what is 2+2"}),
        ("a b c d", 3, {"a b c", "b c d"}),
        ("", 8, set()),
        ("Hello,   WORLD!", 2, {"hello world"}),
    ],
)
def test_ngrams(text, n, expected):
    assert ngrams(text, n) == expected


@pytest.mark.parametrize(
    ("problem", "threshold", "matched"),
    [
        ("one two three four five six seven eight nine ten", 0.5, True),  # the whole item
        ("zero one two three four five six seven eight nine ten eleven", 0.5, True),  # the item inside a longer text
        ("one two three four five six seven eight", 0.5, False),  # 1 of 3 item 8-grams
        ("one two three four five six seven eight nine", 0.6, True),  # 2 of 3 item 8-grams
        ("one two three four five six seven eight nine", 0.7, False),
    ],
)
def test_text_overlap_threshold(problem, threshold, matched):
    index = ContaminationIndex(
        DecontaminationConfig(threshold=threshold, image_hash_max_distance=None),
        [BenchmarkItem("b", "1", "one two three four five six seven eight nine ten", ())],
    )
    sample = Sample(id="s", source="t", problem=problem, answer="1")
    assert (index.match(sample) is not None) is matched

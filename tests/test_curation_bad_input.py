"""Broken rows never crash the curate stage and never disappear: each lands in the quarantine with its position and
a specific reason, the good rows are all kept, and rows_in == kept + filtered + quarantined."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from curation_fixtures import bomb_png, png, read_jsonl, stage_context
from infimmr_core.curation.stage import curate_locally

# Captions and rollouts are not what these tests are about; phase 2 then cannot ask for captions.
FAST = ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image"]

# (row, expected reason prefix): each one a different way real data breaks.
BROKEN = [
    (b'{"id": "j", "problem": "What is 1+1?", "answer": "2"\n', "invalid JSON"),
    ('{"id": "u", "problem": "caf\xe9", "answer": "1"}\n'.encode("latin-1"), "non-UTF-8 text"),
    ([1, 2, 3], "row is not an object"),
    ({"id": "np", "answer": "3"}, "missing field problem"),
    ({"id": "pt", "problem": {"text": "hi"}, "answer": "3"}, "invalid field problem: expected text, got dict"),
    ({"id": "al", "problem": "Sum?", "answer": ["1", "2"]}, "invalid field answer: expected text, got list"),
    ({"id": "cs", "problem": "Pick.", "answer": "A", "choices": "A or B"}, "invalid field choices: expected a list"),
    ({"id": "pr", "problem": "Sum?", "answer": "4", "pass_rate": "high"}, "invalid field pass_rate"),
    ({"id": "im", "problem": "Area?", "answer": "4", "images": {"path": "a.png"}}, "invalid field images: expected a list"),
    ({"id": "nf", "problem": "Area?", "answer": "4", "images": ["missing.png"]}, "image file not found: missing.png"),
    ({"id": "out", "problem": "Area?", "answer": "4", "images": ["../secret.png"]}, "image path outside the dataset root"),
    ({"id": "abs", "problem": "Area?", "answer": "4", "images": ["/etc/hostname"]}, "image path outside the dataset root"),
    ({"id": "tr", "problem": "Area?", "answer": "4", "images": ["truncated.png"]}, "truncated image"),
    ({"id": "gb", "problem": "Area?", "answer": "4", "images": ["garbage.png"]}, "undecodable image"),
    ({"id": "bo", "problem": "Area?", "answer": "4", "images": ["bomb.png"]}, "decompression bomb"),
    ({"id": "g1", "problem": "Duplicate id row.", "answer": "9"}, "duplicate id: data-g1"),
]
GOOD = [
    {"id": "g1", "problem": "What is 2+2?", "answer": "4"},
    {"id": "g2", "problem": "Solve for x: 2x = 10", "answer": "\\boxed{5}"},
    {"id": "g3", "problem": "How many squares are in the image?", "answer": "3", "images": ["ok/one.png"]},
    {"id": "g4", "problem": "Which is larger?", "answer": "B", "choices": ["1", "2"], "images": ["ok/two.png"]},
    {"id": "g5", "problem": "Name the colour of the square.", "answer": "red"},
]
FILTERED = [{"id": "f1", "problem": "What is 3+3?", "answer": ""}, {"id": "f2", "problem": "Prove that sqrt 2 is irrational.", "answer": "Proof by contradiction."}]


def _dataset(tmp_path):
    folder = tmp_path / "dataset"
    (folder / "ok").mkdir(parents=True)
    (folder / "ok" / "one.png").write_bytes(png(1))
    (folder / "ok" / "two.png").write_bytes(png(2))
    (folder / "truncated.png").write_bytes(png(3)[:120])
    (folder / "garbage.png").write_bytes(b"this is not an image at all")
    (folder / "bomb.png").write_bytes(bomb_png())
    (tmp_path / "secret.png").write_bytes(png(4))
    lines = [GOOD[0]] + [row for row, _ in BROKEN] + GOOD[1:] + FILTERED
    with (folder / "data.jsonl").open("wb") as fh:
        for row in lines:
            fh.write(row if isinstance(row, bytes) else (json.dumps(row) + "\n").encode())
    return folder / "data.jsonl"


def test_broken_rows_go_to_quarantine_with_reasons(tmp_path):
    path = _dataset(tmp_path)
    ctx = stage_context(tmp_path, FAST + ["curation.max_quarantine_fraction=0.9"],
                        sources=[{"kind": "canonical", "path": str(path), "name": "data"}])
    metrics = curate_locally(ctx)
    report = json.loads((ctx.out_dir / "report.json").read_text())
    assert report["rows_in"] == len(GOOD) + len(BROKEN) + len(FILTERED)
    assert report["rows_in"] == report["kept"] + sum(report["filtered"].values()) + sum(report["quarantined"].values())
    assert report["kept"] == len(GOOD) and metrics["kept"] == len(GOOD)
    assert report["filtered"] == {"empty answer": 1, "unverifiable answer": 1}

    quarantine = read_jsonl(ctx.out_dir / "quarantine.jsonl")
    assert len(quarantine) == len(BROKEN)
    for record, (_, reason) in zip(quarantine, BROKEN):
        assert record["reason"].startswith(reason), (record, reason)
        assert record["position"].startswith("data.jsonl:") and record["row"] is not None
    assert quarantine[1]["position"] == "data.jsonl:3"  # line numbers count every line of the file

    from infimmr_core.data.pool_io import read_pool
    kept = {s.id for name in ("text", "image") for s in read_pool(ctx.out_dir / "pools" / f"{name}.parquet")}
    assert kept == {f"data-{row['id']}" for row in GOOD}


def test_too_much_quarantine_fails_and_points_at_it(tmp_path):
    path = _dataset(tmp_path)
    ctx = stage_context(tmp_path, FAST, sources=[{"kind": "canonical", "path": str(path), "name": "data"}])
    with pytest.raises(RuntimeError, match=r"more than curation.max_quarantine_fraction = 5.0%: see .*quarantine.jsonl") as failed:
        curate_locally(ctx)
    pointed_at = Path(re.search(r"see (\S+quarantine\.jsonl)", str(failed.value)).group(1))
    assert len(read_jsonl(pointed_at)) == len(BROKEN)

"""Source adapters on local fixtures in each real dataset's own schema: the canonical fields come out right."""

from __future__ import annotations

import json

import datasets
import pytest

from curation_fixtures import png, write_jsonl, write_parquet
from infimmr_core.config import SourceConfig
from infimmr_core.data.sources import Quarantined, load_source


def _load(**cfg) -> list:
    return list(load_source(SourceConfig(**cfg)))


def test_deepscaler_json_array(tmp_path):
    path = tmp_path / "deepscaler.json"
    path.write_text(json.dumps([
        {"problem": "Let $a_n=6^{n}+8^{n}$. Find $a_{83} \\bmod 49$.", "solution": "... \\boxed{035}", "answer": "35"},
        {"problem": "Compute $1+1$.", "solution": "", "answer": "2"},
    ]))
    first, second = _load(kind="deepscaler", path=str(path))
    assert first.id == "deepscaler-deepscaler.json[0]" and first.source == "deepscaler"
    assert first.problem.startswith("Let $a_n") and first.answer == "35" and first.images == []
    assert first.metadata["solution"] == "... \\boxed{035}" and first.metadata["source_position"] == "deepscaler.json[0]"
    assert second.answer == "2"


def test_deepscaler_lmm_r1_message_copy(tmp_path):
    message = json.dumps([{"role": "system", "content": "think"}, {"role": "user", "content": [{"type": "text", "text": "What is 6*7?"}]}])
    path = write_jsonl(tmp_path / "deepscaler_message.jsonl", [{"message": message, "answer": "$\\boxed{42}$"}])
    (sample,) = _load(kind="deepscaler", path=str(path))
    assert sample.problem == "What is 6*7?" and sample.answer == "$\\boxed{42}$"


def test_virl39k_parquet_with_image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "q1-0.png").write_bytes(png(1))
    path = write_parquet(tmp_path / "39Krelease.parquet", [{
        "qid": "q1", "question": "<image>\nFind the angle x.\nOptions:\nA. 30\nB. 60", "answer": "\\boxed{B}",
        "PassRate_32BTrained": 0.5, "PassRate_7BBase": -1.0, "category": "(GradeSchool) Geometric",
        "source": "MMK12", "image": ["images/q1-0.png"],
    }])
    (sample,) = _load(kind="virl39k", path=str(path))
    assert sample.id == "virl39k-q1" and sample.problem == "Find the angle x.\nOptions:\nA. 30\nB. 60"
    assert sample.answer == "\\boxed{B}" and sample.images == [png(1)]
    assert sample.metadata["PassRate_32BTrained"] == 0.5 and sample.metadata["image_type"] == "geometry"
    assert sample.metadata["source"] == "MMK12"


def test_geometry3k_save_to_disk_folder(tmp_path):
    features = datasets.Features({
        "images": datasets.Sequence(datasets.Image()), "problem": datasets.Value("string"),
        "answer": datasets.Value("string"), "id": datasets.Value("int64"),
        "choices": datasets.Sequence(datasets.Value("string")), "ground_truth": datasets.Value("string"),
    })
    ds = datasets.Dataset.from_dict({
        "images": [[{"bytes": png(2), "path": None}]], "problem": ["<image>Find y."], "answer": ["8"], "id": [7],
        "choices": [["4", "8", "12", "16"]], "ground_truth": ["B"],
    }, features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "geometry3k"))
    (sample,) = _load(kind="geometry3k", path=str(tmp_path / "geometry3k"))
    assert sample.id == "geometry3k-7" and sample.problem == "Find y." and sample.answer == "B"
    assert sample.choices == ["4", "8", "12", "16"] and sample.images == [png(2)]
    assert sample.metadata["answer_value"] == "8" and sample.metadata["image_type"] == "geometry"


def test_mathv360k_conversations(tmp_path):
    (tmp_path / "ChartQA" / "images").mkdir(parents=True)
    (tmp_path / "ChartQA" / "images" / "c.png").write_bytes(png(3))
    path = tmp_path / "train_samples_all_tuning.json"
    path.write_text(json.dumps([
        {"id": "identity_1", "image": "ChartQA/images/c.png", "conversations": [
            {"from": "human", "value": "<image>\nHint: Please answer the question.\nQuestion: What is the peak value?"},
            {"from": "gpt", "value": "The answer is 866."}]},
        {"id": "identity_2", "image": "ChartQA/images/c.png", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the trend."}, {"from": "gpt", "value": "It rises then falls."}]},
    ]))
    first, second = _load(kind="mathv360k", path=str(path))
    assert first.id == "mathv360k-identity_1" and first.problem == "What is the peak value?" and first.answer == "866"
    assert first.images == [png(3)] and first.metadata["image_type"] == "chart"
    assert second.answer_type == "unverifiable"


CANONICAL = [
    {"id": "a", "problem": "What is 2+3?", "answer": "5"},
    {"id": "b", "problem": "Pick one.", "answer": "B", "choices": ["1", "2"], "answer_type": "multiple_choice", "level": 3},
]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv", "disk"])
def test_canonical_local_formats(tmp_path, fmt):
    rows = [{**r, "choices": r.get("choices", [])} for r in CANONICAL]
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "mine.jsonl", rows)
    elif fmt == "json":
        path = tmp_path / "mine.json"
        path.write_text(json.dumps(rows))
    elif fmt == "parquet":
        path = write_parquet(tmp_path / "mine.parquet", [{**r, "level": r.get("level")} for r in rows])
    elif fmt == "csv":
        path = tmp_path / "mine.csv"
        lines = ["id,problem,answer,choices"] + [f'{r["id"]},{r["problem"]},{r["answer"]},"{json.dumps(r["choices"]).replace(chr(34), chr(34) * 2)}"' for r in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        path = tmp_path / "mine"
        datasets.Dataset.from_list([{k: v for k, v in r.items() if k != "level"} for r in rows]).save_to_disk(str(path))
    a, b = _load(kind="canonical", path=str(path))
    assert (a.id, a.problem, a.answer, a.choices) == ("mine-a", "What is 2+3?", "5", [])
    assert (b.answer, b.choices) == ("B", ["1", "2"])
    if fmt in ("jsonl", "json"):
        assert b.answer_type == "multiple_choice" and b.metadata["level"] == 3


def test_hub_id_through_load_dataset_with_mapping(tmp_path):
    # A folder without a save_to_disk layout is what `datasets.load_dataset` resolves like a Hub repository.
    folder = tmp_path / "someone--mathqa"
    write_parquet(folder / "data" / "train-00000.parquet", [{"q": "What is 9-4?", "gold": "5", "uid": "x1"}])
    (sample,) = _load(kind="canonical", path=str(folder), format="hub", mapping={"problem": "q", "answer": "gold", "id": "uid"}, name="mathqa")
    assert (sample.id, sample.source, sample.problem, sample.answer) == ("mathqa-x1", "mathqa", "What is 9-4?", "5")


def test_mapping_names_a_missing_column(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"q": "What is 1+1?", "a": "2"}])
    (row,) = _load(kind="canonical", path=str(path), mapping={"problem": "question", "answer": "a"})
    assert isinstance(row, Quarantined) and row.reason == "missing field question: named in the source mapping"


def test_csv_row_with_non_utf8_bytes_is_quarantined_not_dropped(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"id,problem,answer\na,What is 1+1?,2\nb,Caf\xe9 prices?,3\nc,What is 2+2?,4\n")
    rows = _load(kind="canonical", path=str(path))
    assert [r.id for r in rows if not isinstance(r, Quarantined)] == ["mixed-a", "mixed-c"]
    (bad,) = [r for r in rows if isinstance(r, Quarantined)]
    assert (bad.reason, bad.position) == ("non-UTF-8 text", "mixed.csv:3")


def test_unknown_local_format_and_missing_file_fail_loudly(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(ValueError, match="cannot tell the format"):
        _load(kind="canonical", path=str(tmp_path / "data.txt"))
    with pytest.raises(FileNotFoundError, match="source file not found"):
        _load(kind="canonical", path=str(tmp_path / "absent.jsonl"))

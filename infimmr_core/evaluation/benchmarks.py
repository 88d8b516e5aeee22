"""Benchmark adapters: hub rows (ids and fields as in the dataset cards) -> `EvalItem`s.

Each adapter is a pure function of one row, so the hub dataset, a local copy and the offline fixtures (same schema)
go through exactly the same code. Which configs/splits are read, and how many rows, comes from the `EvalSetConfig`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from PIL import Image

from infimmr_core.config import EvalSetConfig
from infimmr_core.data.images import encode_image
from infimmr_core.data.prompts import with_choices
from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined, load_source
from infimmr_core.evaluation.items import EvalItem

Row = dict[str, Any]


def _image_bytes(value: Any) -> bytes | None:
    """A `datasets` Image feature as it arrives: decoded PIL, {"bytes", "path"} (decode=False) or None."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return encode_image(value)
    if isinstance(value, dict) and value.get("bytes"):
        return value["bytes"]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return None  # a bare path string: the hub copies embed the pixels in another column


def _images(*values: Any) -> tuple[bytes, ...]:
    return tuple(b for b in (_image_bytes(v) for v in values) if b is not None)


# --- MathVerse (AI4Math/MathVerse) -----------------------------------------------------------------------------------

_CHOICE_LINE_RE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.：)]\s*(.+?)\s*$", re.MULTILINE)


def mathverse_choices(question: str) -> tuple[str, ...]:
    """Option texts from the "Choices:\\nA:40°\\nB:60°" block MathVerse embeds in its questions."""
    _, sep, block = question.rpartition("Choices:")
    if not sep:
        return ()
    found = _CHOICE_LINE_RE.findall(block)
    letters = "".join(letter for letter, _ in found)
    # Only a run A, B, C... is an option list; anything else is prose that happens to start with a capital.
    return tuple(text for _, text in found) if "ABCDEFGH".startswith(letters) and letters else ()


def mathverse_item(row: Row, subset: str) -> EvalItem:
    question = (row.get("question") or "").strip()
    version = row.get("problem_version") or subset
    multiple_choice = row.get("question_type") == "multi-choice"
    judge_question = row.get("question_for_eval") or question
    if not question:
        # Vision Only: the question is in the image; MathVerse's own query says so in these words.
        question = "According to the question shown in the image, please answer the question."
    return EvalItem(
        id=f"mathverse-{row['sample_index']}", question=question, gold=str(row["answer"]).strip(),
        images=_images(row.get("image")), multiple_choice=multiple_choice,
        choices=mathverse_choices(judge_question) if multiple_choice else (),
        group=version, judge_question=judge_question,
        extra={"problem_index": str(row.get("problem_index")), "problem_version": version},
    )


# --- MATH-Vision (MathLLMs/MathVision) ------------------------------------------------------------------------------

_IMAGE_TAG_RE = re.compile(r"\s*<image\d*>\s*")


def mathvision_item(row: Row, subset: str) -> EvalItem:
    options = [str(o) for o in (row.get("options") or [])]
    question = _IMAGE_TAG_RE.sub("\n", row["question"]).strip()
    return EvalItem(
        id=f"mathvision-{row['id']}", question=with_choices(question, options), gold=str(row["answer"]).strip(),
        images=_images(row.get("decoded_image")), multiple_choice=bool(options), choices=tuple(options),
        group=f"level {row.get('level')}", judge_question=with_choices(question, options),
        extra={"subject": row.get("subject"), "level": row.get("level")},
    )


# --- MathVista (AI4Math/MathVista) ----------------------------------------------------------------------------------


def mathvista_item(row: Row, subset: str) -> EvalItem:
    choices = [str(c) for c in (row.get("choices") or [])]
    precision = row.get("precision")
    # `query` is MathVista's own prompt: hint on the answer form, the question, choices "(A) ...", the unit.
    query = row.get("query") or with_choices(row["question"], choices)
    return EvalItem(
        id=f"mathvista-{row['pid']}", question=query.strip(), gold=str(row["answer"]).strip(),
        images=_images(row.get("decoded_image")), multiple_choice=row.get("question_type") == "multi_choice",
        choices=tuple(choices), group=row.get("question_type") or "", answer_type=row.get("answer_type"),
        precision=int(precision) if precision is not None else None, unit=row.get("unit") or None,
        judge_question=query.strip(), extra={"answer_type": row.get("answer_type")},
    )


# --- OlympiadBench (Hothan/OlympiadBench) ---------------------------------------------------------------------------

_OLYMPIAD_IMAGE_RE = re.compile(r"<img_\d+>|<image_\d+>")
DEFAULT_OLYMPIAD_TOLERANCE = 1e-8  # the official judge's precision when `error` is empty


def _tolerances(error: Any) -> tuple[float, ...]:
    if error in (None, ""):
        return ()
    return tuple(float(part) for part in str(error).split(","))


def olympiad_prompt(question: str, unit: str | None, multiple: bool, answer_type: str | None) -> str:
    """The question plus the official answer-form instructions (units stay out of the box; several answers are
    comma-separated)."""
    notes = []
    if multiple:
        notes.append("The problem has multiple answers; put all of them in \\boxed{}, separated by commas.")
    if answer_type:
        notes.append(f"The answer type is: {answer_type}.")
    if unit:
        notes.append(f"The unit of the answer is {unit}; do not include the unit in \\boxed{{}}.")
    return "\n".join([question, *notes])


def olympiad_item(row: Row, subset: str) -> EvalItem:
    final = row.get("final_answer") or []
    question = _OLYMPIAD_IMAGE_RE.sub("", row["question"]).strip()
    if row.get("context"):
        question = f"{row['context'].strip()}\n{question}"
    multiple = bool(row.get("is_multiple_answer"))
    unit = row.get("unit") or None
    return EvalItem(
        id=f"olympiadbench-{subset}-{row['id']}",
        question=olympiad_prompt(question, unit, multiple, row.get("answer_type")),
        gold=str(final[0]) if final else "", images=_images(*(row.get(f"image_{i}") for i in range(1, 6))),
        group=subset, answer_type=row.get("answer_type"), unit=unit, tolerances=_tolerances(row.get("error")),
        multiple_answers=multiple, judge_question=question,
        extra={"subfield": row.get("subfield"), "language": row.get("language")},
    )


# --- MATH-500 (HuggingFaceH4/MATH-500) ------------------------------------------------------------------------------


def math500_item(row: Row, subset: str) -> EvalItem:
    return EvalItem(
        id=f"math500-{row['unique_id']}", question=row["problem"].strip(), gold=str(row["answer"]).strip(),
        group=row.get("subject") or "", judge_question=row["problem"].strip(), extra={"level": row.get("level")},
    )


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_id: str
    subsets: tuple[str | None, ...]  # hub configs read by default (None = the dataset's only config)
    split: str | Callable[[str | None], str]  # default split, or a function of the config (MathVerse names them so)
    to_item: Callable[[Row, str], EvalItem]
    headline: str  # how the set's single number is formed (shown in the protocol)

    def default_split(self, subset: str | None) -> str:
        return self.split(subset) if callable(self.split) else self.split


BENCHMARKS: dict[str, Benchmark] = {
    "mathverse": Benchmark(
        "mathverse", "AI4Math/MathVerse", ("testmini", "testmini_text_only"), lambda subset: subset or "testmini",
        mathverse_item, "mean over the five vision problem versions (Text Only reported separately)",
    ),
    "mathvision": Benchmark("mathvision", "MathLLMs/MathVision", (None,), "test", mathvision_item, "accuracy over all rows"),
    "mathvista": Benchmark("mathvista", "AI4Math/MathVista", (None,), "testmini", mathvista_item, "accuracy over all rows"),
    "olympiadbench": Benchmark(
        "olympiadbench", "Hothan/OlympiadBench", ("OE_MM_maths_en_COMP", "OE_TO_maths_en_COMP"), "train", olympiad_item,
        "accuracy over all rows of the selected subsets",
    ),
    "math500": Benchmark("math500", "HuggingFaceH4/MATH-500", (None,), "test", math500_item, "accuracy over all rows"),
}


def _rows_from_hub(bench: Benchmark, subset: str | None, split: str, revision: str | None) -> Iterable[Row]:
    from datasets import load_dataset

    return load_dataset(bench.hub_id, subset, split=split, revision=revision)


def _rows_from_local(path: str, subset: str | None, split: str) -> Iterable[Row]:
    """A `save_to_disk` folder (a DatasetDict keyed by split, or a folder per subset), or a parquet/jsonl file."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    local = Path(path)
    if local.is_dir():
        if subset and (local / subset).is_dir():
            local = local / subset
        data = load_from_disk(str(local))
        return data[split] if isinstance(data, DatasetDict) else data
    kind = "json" if local.suffix in {".jsonl", ".json"} else local.suffix.lstrip(".")
    return load_dataset(kind, data_files=str(local), split="train")


def _limited(rows: Iterable[Row], limit: int | None) -> list[Row]:
    if limit is not None and hasattr(rows, "select"):  # a datasets.Dataset: avoid decoding rows we drop
        rows = rows.select(range(min(limit, len(rows))))
    out = []
    for row in rows:
        if limit is not None and len(out) >= limit:
            break
        out.append(row)
    return out


def benchmark_rows(cfg: EvalSetConfig) -> list[tuple[str | None, Row]]:
    """(subset, row) pairs for a benchmark set, `limit` rows per subset at most."""
    from infimmr_core.evaluation import fixtures

    bench = BENCHMARKS[cfg.benchmark]
    pairs: list[tuple[str | None, Row]] = []
    for subset in cfg.subsets or bench.subsets:
        split = cfg.split or bench.default_split(subset)
        if cfg.source == "fixture":
            rows = fixtures.rows(bench.name, subset, cfg.count, cfg.seed)
        elif cfg.source == "local":
            rows = _rows_from_local(cfg.path, subset, split)
        else:
            rows = _rows_from_hub(bench, subset, split, cfg.revision)
        pairs += [(subset, row) for row in _limited(rows, cfg.limit)]
    return pairs


def _sample_item(sample: Sample, eval_set: EvalSetConfig) -> EvalItem:
    # Canonical samples (synthetic sets, held-out jsonl) keep the training prompt: options listed the same way.
    caption = None
    if eval_set.input == "image_caption":
        if not sample.images or not (sample.caption or "").strip():
            raise ValueError(f"eval set {eval_set.name!r} (input image_caption): row {sample.id!r} needs an image and a caption")
        caption = sample.caption
    return EvalItem(
        id=sample.id, question=with_choices(sample.problem, sample.choices), gold=sample.answer,
        images=tuple(sample.images), multiple_choice=sample.answer_type == "multiple_choice",
        choices=tuple(sample.choices), group=eval_set.input, answer_type=sample.answer_type,
        judge_question=with_choices(sample.problem, sample.choices), caption=caption,
    )


def load_items(cfg: EvalSetConfig) -> list[EvalItem]:
    """The set's items in a stable order; rows a canonical source cannot read are skipped (curation reports them)."""
    if cfg.kind == "benchmark":
        to_item = BENCHMARKS[cfg.benchmark].to_item
        return [to_item(row, subset or "") for subset, row in benchmark_rows(cfg)]
    samples = [s for s in load_source(cfg) if not isinstance(s, Quarantined)]
    return [_sample_item(s, cfg) for s in samples[: cfg.limit]]

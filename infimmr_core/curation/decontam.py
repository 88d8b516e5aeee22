"""Decontamination: drop training samples that are evaluation benchmark items.

A benchmark item matches when enough of its question's word n-grams (after normalisation) occur in the training
question, or when one of its images is perceptually the same as the sample's (MathVerse's vision-only items have no
question text at all). Each removed sample records the benchmark item it matched.

The benchmark reader is deliberately small and independent of the evaluation stage: it only needs ids, question
text and images, read from each benchmark's own published columns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from infimmr_core.config import BenchmarkRef, DecontaminationConfig
from infimmr_core.curation.dedup import HASH_BITS, hamming, normalise_text, perceptual_hash
from infimmr_core.data.adapters import apply_mapping, strip_placeholders
from infimmr_core.data.image_refs import ImageRejected, image_bytes
from infimmr_core.data.readers import UnreadableRow, detect_format, read_rows
from infimmr_core.data.schema import Sample


@dataclass(frozen=True)
class BenchmarkSchema:
    hub_id: str
    config: str | None
    split: str
    id: str
    question: str
    images: tuple[str, ...]


# Columns per benchmark as published (see the dataset fact sheet).
SCHEMAS: dict[str, BenchmarkSchema] = {
    "mathverse": BenchmarkSchema("AI4Math/MathVerse", "testmini", "testmini", "sample_index", "question", ("image",)),
    "mathvista": BenchmarkSchema("AI4Math/MathVista", None, "testmini", "pid", "question", ("decoded_image",)),
    "mathvision": BenchmarkSchema("MathLLMs/MathVision", None, "test", "id", "question", ("decoded_image",)),
    "olympiadbench": BenchmarkSchema(
        "Hothan/OlympiadBench", "OE_MM_maths_en_COMP", "train", "id", "question", tuple(f"image_{i}" for i in range(1, 6))
    ),
    "math500": BenchmarkSchema("HuggingFaceH4/MATH-500", None, "test", "unique_id", "problem", ()),
    "canonical": BenchmarkSchema("", None, "test", "id", "problem", ("images",)),
}


@dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str
    item_id: str
    question: str
    image_hashes: tuple[int, ...]


@dataclass(frozen=True)
class Match:
    benchmark: str
    item_id: str
    signal: str  # "text" or "image"
    overlap: float  # fraction of the item's n-grams found (1.0 for an image match)


def read_benchmark(ref: BenchmarkRef) -> Iterator[BenchmarkItem]:
    schema = SCHEMAS[ref.kind]
    path = ref.path or schema.hub_id
    if not path:
        raise ValueError(f"benchmark kind {ref.kind!r} needs a path")
    fmt = detect_format(path)
    root = None if fmt == "hub" else (Path(path) if Path(path).is_dir() else Path(path).parent)
    rows = read_rows(path, fmt, hub_config=ref.hub_config or schema.config, split=ref.split or schema.split)
    for where, row in rows:
        if isinstance(row, UnreadableRow) or not isinstance(row, dict):
            continue  # a reference row we cannot read cannot match anything; the benchmark's loader reports it
        row = apply_mapping(row, ref.mapping)
        yield BenchmarkItem(
            benchmark=ref.kind if ref.kind != "canonical" else Path(path).stem,
            item_id=str(row.get(schema.id, where)),
            question=strip_placeholders(str(row.get(schema.question) or "")),
            image_hashes=tuple(_hashes(row, schema.images, root)),
        )


def _hashes(row: dict[str, Any], columns: tuple[str, ...], root: Path | None) -> Iterator[int]:
    for column in columns:
        value = row.get(column)
        for one in value if isinstance(value, list) else [value]:
            if one is None or one == "":
                continue
            try:
                yield perceptual_hash(image_bytes(one, root))
            except (ImageRejected, OSError, ValueError):
                continue


def ngrams(text: str, n: int) -> set[str]:
    """Word n-grams of the normalised text; a text shorter than n words is one n-gram."""
    words = normalise_text(text).split()
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class ContaminationIndex:
    def __init__(self, cfg: DecontaminationConfig, items: list[BenchmarkItem] | None = None):
        self.cfg = cfg
        self.items: list[BenchmarkItem] = []
        self.gram_counts: list[int] = []
        self.by_gram: dict[str, list[int]] = {}
        # Pigeonhole: two hashes within distance d < bands agree exactly on at least one band, so band lookups
        # find every candidate without comparing against every benchmark image.
        self.bands = max(1, (cfg.image_hash_max_distance or 0) + 1)
        self.band_bits = HASH_BITS // self.bands
        self.by_band: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for item in items if items is not None else (i for ref in cfg.benchmarks for i in read_benchmark(ref)):
            self.add(item)

    def add(self, item: BenchmarkItem) -> None:
        index = len(self.items)
        self.items.append(item)
        grams = ngrams(item.question, self.cfg.ngram)
        self.gram_counts.append(len(grams))
        for gram in grams:
            self.by_gram.setdefault(gram, []).append(index)
        if self.cfg.image_hash_max_distance is not None:
            for h in item.image_hashes:
                for band in range(self.bands):
                    self.by_band.setdefault((band, self._band(h, band)), []).append((index, h))

    def _band(self, h: int, band: int) -> int:
        return (h >> (band * self.band_bits)) & ((1 << self.band_bits) - 1)

    def __len__(self) -> int:
        return len(self.items)

    def match(self, sample: Sample) -> Match | None:
        hits: Counter[int] = Counter()
        for gram in ngrams(sample.problem, self.cfg.ngram):
            hits.update(self.by_gram.get(gram, ()))
        best = max(hits, key=lambda i: (hits[i] / self.gram_counts[i], -i), default=None)
        if best is not None and hits[best] / self.gram_counts[best] >= self.cfg.threshold:
            item = self.items[best]
            return Match(item.benchmark, item.item_id, "text", round(hits[best] / self.gram_counts[best], 4))
        return self._image_match(sample)

    def _image_match(self, sample: Sample) -> Match | None:
        if self.cfg.image_hash_max_distance is None or not self.by_band:
            return None
        for image in sample.images:
            h = perceptual_hash(image)
            for band in range(self.bands):
                for index, other in self.by_band.get((band, self._band(h, band)), ()):
                    if hamming(h, other) <= self.cfg.image_hash_max_distance:
                        item = self.items[index]
                        return Match(item.benchmark, item.item_id, "image", 1.0)
        return None

"""Row readers: a path (or Hub id) in, `(position, row)` pairs out, one row at a time.

Readers know file formats, not dataset schemas (that is `adapters`). They stream, so memory stays bounded whatever
the source size, and a row they cannot parse comes out as an `UnreadableRow` instead of an exception, so one bad line
never stops a source. Images stay undecoded (bytes or paths): decoding is checked later, per row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import pyarrow.parquet as pq

Format = Literal["auto", "jsonl", "json", "parquet", "csv", "disk", "hub"]
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_BATCH = 256


@dataclass
class UnreadableRow:
    reason: str
    raw: str  # the row's text as far as it could be read


Row = tuple[str, Any]  # (position, a parsed row or an UnreadableRow)


def detect_format(path: str, declared: Format = "auto") -> str:
    if declared != "auto":
        return declared
    local = Path(path)
    if local.is_dir():
        return "disk"
    if local.suffix.lower() in _SUFFIXES:
        if not local.is_file():
            raise FileNotFoundError(f"source file not found: {path}")
        return _SUFFIXES[local.suffix.lower()]
    if local.exists():
        raise ValueError(f"cannot tell the format of {path}: name it with format: jsonl|json|parquet|csv")
    return "hub"  # not a local path: a Hub id (or a `datasets` loading script name)


def read_rows(
    path: str, fmt: Format = "auto", *, hub_config: str | None = None, split: str = "train", revision: str | None = None
) -> Iterator[Row]:
    fmt = detect_format(path, fmt)
    if fmt == "hub":
        yield from _hub(path, hub_config, split, revision)
        return
    local = Path(path)
    if fmt == "disk":
        yield from _disk(local, split)
    else:
        if not local.is_file():
            raise FileNotFoundError(f"source file not found: {path}")
        yield from {"jsonl": _jsonl, "json": _json, "parquet": _parquet, "csv": _csv}[fmt](local)


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path.name}:{number}"
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield where, UnreadableRow("non-UTF-8 text", raw.decode("utf-8", "replace").rstrip("\n"))
                continue
            try:
                yield where, json.loads(text)
            except json.JSONDecodeError as err:
                yield where, UnreadableRow(f"invalid JSON: {err.msg}", text.rstrip("\n"))


def _json(path: Path) -> Iterator[Row]:
    # A JSON array cannot be parsed row by row with the standard library; DeepScaleR's 21 MB file is the size class.
    data = json.loads(path.read_bytes().decode("utf-8"))
    if isinstance(data, dict):  # {"data": [...]}-style wrappers
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError(f"{path}: a JSON source must be an array of rows or an object holding one array")
        data = lists[0]
    if not isinstance(data, list):
        raise ValueError(f"{path}: a JSON source must be an array of rows")
    for index, row in enumerate(data):
        yield f"{path.name}[{index}]", row


def _parquet(path: Path) -> Iterator[Row]:
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH):
        for row in batch.to_pylist():
            yield f"{path.name}[{index}]", row
            index += 1


def _csv(path: Path) -> Iterator[Row]:
    # surrogateescape keeps reading past bad bytes; a row that holds any is reported as non-UTF-8, not dropped.
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            values = [str(v) for v in row.values()]
            if any(_has_surrogates(v) for v in values):
                yield where, UnreadableRow("non-UTF-8 text", ",".join(v.encode("utf-8", "replace").decode() for v in values))
            else:
                yield where, row


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _disk(path: Path, split: str) -> Iterator[Row]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded[split]
    # Arrow batches keep Image columns as {bytes, path} structs: a broken image becomes a quarantined row later
    # instead of an exception inside the iterator.
    index = 0
    for table in loaded.with_format("arrow").iter(batch_size=_BATCH):
        for row in table.to_pylist():
            yield f"{path.name}[{index}]", row
            index += 1


def _hub(hub_id: str, config: str | None, split: str, revision: str | None) -> Iterator[Row]:
    import datasets

    stream = datasets.load_dataset(hub_id, config, split=split, revision=revision, streaming=True)
    for index, row in enumerate(stream.decode(False)):
        yield f"{hub_id}[{index}]", row

"""Row readers: a path (or Hub id) in, `(position, row)` pairs out, one row at a time.

Readers know file formats, not dataset schemas (that is `adapters`). They stream, and no row is held beyond
`max_row_bytes` (a longer JSONL line, JSON element or CSV record is skipped while it is read; a Parquet row group over
`max_row_group_bytes` is not read at all), so memory stays bounded whatever the input. A row they cannot parse comes
out as an `UnreadableRow` instead of an exception, so one bad line never stops a source; a file broken past some point
yields one `UnreadableRow` for the rest. Images stay undecoded (bytes or paths): decoding is checked later, per row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import pyarrow.parquet as pq

from infimmr_core.data.checks import encodable, preview
from infimmr_core.data.json_stream import JsonStreamError, iter_array

Format = Literal["auto", "jsonl", "json", "parquet", "csv", "disk", "hub"]
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_BATCH = 256
_CHUNK = 1 << 20
_PREVIEW_BYTES = 2000  # of a row too long or too broken to parse, for its quarantine record
# The defaults of curation.limits (config.RowLimits), for callers without a recipe (benchmark readers).
MAX_ROW_BYTES = 16 * 1024 * 1024
MAX_ROW_GROUP_BYTES = 1024 * 1024 * 1024


@dataclass
class UnreadableRow:
    reason: str
    raw: Any  # the row as far as it could be read, bounded (checks.preview)


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
    path: str, fmt: Format = "auto", *, hub_config: str | None = None, split: str = "train",
    revision: str | None = None, max_row_bytes: int = MAX_ROW_BYTES, max_row_group_bytes: int = MAX_ROW_GROUP_BYTES,
) -> Iterator[Row]:
    fmt = detect_format(path, fmt)
    if fmt == "hub":
        yield from _hub(path, hub_config, split, revision)
        return
    local = Path(path)
    if fmt == "disk":
        yield from _disk(local, split)
    elif not local.is_file():
        raise FileNotFoundError(f"source file not found: {path}")
    elif fmt == "parquet":
        yield from _parquet(local, max_row_group_bytes)
    else:
        yield from {"jsonl": _jsonl, "json": _json, "csv": _csv}[fmt](local, max_row_bytes)


def parse_json(text: str) -> Any:
    """One row's JSON, or an UnreadableRow saying why not. Python's json goes beyond JSON in ways that would crash
    later: an integer of over 4300 digits raises ValueError, deep nesting RecursionError. NaN and Infinity parse;
    the schema checks refuse them where a number matters."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        return UnreadableRow(f"invalid JSON: {err.msg}", _raw(text))
    except RecursionError:
        return UnreadableRow("invalid JSON: nested too deeply", _raw(text))
    except ValueError as err:  # "Exceeds the limit (4300 digits) for integer string conversion ..."
        return UnreadableRow(f"invalid JSON: {str(err).split(';')[0][:120]}", _raw(text))


def _raw(text: str | bytes | bytearray) -> Any:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[:_PREVIEW_BYTES]).decode("utf-8", "replace")
    return preview(text.rstrip("\r\n"))


def _too_large(limit: int, head: str | bytes | bytearray) -> UnreadableRow:
    return UnreadableRow(f"row too large: over {limit} bytes (curation.limits.max_row_bytes)", _raw(head))


def _jsonl(path: Path, max_row_bytes: int) -> Iterator[Row]:
    with path.open("rb") as fh:
        number = 0
        while raw := _line(fh, max_row_bytes):
            number += 1
            where = f"{path.name}:{number}"
            if len(raw) > max_row_bytes:
                _read_past_line(fh, b"\n")
                yield where, _too_large(max_row_bytes, raw)
                continue
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is not part of the row
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield where, UnreadableRow("non-UTF-8 text", _raw(raw))
                continue
            yield where, parse_json(text)


def _line(fh: Any, limit: int) -> bytearray:
    """The next line, or its first `limit + 1` bytes when it is longer (one growing buffer: a file object's
    readline(limit) may hold the line twice while it joins its pieces)."""
    line = bytearray()
    while len(line) <= limit:
        chunk = fh.readline(min(_CHUNK, limit + 1 - len(line)))
        line += chunk
        if not chunk or chunk.endswith(b"\n"):
            break
    return line


def _read_past_line(fh: Any, newline: str | bytes) -> None:
    """Read past the rest of an over-long line without holding it."""
    while (chunk := fh.readline(1 << 20)) and not chunk.endswith(newline):
        pass


def _json(path: Path, max_row_bytes: int) -> Iterator[Row]:
    index = 0
    with path.open("rb") as fh:
        try:
            for element in iter_array(fh, max_row_bytes):
                where = f"{path.name}[{index}]"
                index += 1
                yield where, _too_large(max_row_bytes, "") if element.text is None else parse_json(element.text)
        except (JsonStreamError, UnicodeDecodeError) as err:
            if index == 0 and isinstance(err, JsonStreamError) and "must be an array" in str(err):
                raise ValueError(f"{path}: {err}") from err  # not a dataset at all: the recipe names the wrong file
            reason = "non-UTF-8 text" if isinstance(err, UnicodeDecodeError) else f"invalid JSON: {err}"
            # Where the structure breaks, rows can no longer be told apart: the rest counts as one unreadable row.
            yield f"{path.name}[{index}:]", UnreadableRow(f"{reason} (the rest of the file is unreadable)", "")


def _parquet(path: Path, max_row_group_bytes: int) -> Iterator[Row]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged footer
        yield path.name, UnreadableRow(f"unreadable Parquet file: {_short_error(err)}", "")
        return
    index = 0
    for group in range(parquet.num_row_groups):
        meta = parquet.metadata.row_group(group)
        done = 0
        if meta.total_byte_size > max_row_group_bytes:
            reason = (f"row too large: its Parquet row group holds {meta.total_byte_size} bytes "
                      f"(curation.limits.max_row_group_bytes = {max_row_group_bytes})")
        else:
            try:
                for batch in parquet.iter_batches(batch_size=_BATCH, row_groups=[group], use_threads=False):
                    for row in batch.to_pylist():
                        yield f"{path.name}[{index}]", row
                        index, done = index + 1, done + 1
                continue
            except Exception as err:  # noqa: BLE001 - a damaged page: the group's remaining rows are unreadable
                reason = f"unreadable Parquet data: {_short_error(err)}"
        for _ in range(meta.num_rows - done):  # each row is still accounted for, one record each
            yield f"{path.name}[{index}]", UnreadableRow(reason, "")
            index += 1


def _short_error(err: Exception) -> str:
    first = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{type(err).__name__}: {first}"


def _csv(path: Path, max_row_bytes: int) -> Iterator[Row]:
    # surrogateescape keeps reading past bad bytes; a row that holds any is reported as non-UTF-8, not dropped.
    # utf-8-sig: a byte order mark would otherwise become part of the first column's name.
    csv.field_size_limit(max_row_bytes)  # one cell; the lines the parser sees are bounded by _BoundedLines
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        lines = _BoundedLines(fh, max_row_bytes)
        reader = csv.reader(lines)
        header: list[str] | None = None
        while True:
            lines.oversized = False
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield f"{path.name}:{reader.line_num}", UnreadableRow(f"invalid CSV row: {err}", "")
                continue
            where = f"{path.name}:{reader.line_num}"
            if lines.oversized:
                if header is None:
                    raise ValueError(f"{path}: the CSV header is longer than {max_row_bytes} bytes")
                yield where, _too_large(max_row_bytes, "")
            elif not values:
                continue  # a blank line
            elif header is None:
                header = values
            elif not all(encodable(v) for v in values):
                yield where, UnreadableRow("non-UTF-8 text", _raw(",".join(values).encode("utf-8", "replace")))
            elif len(values) != len(header):
                yield where, UnreadableRow(f"invalid CSV row: {len(values)} fields, the header has {len(header)}",
                                           _raw(",".join(values)))
            else:
                yield where, dict(zip(header, values))


class _BoundedLines:
    """The lines of a text file for csv.reader, none longer than `limit` characters: a longer one is read past and
    replaced by an empty line, with `oversized` set, so the parser never holds it."""

    def __init__(self, fh: Any, limit: int):
        self.fh, self.limit, self.oversized = fh, limit, False

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.fh.readline(self.limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self.limit and not line.endswith("\n"):
            _read_past_line(self.fh, "\n")
            self.oversized = True
            return "\n"
        return line


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

"""Source adapters: each turns a configured source into canonical samples, and every row it cannot use into a
quarantine record (row, position, reason) instead of an exception or a silent drop.

A source is a reader (file format: `readers`) plus a schema adapter (dataset columns: `adapters`) plus the row and
image checks (`checks`, `image_refs`), composed here. A row becomes a sample only if it passes the schema exactly
(strict types, `curation.limits`); every other row, whatever it holds, is quarantined with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from infimmr_core.config import EvalSetConfig, RowLimits, SourceConfig
from infimmr_core.data import digit_sums, synthetic
from infimmr_core.data.adapters import ADAPTERS, RowRejected, apply_mapping
from infimmr_core.data.checks import check_fields, preview
from infimmr_core.data.image_refs import ImageRejected, check_image, image_bytes
from infimmr_core.data.readers import UnreadableRow, detect_format, read_rows
from infimmr_core.data.schema import Sample

# Pillow's own decompression-bomb warning threshold.
DEFAULT_MAX_DECODE_PIXELS = 89_478_485


@dataclass
class Quarantined:
    source: str
    position: str  # where the row was, e.g. "data.jsonl:17"
    reason: str
    row: Any  # the raw row as far as it could be read (JSON-safe and bounded: checks.preview)


def source_label(cfg: SourceConfig | EvalSetConfig) -> str:
    name = getattr(cfg, "name", None)
    if name:
        return name
    if cfg.kind.startswith("synthetic"):
        return cfg.kind
    return cfg.kind if cfg.kind not in ("canonical", "jsonl") else Path(cfg.path).stem


def load_source(
    cfg: SourceConfig | EvalSetConfig, *, max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
    limits: RowLimits | None = None,
) -> Iterator[Sample | Quarantined]:
    if cfg.kind == "synthetic_text":
        yield from synthetic.text_problems(cfg.count, cfg.seed)
    elif cfg.kind == "synthetic_image":
        yield from synthetic.image_problems(cfg.count, cfg.seed)
    elif cfg.kind == "synthetic_sum_text":
        yield from digit_sums.text_problems(cfg.count, cfg.seed, _synthetic_split(cfg))
    elif cfg.kind == "synthetic_sum_image":
        yield from digit_sums.image_problems(cfg.count, cfg.seed, _synthetic_split(cfg))
    else:
        yield from _from_rows(cfg, max_decode_pixels, limits or RowLimits())


def _synthetic_split(cfg: SourceConfig | EvalSetConfig) -> str:
    # An evaluation set draws held-out items unless told otherwise; a curation source draws training items.
    if cfg.split is not None:
        return cfg.split
    return digit_sums.HELDOUT_SPLIT if isinstance(cfg, EvalSetConfig) else "train"


def _from_rows(
    cfg: SourceConfig | EvalSetConfig, max_decode_pixels: int, limits: RowLimits
) -> Iterator[Sample | Quarantined]:
    # EvalSetConfig has only kind/path; the other settings default for it.
    fmt = getattr(cfg, "format", "auto")
    mapping = getattr(cfg, "mapping", {})
    label = source_label(cfg)
    root = _image_root(cfg, detect_format(cfg.path, fmt))
    rows = read_rows(cfg.path, fmt, hub_config=getattr(cfg, "hub_config", None), split=getattr(cfg, "split", "train"),
                     revision=getattr(cfg, "revision", None), max_row_bytes=limits.max_row_bytes,
                     max_row_group_bytes=limits.max_row_group_bytes)
    max_rows = getattr(cfg, "max_rows", None)
    for count, (where, row) in enumerate(rows):
        if max_rows is not None and count >= max_rows:
            break
        if isinstance(row, UnreadableRow):
            yield Quarantined(label, where, row.reason, row.raw)
            continue
        yield to_sample(row, cfg.kind, mapping, label=label, where=where, root=root,
                        max_decode_pixels=max_decode_pixels, limits=limits)


def _image_root(cfg: SourceConfig | EvalSetConfig, fmt: str) -> Path | None:
    if getattr(cfg, "image_root", None):
        return Path(cfg.image_root)
    if fmt == "hub":
        return None  # Hub rows embed their images; a bare path there cannot be resolved safely
    path = Path(cfg.path)
    return path if path.is_dir() else path.parent


def to_sample(
    row: Any, kind: str, mapping: dict[str, str], *, label: str, where: str, root: Path | None, max_decode_pixels: int,
    limits: RowLimits | None = None,
) -> Sample | Quarantined:
    """One raw row -> a checked canonical sample, or the row in quarantine with the first problem found."""
    limits = limits or RowLimits()
    if not isinstance(row, dict):
        return Quarantined(label, where, "row is not an object", preview(row))
    try:
        fields = ADAPTERS[kind](apply_mapping(row, mapping))
        check_fields(fields, limits)  # before any image is read: types and sizes are cheap to check
        fields["images"] = [_checked_image(value, root, max_decode_pixels, limits)
                            for value in fields.get("images", [])]
    except (RowRejected, ImageRejected) as err:
        return Quarantined(label, where, err.reason, preview(row))
    except Exception as err:  # noqa: BLE001 - whatever else one row does, it must not end the stage
        return Quarantined(label, where, f"row could not be read: {type(err).__name__}: {str(err)[:200]}", preview(row))
    # Prefixed with the source so ids stay unique when several sources number their rows from 1.
    fields["id"] = f"{label}-{fields.get('id', where)}"
    fields.setdefault("source", label)
    fields["metadata"] = {**fields.get("metadata", {}), "source_position": where}
    try:
        # Strict: a row passes the schema as it is, or not at all (no "5" -> 5.0, no 5 -> "5").
        return Sample.model_validate(fields, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return Quarantined(label, where, f"invalid field {field}: {first['msg']}", preview(row))


def _checked_image(value: Any, root: Path | None, max_decode_pixels: int, limits: RowLimits) -> bytes:
    data = image_bytes(value, root, limits.max_image_bytes)
    check_image(data, max_decode_pixels)
    return data

"""Source adapters: each turns a configured source into canonical samples, and every row it cannot use into a
quarantine record (row, position, reason) instead of an exception or a silent drop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from infimmr_core.config import EvalSetConfig, SourceConfig
from infimmr_core.data import synthetic
from infimmr_core.data.schema import Sample


@dataclass
class Quarantined:
    source: str
    position: str  # where the row was, e.g. "data.jsonl:17"
    reason: str
    row: Any  # the raw row as far as it could be read (JSON-safe)


def load_source(cfg: SourceConfig | EvalSetConfig) -> Iterator[Sample | Quarantined]:
    if cfg.kind == "synthetic_text":
        yield from synthetic.text_problems(cfg.count, cfg.seed)
    elif cfg.kind == "synthetic_image":
        yield from synthetic.image_problems(cfg.count, cfg.seed)
    elif cfg.kind == "jsonl":
        yield from _jsonl(Path(cfg.path))
    else:  # pragma: no cover - the config's Literal makes this unreachable
        raise ValueError(f"unknown source kind {cfg.kind}")


def _jsonl(path: Path) -> Iterator[Sample | Quarantined]:
    """Rows in the canonical schema; `images` may list paths relative to the file (they must stay inside its folder)."""
    if not path.is_file():
        raise FileNotFoundError(f"source file not found: {path}")
    root = path.parent.resolve()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path.name}:{number}"
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                yield Quarantined(str(path), where, f"unreadable row: {type(err).__name__}", raw.decode("utf-8", "replace"))
                continue
            yield _row_to_sample(row, root, str(path), where)


def _row_to_sample(row: Any, root: Path, source: str, where: str) -> Sample | Quarantined:
    if not isinstance(row, dict):
        return Quarantined(source, where, "row is not an object", row)
    data = dict(row)
    data.setdefault("source", source)
    data.setdefault("id", f"{Path(source).stem}-{where.rsplit(':', 1)[1]}")
    images = []
    for ref in data.get("images") or []:
        image_path = (root / str(ref)).resolve()
        if not image_path.is_relative_to(root):
            return Quarantined(source, where, f"image path outside the dataset folder: {ref}", row)
        if not image_path.is_file():
            return Quarantined(source, where, f"image file not found: {ref}", row)
        images.append(image_path.read_bytes())
    data["images"] = images
    try:
        return Sample.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return Quarantined(source, where, f"invalid field {field}: {first['msg']}", row)

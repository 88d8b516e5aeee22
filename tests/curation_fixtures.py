"""Small local copies of real datasets, in the real datasets' own schemas (see the dataset fact sheet), built at test
time: the Hub is unreachable here, and the adapters must read exactly what users will point them at."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from infimmr_core.context import StageContext
from infimmr_core.recipes import load_recipe


def png(seed: int, size: tuple[int, int] = (64, 64)) -> bytes:
    """A distinct line drawing per seed (distinct perceptual hashes too)."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    for k in range(4):
        x = (seed * 37 + k * 53) % w
        y = (seed * 91 + k * 29) % h
        draw.rectangle((x // 2, y // 2, x // 2 + w // 3, y // 2 + h // 4), fill=((seed * 50 + k * 70) % 256, 40 * k, 200))
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels: decoding it would need gigabytes."""
    data = bytearray(png(0, (8, 8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def stage_context(tmp_path: Path, overrides: list[str], **curation) -> StageContext:
    """A curate-stage context on the smoke recipe with `--set`-style overrides and whole curation fields replaced."""
    recipe = load_recipe("smoke", overrides)
    if curation:
        merged = recipe.curation.model_validate({**recipe.curation.model_dump(), **curation})
        recipe = recipe.model_copy(update={"curation": merged})
    out = tmp_path / "work" / "artifact"
    out.mkdir(parents=True, exist_ok=True)
    return StageContext("curate", recipe, {}, out, tmp_path / "work", tmp_path / "cache", "cpu", {})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

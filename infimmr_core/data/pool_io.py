"""Curated pools on disk: one Parquet file of canonical samples per pool, images embedded as bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from infimmr_core.data.schema import Sample

POOL_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("problem", pa.string()),
    ("answer", pa.string()),
    ("answer_type", pa.string()),
    ("choices", pa.list_(pa.string())),
    ("images", pa.list_(pa.binary())),
    ("caption", pa.string()),
    ("pass_rate", pa.float64()),
    ("split", pa.string()),
    ("metadata", pa.string()),  # JSON text: sources disagree on its shape, Parquet structs would not
])


def write_pool(samples: list[Sample], path: Path) -> None:
    rows = []
    for s in samples:
        row = s.model_dump()
        row["metadata"] = json.dumps(row["metadata"], sort_keys=True)
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=POOL_SCHEMA), path)


def read_pool(path: Path) -> list[Sample]:
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["metadata"] = json.loads(row["metadata"])
    return [Sample.model_validate(row) for row in rows]

"""The checks every row passes before it becomes a sample, and the bounded preview a quarantined row is kept as.

A row from outside can hold anything JSON or Parquet can: a 50 MB answer, a lone surrogate that no UTF-8 writer
accepts, NaN where a number should be, a thousand levels of nesting. Each check names the field and the bound, so the
quarantine says exactly what was wrong; nothing here raises anything but `RowRejected`, and nothing recurses.
"""

from __future__ import annotations

import json
import math
from typing import Any

from infimmr_core.config import RowLimits
from infimmr_core.data.adapters import MAX_INT_BITS, RowRejected

# A quarantine record shows a row, not all of it: enough to find and fix it.
PREVIEW_CHARS = 2000
PREVIEW_ITEMS = 50
PREVIEW_DEPTH = 6


def check_fields(fields: dict[str, Any], limits: RowLimits) -> None:
    """Raise RowRejected unless the adapter's output has the canonical types within `limits` (images are checked
    when they are read)."""
    if "id" in fields:
        _text(fields["id"], "id", limits.max_id_chars)
    _text(fields.get("problem"), "problem", limits.max_text_chars)
    _text(fields.get("answer"), "answer", limits.max_answer_chars)
    if fields.get("caption") is not None:
        _text(fields["caption"], "caption", limits.max_text_chars)
    choices = fields.get("choices", [])
    _count(choices, "choices", limits.max_choices)
    for index, choice in enumerate(choices):
        _text(choice, f"choices.{index}", limits.max_text_chars)
    _count(fields.get("images", []), "images", limits.max_images)
    for name in ("source", "split", "answer_type"):
        if name in fields:
            _text(fields[name], name, limits.max_id_chars)
    pass_rate = fields.get("pass_rate")
    if pass_rate is not None and (isinstance(pass_rate, bool) or not isinstance(pass_rate, (int, float))
                                  or not math.isfinite(pass_rate) or not 0 <= pass_rate <= 1):
        raise RowRejected(f"invalid field pass_rate: expected a number in [0, 1], got {_short(pass_rate)}")
    metadata = fields.get("metadata", {})
    if not isinstance(metadata, dict):
        raise RowRejected(f"invalid field metadata: expected an object, got {type(metadata).__name__}")
    _json_value(metadata, "metadata", limits.max_metadata_depth)
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limits.max_metadata_bytes:
        raise RowRejected(f"field too large: metadata is {size} bytes as JSON (curation.limits.max_metadata_bytes = "
                          f"{limits.max_metadata_bytes})")


def _text(value: Any, name: str, limit: int) -> None:
    if not isinstance(value, str):
        raise RowRejected(f"invalid field {name}: expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise RowRejected(f"field too large: {name} has {len(value)} characters (limit {limit})")
    if not encodable(value):
        raise RowRejected(f"invalid text in field {name}: a lone surrogate (not encodable as UTF-8)")


def _count(value: Any, name: str, limit: int) -> None:
    if not isinstance(value, list):
        raise RowRejected(f"invalid field {name}: expected a list, got {type(value).__name__}")
    if len(value) > limit:
        raise RowRejected(f"field too large: {name} has {len(value)} items (limit {limit})")


def _json_value(value: Any, name: str, max_depth: int) -> None:
    """Metadata must be plain JSON: strings UTF-8, numbers finite, nesting bounded."""
    stack = [(value, name, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > max_depth:
            raise RowRejected(f"invalid field {name}: nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or not encodable(key):
                    raise RowRejected(f"invalid field {where}: a key that is not UTF-8 text")
                stack.append((child, f"{where}.{_short(key, 40)}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{i}", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if not encodable(item):
                raise RowRejected(f"invalid text in field {where}: a lone surrogate (not encodable as UTF-8)")
        elif isinstance(item, float) and not math.isfinite(item):
            raise RowRejected(f"invalid field {where}: {item} is not a JSON number")
        elif isinstance(item, int) and item.bit_length() > MAX_INT_BITS:
            raise RowRejected(f"invalid field {where}: an integer of {item.bit_length()} bits")
        elif not isinstance(item, (int, float, bool)) and item is not None:
            raise RowRejected(f"invalid field {where}: {type(item).__name__} is not JSON")


def encodable(text: str) -> bool:
    """Can `text` be written as UTF-8 (Parquet, JSON files, the tokenizer)? Lone surrogates cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def preview(value: Any) -> Any:
    """A bounded, JSON-writable copy of any row for its quarantine record: long strings and lists are cut (saying
    how long they were), deep nesting and bytes are summarised, lone surrogates replaced. Never raises."""
    return _preview(value, PREVIEW_DEPTH)


def _preview(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else _short(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _short(value, PREVIEW_CHARS)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if depth <= 0:
        return f"<{type(value).__name__} nested too deep to show>"
    if isinstance(value, dict):
        items = list(value.items())
        shown = {_short(str(k), 200): _preview(v, depth - 1) for k, v in items[:PREVIEW_ITEMS]}
        if len(items) > PREVIEW_ITEMS:
            shown["..."] = f"{len(items) - PREVIEW_ITEMS} more keys"
        return shown
    if isinstance(value, (list, tuple)):
        shown = [_preview(v, depth - 1) for v in value[:PREVIEW_ITEMS]]
        return shown + [f"... {len(value) - PREVIEW_ITEMS} more items"] if len(value) > PREVIEW_ITEMS else shown
    return _short(f"<{type(value).__name__}>", 200)


def _short(value: Any, limit: int = 80) -> str:
    """`value` as UTF-8-safe text of at most about `limit` characters."""
    if isinstance(value, int) and value.bit_length() > 256:
        text = f"<integer of {value.bit_length()} bits>"  # repr() refuses integers of over 4300 digits
    else:
        text = value if isinstance(value, str) else repr(value)
    if not encodable(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"

"""Schema adapters: one known dataset's row in, the canonical sample's fields out (images still undecoded).

Each adapter only moves and renames fields as the dataset stores them (see the dataset fact sheet); answer
normalisation and typing happen later, in curation, the same way for every source. A row that lacks a field the
schema needs, or holds the wrong type, raises `RowRejected` with the field named.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

CANONICAL_FIELDS = ("id", "source", "problem", "answer", "answer_type", "choices", "images", "caption", "pass_rate", "split", "metadata")
# <image>, <image1>, <image_2> (LLaVA, ViRL39K, MATH-V) and <img_3362> (OlympiadBench): the pixels travel separately.
_PLACEHOLDER = re.compile(r"<image[ _]?\d*>|<img_\d+>")


# Python refuses to print integers of over 4300 digits; far below that, no answer or id is that long.
MAX_INT_BITS = 4096


class RowRejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def strip_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub("", text).strip()


def text_field(row: dict[str, Any], key: str, *, required: bool = True, numbers: bool = False) -> str | None:
    """A text column. With `numbers`, a finite number becomes its text (answers and some ids are stored as numbers);
    anything else is an error: NaN or 1e400 is no answer, and would otherwise become the text 'nan' or 'inf'."""
    if key not in row or row[key] is None:
        if required:
            raise RowRejected(f"missing field {key}")
        return None
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float) if numbers else str):
        raise RowRejected(f"invalid field {key}: expected text, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowRejected(f"invalid field {key}: {value} is not a finite number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise RowRejected(f"invalid field {key}: an integer of {value.bit_length()} bits")
    return str(value)


def list_field(row: dict[str, Any], key: str) -> list[Any]:
    value = row.get(key)
    if value is None:
        return []
    if isinstance(value, str) and value.startswith("["):  # CSV cells hold lists as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RowRejected(f"invalid field {key}: {err.msg}") from err
        except (ValueError, RecursionError) as err:  # a giant integer, deep nesting
            raise RowRejected(f"invalid field {key}: {type(err).__name__}") from err
    if not isinstance(value, list):
        raise RowRejected(f"invalid field {key}: expected a list, got {type(value).__name__}")
    return value


# Deeper metadata is refused (checks.check_fields names the configured bound); this only keeps json_safe from
# recursing into a hostile row without end.
MAX_JSON_DEPTH = 64


def json_safe(value: Any, depth: int = 0) -> Any:
    """Metadata must serialise: bytes and other objects become short descriptions, and a non-finite float becomes
    null, JSON's missing number (pandas writes NaN for a missing value)."""
    if depth > MAX_JSON_DEPTH:
        raise RowRejected(f"invalid field metadata: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return str(value)


def _rest(row: dict[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: json_safe(v) for k, v in row.items() if k not in used}


def canonical(row: dict[str, Any]) -> dict[str, Any]:
    """Our own schema; columns it does not name are kept in metadata rather than rejected."""
    out: dict[str, Any] = {k: row[k] for k in CANONICAL_FIELDS if k in row and row[k] is not None}
    out["problem"] = text_field(row, "problem")
    out["answer"] = text_field(row, "answer", numbers=True)
    out["choices"] = list_field(row, "choices")
    out["images"] = list_field(row, "images")
    extra = _rest(row, set(CANONICAL_FIELDS))
    if extra or "metadata" in row:
        metadata = row.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RowRejected(f"invalid field metadata: expected an object, got {type(metadata).__name__}")
        out["metadata"] = {**json_safe(metadata), **extra}
    return out


def deepscaler(row: dict[str, Any]) -> dict[str, Any]:
    """agentica-org/DeepScaleR-Preview-Dataset (problem, solution, answer) or LMM-R1's copy (message JSON, answer)."""
    if "problem" not in row and "message" in row:
        return {"problem": _user_text(row), "answer": text_field(row, "answer", numbers=True),
                "metadata": _rest(row, {"message", "answer"})}
    return {
        "problem": text_field(row, "problem"),
        "answer": text_field(row, "answer", numbers=True),
        "metadata": _rest(row, {"problem", "answer"}),
    }


def _user_text(row: dict[str, Any]) -> str:
    try:
        messages = json.loads(text_field(row, "message"))
        user = [m for m in messages if m.get("role") == "user"][-1]
        content = user["content"]
        parts = [content] if isinstance(content, str) else [p["text"] for p in content if p.get("type") == "text"]
    except (ValueError, RecursionError, AttributeError, IndexError, KeyError, TypeError) as err:
        raise RowRejected(f"invalid field message: {type(err).__name__}") from err
    return "\n".join(parts)


_VIRL_IMAGE_TYPES = {"(GradeSchool) Geometric": "geometry", "Tables/Diagrams/Charts": "chart"}


def virl39k(row: dict[str, Any]) -> dict[str, Any]:
    """TIGER-Lab/ViRL39K: question with <image> placeholders, boxed answer, image = list of relative paths."""
    metadata = _rest(row, {"qid", "question", "answer", "image"})
    if (image_type := _VIRL_IMAGE_TYPES.get(str(row.get("category")))) is not None:
        metadata["image_type"] = image_type
    return {
        "id": text_field(row, "qid", numbers=True),
        "problem": strip_placeholders(text_field(row, "question")),
        "answer": text_field(row, "answer", numbers=True),
        "images": list_field(row, "image"),
        "metadata": metadata,
    }


def geometry3k(row: dict[str, Any]) -> dict[str, Any]:
    """hiyouga/geometry3k: embedded diagram(s), problem, choices, answer (option value), ground_truth (letter)."""
    choices = list_field(row, "choices")
    letter = text_field(row, "ground_truth", required=False)
    value = text_field(row, "answer", numbers=True)
    out = {
        "problem": strip_placeholders(text_field(row, "problem")),
        # The letter is unambiguous against the listed options; the value is kept for scorers that want it.
        "answer": letter if letter and choices else value,
        "choices": [text_field({"choices": c}, "choices", numbers=True) for c in choices],
        "images": list_field(row, "images"),
        "metadata": {**_rest(row, {"problem", "answer", "choices", "images", "ground_truth", "id"}),
                     "answer_value": value, "image_type": "geometry"},
    }
    if row.get("id") is not None:
        out["id"] = text_field(row, "id", numbers=True)
    return out


_MATHV_IMAGE_TYPES = {
    "geometry": ("GeoQA", "Geometry3K", "UniGeo", "GEOS", "geo"),
    "chart": ("ChartQA", "PlotQA", "FigureQA", "DVQA", "MapQA", "DocVQA"),
    "table": ("TabMWP",),
}
_FINAL_ANSWER = re.compile(r"answer is[:\s]*(.+?)\s*\.?\s*$", re.IGNORECASE | re.DOTALL)


def mathv360k(row: dict[str, Any]) -> dict[str, Any]:
    """Zhiqiang007/MathV360K: LLaVA conversations; the gold answer is the gpt turn's 'The answer is ...'."""
    turns = list_field(row, "conversations")
    try:
        human = next(t["value"] for t in turns if t.get("from") == "human")
        gpt = next(t["value"] for t in turns if t.get("from") == "gpt")
    except (StopIteration, AttributeError, KeyError, TypeError) as err:
        raise RowRejected("invalid field conversations: needs a human and a gpt turn") from err
    question = strip_placeholders(str(human))
    question = re.sub(r"^Hint:.*?\n(?=Question:)", "", question, flags=re.DOTALL)
    question = re.sub(r"^Question:\s*", "", question)
    match = _FINAL_ANSWER.search(str(gpt))
    image = text_field(row, "image", required=False)
    metadata = _rest(row, {"id", "image", "conversations"})
    metadata["gold_turn"] = str(gpt)
    folder = (image or "").split("/", 1)[0]
    for kind, prefixes in _MATHV_IMAGE_TYPES.items():
        if folder.startswith(prefixes):
            metadata["image_type"] = kind
    out = {
        "problem": question,
        # No 'The answer is': the gold is a free-form explanation nobody can verify by rule.
        "answer": match.group(1) if match else str(gpt),
        "images": [image] if image else [],
        "metadata": metadata,
    }
    if not match:
        out["answer_type"] = "unverifiable"
    if row.get("id") is not None:
        out["id"] = text_field(row, "id", numbers=True)
    return out


ADAPTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "canonical": canonical,
    "jsonl": canonical,  # the old name of canonical, kept so existing recipes stay valid
    "deepscaler": deepscaler,
    "virl39k": virl39k,
    "geometry3k": geometry3k,
    "mathv360k": mathv360k,
}


def apply_mapping(row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Rename source columns to the names the adapter reads (mapping: target field -> source column)."""
    if not mapping:
        return row
    missing = sorted(col for col in mapping.values() if col not in row)
    if missing:
        raise RowRejected(f"missing field {missing[0]}: named in the source mapping")
    renamed = {k: v for k, v in row.items() if k not in set(mapping.values())}
    renamed.update({field: row[col] for field, col in mapping.items()})
    return renamed

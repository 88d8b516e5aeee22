"""Generation for evaluation: the curation/training prompt builder and the shared inference backends, checkpointed per
shard so a crashed evaluation resumes where it stopped (same stage key -> same work directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from infimmr_core.atomic import read_json_or_none, write_json_atomic
from infimmr_core.data.images import decode_image
from infimmr_core.data.prompts import DEFAULT_CAPTION_TEMPLATE, build_messages
from infimmr_core.data.schema import Sample
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.inference import GenerationRequest, Generator, SamplingSpec


def request_for(item: EvalItem, system_prompt: str, question_template: str,
                caption_template: str = DEFAULT_CAPTION_TEMPLATE) -> GenerationRequest:
    """The same chat layout as training (system prompt, image placeholders, then the text; the caption too where the
    item has one, as phase 2 shows it) for one item."""
    text = question_template.format(question=item.question)
    # Options are already in the item's question (each benchmark lists them its own way): none are appended here.
    sample = Sample(id=item.id, source="evaluation", problem=text, answer=item.gold, images=list(item.images),
                    caption=item.caption)
    phase_input = ("image_caption" if item.caption else "image") if item.images else "text"
    messages = build_messages(sample, phase_input, system_prompt=system_prompt, caption_template=caption_template)
    return GenerationRequest(messages=messages, images=[decode_image(b) for b in item.images])


def generate_resumable(
    ids: list[str],
    items: list[EvalItem],
    to_request: Callable[[EvalItem], GenerationRequest],
    generator: Callable[[], Generator],
    sampling: SamplingSpec,
    shard_dir: Path,
    shard_size: int,
    log: Callable[[str], None] = lambda message: None,
) -> list[str]:
    """One completion per item, in order. Each shard's completions are saved (atomically, fsynced) once generated,
    and a saved shard for the same `ids` (unique per item) is reused; `generator` is only called when a shard is
    missing or its checkpoint is damaged."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    completions: list[str] = []
    model: Generator | None = None
    for index, start in enumerate(range(0, len(items), shard_size)):
        shard = items[start:start + shard_size]
        shard_ids = ids[start:start + shard_size]
        path = shard_dir / f"{index:05d}.json"
        saved = _saved_shard(path, shard_ids)
        if saved is not None:
            completions += saved
            continue
        if path.exists():  # damaged (e.g. empty after a power cut) or for other rows: recomputed, never trusted
            log(f"{shard_dir.name}: shard {index} checkpoint is unreadable or stale; generating it again")
        model = model or generator()
        texts = [group[0] for group in model.generate([to_request(item) for item in shard], sampling)]
        write_json_atomic(path, {"ids": shard_ids, "completions": texts})
        log(f"{shard_dir.name}: shard {index} ({len(shard)} rows) generated")
        completions += texts
    return completions


def _saved_shard(path: Path, shard_ids: list[str]) -> list[str] | None:
    """The completions saved for exactly these ids, or None: missing, truncated, empty or another shape all mean
    "generate again", so a damaged checkpoint costs one shard, never every rerun."""
    saved = read_json_or_none(path)
    if not isinstance(saved, dict) or saved.get("ids") != shard_ids:
        return None
    texts = saved.get("completions")
    if not isinstance(texts, list) or len(texts) != len(shard_ids) or not all(isinstance(t, str) for t in texts):
        return None
    return texts

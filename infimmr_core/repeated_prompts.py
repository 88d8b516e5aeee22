"""The Qwen2.5-VL processor, answering a batch whose prompts repeat by processing each distinct prompt once.

GRPO samples G completions per prompt, and TRL's trainer hands the processor every prompt G times in a row (once to
generate, once more for the log-probability passes): each time, G copies of the same text are tokenised and G copies
of the same pictures are resized, normalised and cut into patches. On the demo's image phases that was about a sixth
of a step on 2 cores. This processor tokenises and preprocesses each distinct (text, pictures) pair once and repeats
its rows: the batch is the one the plain processor gives, value for value (tests/test_repeated_prompts.py), so
nothing trained changes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from transformers import Qwen2_5_VLProcessor as _PlainProcessor

# The only per-picture fields this knows how to repeat: the patches, and the grid that says how many belong to each.
_PER_IMAGE = {"pixel_values", "image_grid_thw"}


def _fingerprint(image: Any) -> tuple:
    pixels = np.asarray(image)
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()
    return getattr(image, "mode", None), pixels.shape, str(pixels.dtype), digest


def distinct(text: Any, images: Any) -> tuple[list[int], list[int]] | None:
    """(the first row of each distinct (text, pictures) pair, each row's pair) when some rows repeat; else None.

    Only a batch given as a list of texts, with no pictures or one list of pictures per text, is considered."""
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        return None
    if images is not None and not (isinstance(images, list) and len(images) == len(text)
                                   and all(isinstance(row, list) for row in images)):
        return None
    firsts, rows, seen = [], [], {}
    for i, t in enumerate(text):
        key = (t, tuple(_fingerprint(image) for image in images[i])) if images is not None else t
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(i)
        rows.append(seen[key])
    return (firsts, rows) if len(firsts) < len(text) else None


def _take(value: Any, index: list[int]) -> Any:
    if isinstance(value, torch.Tensor):
        return value[torch.tensor(index, dtype=torch.long)]
    if isinstance(value, np.ndarray):
        return value[np.asarray(index, dtype=np.int64)]
    return [value[i] for i in index]


def repeat_rows(out: BatchFeature, rows: list[int], images_per_row: list[int]) -> dict[str, Any]:
    """The processor's output for the distinct pairs, with row `rows[i]` (its tokens, its pictures' grids and
    patches) as row i, each value of the type it came in; `images_per_row` counts the pictures of each distinct
    pair."""
    picture_starts = np.cumsum([0, *images_per_row])
    pictures = [p for r in rows for p in range(picture_starts[r], picture_starts[r + 1])]
    repeated = {}
    for name, value in out.items():
        if name == "image_grid_thw":
            repeated[name] = _take(value, pictures)
        elif name == "pixel_values":
            patches = np.prod(np.asarray(out["image_grid_thw"]), axis=1)
            patch_starts = np.cumsum([0, *patches])
            repeated[name] = _take(value, [q for p in pictures for q in range(patch_starts[p], patch_starts[p + 1])])
        else:
            repeated[name] = _take(value, rows)
    return repeated


class Qwen2_5_VLProcessor(_PlainProcessor):  # noqa: N801 - named as its parent: a saved processor records the name
    """Named like the plain processor on purpose: `save_pretrained` records the class name, and a model saved by
    infimmr must load with transformers alone, the same files as before."""

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        plan = distinct(text, images) if videos is None and not kwargs.get("audio") else None
        per_image = set(self.image_processor.model_input_names)
        if plan is None or not per_image <= _PER_IMAGE:
            return super().__call__(images=images, text=text, videos=videos, **kwargs)
        firsts, rows = plan
        out = super().__call__(images=[images[i] for i in firsts] if images is not None else None,
                               text=[text[i] for i in firsts], videos=None, **kwargs)
        images_per_row = [len(images[i]) for i in firsts] if images is not None else [0] * len(firsts)
        return BatchFeature(data=repeat_rows(out, rows, images_per_row))

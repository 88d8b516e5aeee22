"""Filters: rows that are readable but unfit for rule-rewarded RL, each with a named reason."""

from __future__ import annotations

from infimmr_core.config import CurationConfig
from infimmr_core.data.image_refs import image_size
from infimmr_core.data.schema import Sample


def filter_reason(sample: Sample, cfg: CurationConfig) -> str | None:
    """Why `sample` (normalised and typed) should be dropped, or None to keep it."""
    if not sample.answer.strip():
        return "empty answer"
    if sample.answer_type == "unverifiable":
        return "unverifiable answer"
    if not sample.problem.strip() and not sample.images:
        return "empty problem"
    if len(sample.problem) > cfg.max_problem_chars:
        return "problem too long"
    for image in sample.images:
        size = image_size(image)
        if min(size.width, size.height) < cfg.min_image_side:
            return "image too small"
        if size.width * size.height > cfg.max_image_pixels:
            return "image too large"
    return None

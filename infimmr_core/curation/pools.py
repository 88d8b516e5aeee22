"""Pools: phase 1 gets text samples, phase 2 captioned image samples, phase 3 image samples without captions.

Assignment, caps and the order of rows in a pool depend only on (seed, sample id), through a hash, so they are
reproducible, independent of shard boundaries, and computed from ids alone (no sample is held in memory to split,
cap or shuffle a pool).
"""

from __future__ import annotations

from dataclasses import dataclass

from infimmr_core.config import PoolsConfig
from infimmr_core.keys import sha256_text

POOLS = ("text", "image_caption", "image")


@dataclass(frozen=True)
class Candidate:
    id: str
    has_image: bool
    has_caption: bool


def _rank(seed: int, sample_id: str) -> str:
    return sha256_text(f"{seed}:{sample_id}")


def assign_pools(candidates: list[Candidate], cfg: PoolsConfig, seed: int) -> dict[str, list[str]]:
    """Pool name -> ids, in the seeded random order the pool is written in. disjoint: every image sample goes to exactly one of pools 2 and 3 (the first half by rank
    to 2); shared: both draw from all of them. Caps keep the lowest-ranked ids, i.e. a seeded random subset."""
    ranked = sorted(candidates, key=lambda c: _rank(seed, c.id))
    text = [c.id for c in ranked if not c.has_image]
    images = [c for c in ranked if c.has_image]
    if cfg.overlap == "disjoint":
        half = len(images) // 2
        for_caption, for_image = images[:half], images[half:]
    else:
        for_caption, for_image = images, images
    # Phase 2 needs a caption; images whose caption failed cannot feed it.
    caption_ids = [c.id for c in for_caption if c.has_caption]
    image_ids = [c.id for c in for_image]
    return {
        "text": text[: cfg.max_text],
        "image_caption": caption_ids[: cfg.max_image_caption],
        "image": image_ids[: cfg.max_image],
    }

"""Duplicate detection: exact text, normalised text, and perceptual image hashes.

A sample's identity is its question and its images (not its answer: the same question with two answers is a
conflict, and the first one seen wins). Normalisation makes "What is 2+2?" and "what is  2+2 ?" the same question;
the perceptual hash makes a re-encoded or slightly resized copy of a figure the same figure.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata

from PIL import Image

from infimmr_core.data.schema import Sample

_PUNCT = re.compile(r"[\s.,;:!?\"'`$]+")
HASH_BITS = 64


def normalise_text(text: str) -> str:
    """NFKC, lower case, punctuation and whitespace runs collapsed to one space."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def perceptual_hash(data: bytes) -> int:
    """64-bit difference hash: each bit says whether a pixel of the 9x8 grey thumbnail is brighter than its right
    neighbour. Robust to re-encoding, resizing and small colour shifts; cheap enough for every image."""
    with Image.open(io.BytesIO(data)) as img:
        grey = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = grey.tobytes()  # mode L: one byte per pixel, row-major
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return bits


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _key(text: str, sample: Sample) -> str:
    digest = hashlib.sha256(text.encode("utf-8"))
    for image in sample.images:
        digest.update(hashlib.sha256(image).digest())
    return digest.hexdigest()


class Deduplicator:
    """Remembers what it has kept (hashes only, so memory stays small) and names why a sample is a duplicate."""

    def __init__(self, image_hash_distance: int | None):
        self.image_hash_distance = image_hash_distance
        self.exact: set[str] = set()
        self.normalised: set[str] = set()
        self.image_hashes: dict[str, list[tuple[int, ...]]] = {}

    def check(self, sample: Sample) -> str | None:
        """None (and remember the sample) when it is new; otherwise the duplicate kind."""
        exact, text = _key(sample.problem, sample), normalise_text(sample.problem)
        normalised = _key(text, sample)
        if exact in self.exact:
            return "duplicate (exact)"
        if normalised in self.normalised:
            return "duplicate (normalised text)"
        hashes = tuple(perceptual_hash(image) for image in sample.images) if self.image_hash_distance is not None else ()
        if hashes and any(self._close(hashes, seen) for seen in self.image_hashes.get(text, [])):
            return "duplicate (image hash)"
        self.exact.add(exact)
        self.normalised.add(normalised)
        if hashes:
            self.image_hashes.setdefault(text, []).append(hashes)
        return None

    def _close(self, a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        return len(a) == len(b) and all(hamming(x, y) <= self.image_hash_distance for x, y in zip(a, b))

"""Captioning: a prompt per image type, generation in resumable shards, and checks on what comes back.

Phase 2 shows the model a caption next to the image; a caption that gives away the gold answer would teach it to
copy instead of reason, and an empty or runaway one teaches nothing, so both fail the check and go to quarantine.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Callable, Literal

from PIL import Image

from infimmr_core.config import CaptioningConfig
from infimmr_core.curation.dedup import normalise_text
from infimmr_core.curation.shards import resumable
from infimmr_core.data.images import decode_image
from infimmr_core.data.prompts import caption_request_messages
from infimmr_core.data.schema import Sample
from infimmr_core.inference import GenerationRequest, Generator, SamplingSpec

ImageType = Literal["geometry", "chart", "table", "natural"]
IMAGE_TYPES: tuple[str, ...] = ("geometry", "chart", "table", "natural")
_KEYWORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("table", re.compile(r"\btable\b", re.IGNORECASE)),
    ("chart", re.compile(r"\b(chart|plot|graph of|bar graph|histogram|axis|axes|legend)\b", re.IGNORECASE)),
    ("geometry", re.compile(r"\b(triangle|circle|angle|parallel|perpendicular|polygon|quadrilateral|radius|chord|"
                            r"tangent|diagram|figure|∠|△)", re.IGNORECASE)),
)
# Line drawings use few colours on a plain background; photographs use many.
_DRAWING_MAX_COLOURS = 32


def image_type(sample: Sample) -> ImageType:
    """The source's own label (metadata.image_type) when it gives one, else words in the question, else pixels."""
    given = sample.metadata.get("image_type")
    if given in IMAGE_TYPES:
        return given
    for kind, pattern in _KEYWORDS:
        if pattern.search(sample.problem):
            return kind
    with Image.open(io.BytesIO(sample.images[0])) as img:
        thumb = img.convert("RGB").resize((64, 64)).quantize(colors=256)
    colours = len(thumb.getcolors(256) or [])
    return "geometry" if colours <= _DRAWING_MAX_COLOURS else "natural"


def needs_caption(sample: Sample) -> bool:
    """An image sample whose source gave no caption: the captioner writes one. A caption the source carries (a column
    users map like any other) is kept, and checked like a generated one."""
    return bool(sample.images) and not (sample.caption or "").strip()


def caption_prompt(sample: Sample, cfg: CaptioningConfig) -> str:
    return getattr(cfg.prompts, image_type(sample))


def leaks_answer(caption: str, sample: Sample, min_chars: int) -> bool:
    """Whether the caption states a non-trivial gold answer (an option letter or a one-character answer is not one:
    'A' and '3' occur in honest descriptions)."""
    answer = normalise_text(sample.answer)
    if sample.answer_type == "multiple_choice" or len(answer.replace(" ", "")) < min_chars:
        return False
    if sample.answer_type == "numeric":
        # Whole numbers only, on the raw text (normalising would split 3.12 into 3 and 12): 12 is not in 120 or 3.12.
        number = sample.answer.strip()
        return re.search(rf"(?<![\d.]){re.escape(number)}(?!\d|\.\d)", caption) is not None
    return answer.replace(" ", "") in normalise_text(caption).replace(" ", "")


def check_caption(caption: str, sample: Sample, cfg: CaptioningConfig) -> str | None:
    """Why the caption is unusable, or None."""
    length = len(caption.strip())
    if length < cfg.min_chars:
        return "caption too short"
    if length > cfg.max_chars:
        return "caption too long"
    if leaks_answer(caption, sample, cfg.leak_min_chars):
        return "caption leaks the answer"
    return None


def caption_shards(
    shard_paths: list[Path],
    state_dir: Path,
    cfg: CaptioningConfig,
    open_captioner: Callable[[], Generator],
    *,
    seed: int,
    log: Callable[[str], None] = print,
) -> int:
    """Caption the image samples without a caption of their own in every shard not captioned yet; the captioner loads
    only if one needs it."""
    captioner: list[Generator] = []
    gen = cfg.generation
    sampling = SamplingSpec(n=1, temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, seed=seed)

    def compute(samples: list[Sample]) -> dict[str, str]:
        if not captioner:
            captioner.append(open_captioner())
        requests = [
            GenerationRequest(caption_request_messages(s, caption_prompt(s, cfg)), [decode_image(b) for b in s.images])
            for s in samples
        ]
        outputs = captioner[0].generate(requests, sampling)
        return {s.id: texts[0].strip() for s, texts in zip(samples, outputs)}

    return resumable(shard_paths, state_dir, compute, select=needs_caption, log=log, step="captioning")

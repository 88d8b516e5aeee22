"""Sums of two digits: the demo's three tasks, with held-out sets that training never sees.

* text (phase 1): "What is 3 + 5?" in one of ten phrasings, each showing the sum;
* image (phases 2 and 3): a 56 x 56 picture of two digits, one centred in each half and shifted by up to 1 pixel
  each way, asked "What is the sum of the two numbers in the image?"; the sample carries its own caption, which spells
  the digits in words ("Two digits: three and five."), so that reading it is a skill phase 1 does not already give.
  Phase 2 shows it, phase 3 does not.

Each task is a finite universe of items (pair x phrasing: 1,000; pair x rendering, the shift of each digit: 8,100),
split once and for all by a hash of the item: `split="test"` draws from the held-out part, anything else from the
training part. So a held-out item (a phrasing of a pair, or a rendering) is never trained on, whatever the seeds;
every pair and every phrasing occurs on both sides. Draws are without repetition and deterministic in (count, seed,
split). Worked solutions (`metadata.solution`) and the digits shown (`metadata.image_labels`) feed the warm-up.

A picture shown with its caption is solved from the caption's words ("three + five = 8", in
`metadata.solutions["image_caption"]`), the text and the picture alone from digits ("3 + 5 = 8"). With digits
everywhere the caption task was the text task after a lookup: on the demo's seed 0, phase 1 alone lifted it to 94.5%
and phase 2 gained +2.0. Summing spelled digits is a skill that phase 1 does not train (it moved the caption task by
-11.5 and +6.5 on two seeds) and phase 2 does (+24.0 and +26.0); phase 3 still reads the digits from the pixels.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from infimmr_core.data.images import encode_image
from infimmr_core.data.schema import Sample

TEXT_SOURCE = "sum-text"
IMAGE_SOURCE = "sum-image"
HELDOUT_SPLIT = "test"
# Every phrasing shows the sum itself ("3 + 5"): the task is adding, not parsing English, for a model this small.
TEXT_TEMPLATES = (
    "What is {a} + {b}?",
    "Compute {a} + {b}.",
    "Calculate {a} + {b}.",
    "Find {a} + {b}.",
    "Evaluate {a} + {b}.",
    "Work out {a} + {b}.",
    "{a} + {b} = ?",
    "Add: {a} + {b}",
    "What does {a} + {b} equal?",
    "How much is {a} + {b}?",
)
IMAGE_QUESTION = "What is the sum of the two numbers in the image?"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Shares of each universe held out: text has 1,000 items (300 held out), images far more.
TEXT_HELDOUT_SHARE = 0.3
IMAGE_HELDOUT_SHARE = 0.5

IMAGE_SIDE = 56  # 2 x 2 merged Qwen2.5-VL patches: four vision tokens, two per digit
FONT_SIZE = 36
# Shifts of each digit from the centre of its half. A tiny model learns to read these within the warm-up's budget;
# at 2 pixels it did not read them at all in 600 steps, so held-out renderings differ from the trained ones by these.
JITTER = (-1, 0, 1)


def _heldout(identity: str, share: float) -> bool:
    bucket = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big") / 2**64
    return bucket < share


def is_heldout(split: str | None) -> bool:
    return split == HELDOUT_SPLIT


def _sample_split(split: str | None) -> str:
    return "eval" if is_heldout(split) else "train"


def solution(a: int, b: int) -> str:
    return f"{a} + {b} = {a + b}"


def spelled_solution(a: int, b: int) -> str:
    return f"{DIGIT_WORDS[a]} + {DIGIT_WORDS[b]} = {a + b}"


def caption(a: int, b: int) -> str:
    return f"Two digits: {DIGIT_WORDS[a]} and {DIGIT_WORDS[b]}."


# ---------------------------------------------------------------------------------------------------------------
# Text


def text_universe(split: str | None) -> list[tuple[int, int, int]]:
    """(a, b, phrasing) of every text item on one side of the split, in a fixed order."""
    want = is_heldout(split)
    return [
        (a, b, t) for a in range(10) for b in range(10) for t in range(len(TEXT_TEMPLATES))
        if _heldout(f"text:{a}:{b}:{t}", TEXT_HELDOUT_SHARE) == want
    ]


def text_problems(count: int, seed: int, split: str | None = "train") -> list[Sample]:
    universe = text_universe(split)
    if count > len(universe):
        raise ValueError(f"{TEXT_SOURCE}: {count} items asked, the {split} split has only {len(universe)}")
    chosen = random.Random(seed).sample(universe, count)
    return [
        Sample(
            id=f"{TEXT_SOURCE}-{split}-{seed}-{i}", source=TEXT_SOURCE, problem=TEXT_TEMPLATES[t].format(a=a, b=b),
            answer=str(a + b), answer_type="numeric", split=_sample_split(split),
            metadata={"generator": "digit_sum_text", "operands": [a, b], "template": t, "solution": solution(a, b)},
        )
        for i, (a, b, t) in enumerate(chosen)
    ]


# ---------------------------------------------------------------------------------------------------------------
# Images


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # bundled with Pillow: no font files, same pixels everywhere


@lru_cache(maxsize=None)
def _centre() -> tuple[int, int]:
    """The origin that centres a digit in its half of the canvas (all digits share one box in this font)."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), "0", font=_font(FONT_SIZE))
    return (IMAGE_SIDE // 2 - (right - left)) // 2 - left, (IMAGE_SIDE - (bottom - top)) // 2 - top


def _placement(rng: random.Random) -> tuple[int, int, int]:
    x, y = _centre()
    return FONT_SIZE, x + rng.choice(JITTER), y + rng.choice(JITTER)


def render(a: int, b: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """Two black digits on white, `a` in the left half and `b` in the right; each placement is (size, x, y)."""
    image = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), "white")
    draw = ImageDraw.Draw(image)
    for digit, (size, x, y), shift in ((a, left, 0), (b, right, IMAGE_SIDE // 2)):
        draw.text((x + shift, y), str(digit), fill="black", font=_font(size))
    return image


def image_problems(count: int, seed: int, split: str | None = "train") -> list[Sample]:
    """`count` distinct renderings from one side of the split; each carries its caption and the digits it shows."""
    rng = random.Random(seed)
    want, seen, samples = is_heldout(split), set(), []
    while len(samples) < count:
        a, b = rng.randrange(10), rng.randrange(10)
        left, right = _placement(rng), _placement(rng)
        identity = f"image:{a}:{b}:{left}:{right}"
        if identity in seen or _heldout(identity, IMAGE_HELDOUT_SHARE) != want:
            continue
        seen.add(identity)
        samples.append(Sample(
            id=f"{IMAGE_SOURCE}-{split}-{seed}-{len(samples)}", source=IMAGE_SOURCE, problem=IMAGE_QUESTION,
            answer=str(a + b), answer_type="numeric", images=[encode_image(render(a, b, left, right))],
            caption=caption(a, b), split=_sample_split(split),
            metadata={"generator": "digit_sum_image", "operands": [a, b], "image_labels": [a, b],
                      "rendering": {"left": list(left), "right": list(right)}, "solution": solution(a, b),
                      "solutions": {"image_caption": spelled_solution(a, b)}},
        ))
    return samples

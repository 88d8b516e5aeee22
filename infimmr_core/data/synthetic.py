"""Deterministic synthetic math problems for smoke runs and tests (no downloads needed).

Both generators draw every random choice from one `random.Random(seed)` stream, in sample
order, so the same (count, seed) gives identical samples (image bytes included) and a
shorter run is a prefix of a longer one. Problem kinds rotate by index so even a handful of
samples covers every kind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable

from PIL import Image, ImageDraw, ImageFont

from infimmr_core.data.images import encode_image
from infimmr_core.data.prompts import choice_letter, with_choices
from infimmr_core.data.schema import AnswerType, Sample

TEXT_SOURCE = "synthetic-text"
IMAGE_SOURCE = "synthetic-image"
# 224 = 8 x 28: a whole number of Qwen2.5-VL merged patches, so no resize happens in the processor.
IMAGE_SIZE = 224
# Every third image sample is multiple choice, so small counts still include both forms.
MULTIPLE_CHOICE_EVERY = 3
NUM_CHOICES = 4

_MARGIN = 36  # room around a figure for side labels
_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "eleven", "twelve",
)
COLORS = {
    "red": (220, 40, 40),
    "blue": (40, 90, 220),
    "green": (30, 150, 60),
    "orange": (240, 140, 20),
    "purple": (140, 60, 180),
}
_SHAPES = ("circle", "square", "triangle")
# Integer-sided right triangles keep hypotenuse answers exact; each has an even leg, so the
# area is an integer too.
_PYTHAGOREAN_TRIPLES = (
    (3, 4, 5), (6, 8, 10), (5, 12, 13), (9, 12, 15), (8, 15, 17), (12, 16, 20), (7, 24, 25), (20, 21, 29),
)


@dataclass(frozen=True)
class _TextProblem:
    problem: str
    answer: str
    answer_type: AnswerType


@dataclass(frozen=True)
class _ImageProblem:
    image: Image.Image
    question: str
    answer: int
    caption: str
    params: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Text problems


def _arithmetic(rng: random.Random) -> _TextProblem:
    op = rng.choice("+-×")
    if op == "×":
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        return _TextProblem(f"What is {a} × {b}?", str(a * b), "numeric")
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    if op == "-":
        a, b = max(a, b), min(a, b)  # keep results non-negative: these are warm-up problems
        return _TextProblem(f"What is {a} - {b}?", str(a - b), "numeric")
    return _TextProblem(f"What is {a} + {b}?", str(a + b), "numeric")


def _linear_equation(rng: random.Random) -> _TextProblem:
    a, x, b = rng.randint(2, 9), rng.randint(-10, 12), rng.randint(1, 20)
    if rng.random() < 0.5:
        return _TextProblem(f"Solve for x: {a}x + {b} = {a * x + b}", str(x), "numeric")
    return _TextProblem(f"Solve for x: {a}x - {b} = {a * x - b}", str(x), "numeric")


def latex_fraction(value: Fraction) -> str:
    """`value` as LaTeX: "\\frac{5}{6}", "-\\frac{1}{6}", or an integer when the denominator is 1."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _random_fraction(rng: random.Random) -> Fraction:
    denominator = rng.randint(2, 9)
    return Fraction(rng.randint(1, denominator - 1), denominator)


def _fraction(rng: random.Random) -> _TextProblem:
    # Redraw until the result is a positive non-integer, so the answer really is a fraction.
    while True:
        a, b = _random_fraction(rng), _random_fraction(rng)
        op = rng.choice("+-")
        if op == "-":
            a, b = max(a, b), min(a, b)
        result = a + b if op == "+" else a - b
        if result > 0 and result.denominator != 1:
            break
    problem = f"What is {a} {op} {b}? Give the answer as a fraction."
    return _TextProblem(problem, latex_fraction(result), "expression")


def _percentage(rng: random.Random) -> _TextProblem:
    # A multiple-of-5 percent of a multiple of 20 is always a whole number.
    percent, base = 5 * rng.randint(1, 19), 20 * rng.randint(1, 20)
    return _TextProblem(f"What is {percent}% of {base}?", str(percent * base // 100), "numeric")


_TEXT_GENERATORS: dict[str, Callable[[random.Random], _TextProblem]] = {
    "arithmetic": _arithmetic,
    "linear_equation": _linear_equation,
    "fraction": _fraction,
    "percentage": _percentage,
}
TEXT_KINDS = tuple(_TEXT_GENERATORS)


def text_problems(count: int, seed: int) -> list[Sample]:
    """`count` text-only problems (arithmetic, linear equations, fractions, percentages)."""
    rng = random.Random(seed)
    samples = []
    for i in range(count):
        kind = TEXT_KINDS[i % len(TEXT_KINDS)]
        generated = _TEXT_GENERATORS[kind](rng)
        samples.append(
            Sample(
                id=f"{TEXT_SOURCE}-{seed}-{i}",
                source=TEXT_SOURCE,
                problem=generated.problem,
                answer=generated.answer,
                answer_type=generated.answer_type,
                metadata={"generator": kind},
            )
        )
    return samples


# ---------------------------------------------------------------------------------------------
# Image problems


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled default font is scalable when FreeType is available (bitmap otherwise)
    # and needs no font files, so drawing works offline on any machine.
    return ImageFont.load_default(size=size)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    return image, ImageDraw.Draw(image)


def number_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _shape_phrase(count: int, color: str, shape: str) -> str:
    return f"{number_word(count)} {color} {shape}{'' if count == 1 else 's'}"


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, center: tuple[int, int], radius: int, color: tuple[int, int, int]
) -> None:
    x, y = center
    box = (x - radius, y - radius, x + radius, y + radius)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)], fill=color)


def _count_shapes(rng: random.Random) -> _ImageProblem:
    target_shape, other_shape = rng.sample(_SHAPES, 2)
    target_color, other_color = rng.sample(sorted(COLORS), 2)
    target_count, other_count = rng.randint(1, 7), rng.randint(0, 4)
    # One shape per cell of a 4x4 grid keeps shapes apart, so the count is unambiguous.
    grid, cell = 4, IMAGE_SIZE // 4
    cells = rng.sample(range(grid * grid), target_count + other_count)
    image, draw = _canvas()
    for n, index in enumerate(cells):
        is_target = n < target_count
        radius = rng.randint(14, 20)
        slack = cell // 2 - radius - 2
        center = (
            (index % grid) * cell + cell // 2 + rng.randint(-slack, slack),
            (index // grid) * cell + cell // 2 + rng.randint(-slack, slack),
        )
        shape, color = (target_shape, target_color) if is_target else (other_shape, other_color)
        _draw_shape(draw, shape, center, radius, COLORS[color])
    phrases = [_shape_phrase(target_count, target_color, target_shape)]
    if other_count:
        phrases.append(_shape_phrase(other_count, other_color, other_shape))
    caption = " and ".join(phrases).capitalize() + " on a white background."
    return _ImageProblem(
        image=image,
        question=f"How many {target_shape}s are in the image?",
        answer=target_count,
        caption=caption,
        params={
            "target_shape": target_shape,
            "target_color": target_color,
            "target_count": target_count,
            "other_shape": other_shape,
            "other_color": other_color,
            "other_count": other_count,
        },
    )


def _sum_numbers(rng: random.Random) -> _ImageProblem:
    numbers = [rng.randint(10, 99), rng.randint(10, 99)]
    color = rng.choice(sorted(COLORS))
    font = _font(40)
    image, draw = _canvas()
    half = IMAGE_SIZE // 2
    for n, number in enumerate(numbers):
        left, top, right, bottom = draw.textbbox((0, 0), str(number), font=font)
        width, height = right - left, bottom - top
        # Each number gets its own half of the canvas so the two never touch.
        x = n * half + rng.randint(6, half - width - 6) - left
        y = rng.randint(6, IMAGE_SIZE - height - 6) - top
        draw.text((x, y), str(number), fill=COLORS[color], font=font)
    return _ImageProblem(
        image=image,
        question="What is the sum of the two numbers shown in the image?",
        answer=sum(numbers),
        caption=f"The numbers {numbers[0]} and {numbers[1]} written in {color} on a white background.",
        params={"numbers": numbers, "color": color},
    )


def _label(draw: ImageDraw.ImageDraw, text: str, at: tuple[float, float]) -> None:
    draw.text(at, text, fill="black", font=_font(18), anchor="mm")


def _right_triangle(rng: random.Random) -> _ImageProblem:
    a, b, c = rng.choice(_PYTHAGOREAN_TRIPLES)
    if rng.random() < 0.5:
        a, b = b, a
    asked = rng.choice(("hypotenuse", "area"))
    scale = (IMAGE_SIZE - 2 * _MARGIN) / max(a, b)
    corner = (_MARGIN, IMAGE_SIZE - _MARGIN)  # the right angle, bottom-left
    right = (corner[0] + a * scale, corner[1])
    top = (corner[0], corner[1] - b * scale)
    image, draw = _canvas()
    draw.polygon([corner, right, top], outline="black", width=2)
    marker = 10
    draw.rectangle((corner[0], corner[1] - marker, corner[0] + marker, corner[1]), outline="black")
    _label(draw, str(a), ((corner[0] + right[0]) / 2, corner[1] + _MARGIN / 2))
    _label(draw, str(b), (corner[0] - _MARGIN / 2, (corner[1] + top[1]) / 2))
    intro = "The image shows a right triangle with its two legs labelled."
    if asked == "hypotenuse":
        question, answer = f"{intro} What is the length of the hypotenuse?", c
    else:
        question, answer = f"{intro} What is the area of the triangle?", a * b // 2
    return _ImageProblem(
        image=image,
        question=question,
        answer=answer,
        caption=f"A right triangle on a white background with its legs labelled {a} and {b} "
        "and the right angle marked.",
        params={"legs": [a, b], "asked": asked},
    )


def _rectangle(rng: random.Random) -> _ImageProblem:
    width, height = rng.randint(2, 15), rng.randint(2, 15)
    asked = rng.choice(("area", "perimeter"))
    scale = (IMAGE_SIZE - 2 * _MARGIN) / max(width, height)
    x0, y1 = _MARGIN, IMAGE_SIZE - _MARGIN
    x1, y0 = x0 + width * scale, y1 - height * scale
    image, draw = _canvas()
    draw.rectangle((x0, y0, x1, y1), outline="black", width=2)
    _label(draw, str(width), ((x0 + x1) / 2, y1 + _MARGIN / 2))
    _label(draw, str(height), (x0 - _MARGIN / 2, (y0 + y1) / 2))
    answer = width * height if asked == "area" else 2 * (width + height)
    return _ImageProblem(
        image=image,
        question=f"The image shows a rectangle with its sides labelled. What is the {asked} of the rectangle?",
        answer=answer,
        caption=f"A rectangle on a white background with its width labelled {width} "
        f"and its height labelled {height}.",
        params={"width": width, "height": height, "asked": asked},
    )


_IMAGE_GENERATORS: dict[str, Callable[[random.Random], _ImageProblem]] = {
    "count_shapes": _count_shapes,
    "sum_numbers": _sum_numbers,
    "right_triangle": _right_triangle,
    "rectangle": _rectangle,
}
IMAGE_KINDS = tuple(_IMAGE_GENERATORS)


def _numeric_choices(rng: random.Random, answer: int) -> tuple[list[str], str]:
    """NUM_CHOICES shuffled options around `answer` (all positive, distinct) and the gold letter."""
    spread = max(3, answer // 4)  # near misses: an off-by-a-bit answer must not be obviously wrong
    candidates = [v for v in range(answer - spread, answer + spread + 1) if v > 0 and v != answer]
    options = [answer, *rng.sample(candidates, NUM_CHOICES - 1)]
    rng.shuffle(options)
    return [str(v) for v in options], choice_letter(options.index(answer))


def image_problems(count: int, seed: int) -> list[Sample]:
    """`count` problems on drawn images, each with a reference caption in its metadata.

    `caption` stays None (captions are generated later by a VLM); the caption describing what
    was drawn is in `metadata["reference_caption"]` and the drawing parameters in
    `metadata["params"]`.
    """
    rng = random.Random(seed)
    samples = []
    for i in range(count):
        kind = IMAGE_KINDS[i % len(IMAGE_KINDS)]
        generated = _IMAGE_GENERATORS[kind](rng)
        if i % MULTIPLE_CHOICE_EVERY == MULTIPLE_CHOICE_EVERY - 1:
            choices, answer = _numeric_choices(rng, generated.answer)
            problem, answer_type = with_choices(generated.question, choices), "multiple_choice"
        else:
            choices, answer, problem, answer_type = [], str(generated.answer), generated.question, "numeric"
        samples.append(
            Sample(
                id=f"{IMAGE_SOURCE}-{seed}-{i}",
                source=IMAGE_SOURCE,
                problem=problem,
                answer=answer,
                answer_type=answer_type,
                choices=choices,
                images=[encode_image(generated.image)],
                metadata={"generator": kind, "reference_caption": generated.caption, "params": generated.params},
            )
        )
    return samples

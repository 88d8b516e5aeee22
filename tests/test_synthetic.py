"""Synthetic smoke data: deterministic, valid, and captions that match what was drawn."""

from __future__ import annotations

import io
import re
from fractions import Fraction

import pytest
from PIL import Image

from infimmr_core.data.images import decode_image, encode_image
from infimmr_core.data.synthetic import (
    COLORS,
    IMAGE_KINDS,
    IMAGE_SIZE,
    IMAGE_SOURCE,
    TEXT_KINDS,
    TEXT_SOURCE,
    image_problems,
    latex_fraction,
    text_problems,
)

COUNT = 24  # a multiple of every rotation period (4 kinds, multiple choice every 3rd)
WORDS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}


@pytest.fixture(scope="module")
def texts():
    return text_problems(COUNT, seed=7)


@pytest.fixture(scope="module")
def images():
    return image_problems(COUNT, seed=7)


def _dump(samples):
    return [s.model_dump() for s in samples]


def parse_gold(answer: str) -> Fraction:
    """Gold answers must be an integer or a (signed) \\frac{p}{q}."""
    match = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    if match:
        return Fraction(int(match[2]), int(match[3])) * (-1 if match[1] else 1)
    return Fraction(int(answer))


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("generate", [text_problems, image_problems])
def test_same_seed_gives_identical_samples(generate):
    assert _dump(generate(8, 3)) == _dump(generate(8, 3))


def test_image_bytes_identical_across_calls(images):
    again = image_problems(COUNT, seed=7)
    assert [s.images for s in again] == [s.images for s in images]


@pytest.mark.parametrize("generate", [text_problems, image_problems])
def test_different_seeds_give_different_samples(generate):
    a, b = generate(8, 1), generate(8, 2)
    assert [s.problem for s in a] != [s.problem for s in b] or [s.images for s in a] != [s.images for s in b]
    assert {s.id for s in a}.isdisjoint(s.id for s in b)


@pytest.mark.parametrize("generate", [text_problems, image_problems])
def test_shorter_run_is_prefix_of_longer(generate):
    assert _dump(generate(5, 4)) == _dump(generate(9, 4))[:5]


# --- text problems ---------------------------------------------------------------------------


def test_text_samples_are_valid(texts):
    assert [s.id for s in texts] == [f"{TEXT_SOURCE}-7-{i}" for i in range(COUNT)]
    assert {s.metadata["generator"] for s in texts} == set(TEXT_KINDS)
    for s in texts:
        assert s.source == TEXT_SOURCE and not s.images and not s.choices and s.caption is None
        assert s.answer_type in ("numeric", "expression")
        parse_gold(s.answer)


def _evaluate(problem: str) -> Fraction:
    """Independently solve a generated text problem from its wording."""
    if m := re.fullmatch(r"What is (\d+) ([-+×]) (\d+)\?", problem):
        a, b = int(m[1]), int(m[3])
        return Fraction({"+": a + b, "-": a - b, "×": a * b}[m[2]])
    if m := re.fullmatch(r"Solve for x: (\d+)x ([-+]) (\d+) = (-?\d+)", problem):
        a, b, c = int(m[1]), int(m[3]), int(m[4])
        return Fraction(c - b if m[2] == "+" else c + b, a)
    if m := re.fullmatch(r"What is (\d+/\d+) ([-+]) (\d+/\d+)\? Give the answer as a fraction\.", problem):
        a, b = Fraction(m[1]), Fraction(m[3])
        return a + b if m[2] == "+" else a - b
    if m := re.fullmatch(r"What is (\d+)% of (\d+)\?", problem):
        return Fraction(int(m[1]) * int(m[2]), 100)
    raise AssertionError(f"unexpected problem wording: {problem!r}")


def test_text_gold_answers_are_correct(texts):
    for s in texts:
        assert parse_gold(s.answer) == _evaluate(s.problem), s.problem


def test_fraction_answers_are_latex_fractions(texts):
    fractions = [s for s in texts if s.metadata["generator"] == "fraction"]
    assert fractions
    for s in fractions:
        assert s.answer_type == "expression" and s.answer.startswith("\\frac{")


@pytest.mark.parametrize(
    ("value", "latex"),
    [(Fraction(5, 6), "\\frac{5}{6}"), (Fraction(-1, 6), "-\\frac{1}{6}"), (Fraction(4, 2), "2")],
)
def test_latex_fraction(value, latex):
    assert latex_fraction(value) == latex


# --- image problems --------------------------------------------------------------------------


def test_image_samples_are_valid(images):
    assert [s.id for s in images] == [f"{IMAGE_SOURCE}-7-{i}" for i in range(COUNT)]
    assert {s.metadata["generator"] for s in images} == set(IMAGE_KINDS)
    assert {s.answer_type for s in images} == {"numeric", "multiple_choice"}
    for s in images:
        assert s.source == IMAGE_SOURCE and s.caption is None and len(s.images) == 1
        assert s.metadata["reference_caption"].strip()
        if s.answer_type == "multiple_choice":
            assert len(s.choices) == 4 and len(set(s.choices)) == 4
            assert s.answer in "ABCD"[: len(s.choices)] and len(s.answer) == 1
            for letter, choice in zip("ABCD", s.choices):
                assert f"\n{letter}. {choice}" in s.problem
        else:
            assert not s.choices
            assert parse_gold(s.answer) > 0


def test_images_decode_to_expected_size(images):
    for s in images:
        img = decode_image(s.images[0])
        assert img.mode == "RGB" and img.size == (IMAGE_SIZE, IMAGE_SIZE)
        assert img.getpixel((0, 0)) == (255, 255, 255)  # white background
        assert img.getextrema() != ((255, 255), (255, 255), (255, 255))  # something was drawn


def _numeric_gold(s) -> int:
    if s.answer_type == "multiple_choice":
        return int(s.choices["ABCD".index(s.answer)])
    return int(s.answer)


def _expected_from_caption(s) -> int:
    """Recompute the answer from the reference caption alone: the caption must carry what is needed."""
    caption, kind = s.metadata["reference_caption"], s.metadata["generator"]
    numbers = [int(n) for n in re.findall(r"\d+", caption)]
    if kind == "count_shapes":
        shape = re.fullmatch(r"How many (\w+)s are in the image\?", s.problem.split("\n")[0])[1]
        phrase = rf"\b({'|'.join(WORDS)}) (\w+) (\w+?)s?\b"  # "three red circles" -> (three, red, circle)
        counts = {m[3]: WORDS[m[1].lower()] for m in re.finditer(phrase, caption, re.I)}
        return counts[shape]
    if kind == "sum_numbers":
        return sum(numbers)
    if kind == "right_triangle":
        a, b = numbers
        return round((a * a + b * b) ** 0.5) if "hypotenuse" in s.problem else a * b // 2
    if kind == "rectangle":
        w, h = numbers
        return w * h if "area" in s.problem else 2 * (w + h)
    raise AssertionError(kind)


def test_reference_captions_match_gold(images):
    for s in images:
        assert _expected_from_caption(s) == _numeric_gold(s), (s.id, s.metadata["reference_caption"])


def _count_blobs(img: Image.Image, color: tuple[int, int, int]) -> int:
    """Connected regions of exactly `color` (shapes are drawn solid, without anti-aliasing)."""
    width, height = img.size
    pixels = img.load()
    unseen = {(x, y) for x in range(width) for y in range(height) if pixels[x, y] == color}
    blobs = 0
    while unseen:
        blobs += 1
        stack = [unseen.pop()]
        while stack:
            x, y = stack.pop()
            for neighbour in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if neighbour in unseen:
                    unseen.remove(neighbour)
                    stack.append(neighbour)
    return blobs


def test_reference_captions_match_drawing_params(images):
    for s in images:
        caption, params = s.metadata["reference_caption"], s.metadata["params"]
        if s.metadata["generator"] == "count_shapes":
            assert caption.lower().startswith(
                f"{list(WORDS)[params['target_count']]} {params['target_color']} {params['target_shape']}"
            )
            assert _numeric_gold(s) == params["target_count"]
            # The drawing agrees with the parameters: one solid blob per shape of each colour.
            img = decode_image(s.images[0])
            assert _count_blobs(img, COLORS[params["target_color"]]) == params["target_count"]
            assert _count_blobs(img, COLORS[params["other_color"]]) == params["other_count"]
        elif s.metadata["generator"] == "sum_numbers":
            assert f"{params['numbers'][0]} and {params['numbers'][1]}" in caption


def test_hypotenuse_answers_are_exact(images):
    for s in images:
        if s.metadata["generator"] == "right_triangle":
            a, b = s.metadata["params"]["legs"]
            if s.metadata["params"]["asked"] == "hypotenuse":
                assert _numeric_gold(s) ** 2 == a * a + b * b


# --- images.py -------------------------------------------------------------------------------


def test_encode_decode_round_trip_and_strips_metadata():
    img = Image.new("RGB", (30, 20), (10, 200, 30))
    img.info["icc_profile"] = b"profile from the source file"  # Pillow's PNG writer would embed this
    data = encode_image(img)
    assert data == encode_image(Image.new("RGB", (30, 20), (10, 200, 30)))
    assert decode_image(data).tobytes() == img.tobytes()


def test_decode_flattens_transparency_onto_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    assert decode_image(buffer.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_jpeg_encoding_is_deterministic_and_unknown_format_rejected():
    img = Image.new("RGB", (16, 16), (120, 30, 200))
    assert encode_image(img, "JPEG") == encode_image(img, "jpeg")
    assert decode_image(encode_image(img, "JPEG")).size == (16, 16)
    with pytest.raises(ValueError, match="unsupported image format"):
        encode_image(img, "GIF")

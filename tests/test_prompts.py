"""Phase prompt builders: what each phase input shows the policy, and what it refuses."""

from __future__ import annotations

import pytest

from infimmr_core.data.prompts import (
    DEFAULT_CAPTION_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    build_messages,
    caption_request_messages,
    choices_listed,
    format_choices,
    validate_caption_template,
    with_choices,
)
from infimmr_core.data.schema import Sample

CAPTION = "Three red circles on a white background."
IMG = b"\x89PNG fake bytes"  # prompts never decode images


def make(images: int = 0, caption: str | None = None, problem: str = "What is 2 + 3?", choices=()) -> Sample:
    return Sample(
        id=f"s-{images}-{caption is not None}",
        source="test",
        problem=problem,
        answer="5",
        choices=list(choices),
        images=[IMG] * images,
        caption=caption,
    )


def image_parts(messages) -> list[dict]:
    return [p for p in messages[1]["content"] if p["type"] == "image"]


def user_text(messages) -> str:
    texts = [p["text"] for p in messages[1]["content"] if p["type"] == "text"]
    assert len(texts) == 1
    return texts[0]


# (phase input, sample, expected image parts, caption expected in the user text)
CASES = [
    ("text", make(), 0, False),
    ("image_caption", make(images=1, caption=CAPTION), 1, True),
    ("image_caption", make(images=2, caption=CAPTION), 2, True),
    ("image", make(images=1), 1, False),
    ("image", make(images=1, caption=CAPTION), 1, False),  # phase 3 hides an existing caption
    ("image", make(images=3, caption=CAPTION), 3, False),
]


@pytest.mark.parametrize(("phase_input", "sample", "n_images", "has_caption"), CASES)
def test_phase_inputs(phase_input, sample, n_images, has_caption):
    messages = build_messages(sample, phase_input)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]
    assert len(image_parts(messages)) == n_images
    content = messages[1]["content"]
    assert content[-1]["type"] == "text" and all(p["type"] == "image" for p in content[:-1])
    text = user_text(messages)
    assert sample.problem in text
    assert (CAPTION in text) is has_caption
    if not has_caption:
        assert "Image description" not in text and text == sample.problem


def test_image_caption_uses_default_template():
    sample = make(images=1, caption=f"  {CAPTION}\n")
    assert user_text(build_messages(sample, "image_caption")) == DEFAULT_CAPTION_TEMPLATE.format(
        caption=CAPTION, question=sample.problem
    )


def test_custom_system_prompt_and_caption_template():
    messages = build_messages(
        make(images=1, caption=CAPTION),
        "image_caption",
        system_prompt="Be brief.",
        caption_template="Q: {question}\nContext: {caption}",
    )
    assert messages[0]["content"][0]["text"] == "Be brief."
    assert user_text(messages) == f"Q: What is 2 + 3?\nContext: {CAPTION}"


def test_caption_with_braces_is_inserted_verbatim():
    sample = make(images=1, caption="A set {x | x > 0} drawn as a ray.")
    assert "{x | x > 0}" in user_text(build_messages(sample, "image_caption"))


ERROR_CASES = [
    ("text", make(images=1), "text-only"),
    ("image_caption", make(images=1), "no caption"),
    ("image_caption", make(images=1, caption="   "), "no caption"),
    ("image_caption", make(caption=CAPTION), "no image"),
    ("image", make(), "no image"),
    ("audio", make(), "unknown phase input"),
]


@pytest.mark.parametrize(("phase_input", "sample", "message"), ERROR_CASES)
def test_invalid_phase_input_combinations(phase_input, sample, message):
    with pytest.raises(ValueError, match=message) as excinfo:
        build_messages(sample, phase_input)
    if phase_input != "audio":
        assert sample.id in str(excinfo.value)


# --- multiple choice -------------------------------------------------------------------------


def test_format_choices():
    assert format_choices(["3", "4", "5"]) == "A. 3\nB. 4\nC. 5"
    assert format_choices([]) == ""


@pytest.mark.parametrize(
    ("problem", "listed"),
    [
        ("How many?", False),
        ("How many?\nA. 3\nB. 4", True),
        ("How many? (A) 3 (B) 4", True),
        ("How many?\nA: 3\nB: 4", True),
        ("How many? A:3, B:4", True),
        ("How many?\nA. 30\nB. 40", False),  # different options that merely start the same
        ("How many?\nA. 3", False),  # only some options listed
    ],
)
def test_choices_listed(problem, listed):
    assert choices_listed(problem, ["3", "4"]) is listed


@pytest.mark.parametrize("phase_input", ["text", "image_caption", "image"])
def test_choices_appended_once_in_every_phase(phase_input):
    images = 0 if phase_input == "text" else 1
    sample = make(images=images, caption=CAPTION, problem="How many circles?", choices=["2", "3", "4", "5"])
    if phase_input == "text":
        sample = sample.model_copy(update={"caption": None})
    text = user_text(build_messages(sample, phase_input))
    assert "How many circles?\nChoices:\nA. 2\nB. 3\nC. 4\nD. 5" in text
    assert text.count("A. 2") == 1


def test_choices_not_repeated_when_problem_lists_them():
    problem = "How many circles?\nA. 2\nB. 3"
    assert with_choices(problem, ["2", "3"]) == problem
    assert with_choices("How many circles?", []) == "How many circles?"


def test_too_many_choices_rejected():
    with pytest.raises(ValueError, match="at most 26"):
        format_choices([str(i) for i in range(27)])


# --- caption template validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [DEFAULT_CAPTION_TEMPLATE, "{question}\n(Described image: {caption})", "{{literal}} {caption} {question}"],
)
def test_valid_caption_templates(template):
    validate_caption_template(template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{question}", "lacks"),
        ("{caption}", "lacks"),
        ("{caption} {question} {answer}", "unsupported"),
        ("{caption} {question} {}", "unsupported"),
        ("{caption.upper} {question}", "unsupported"),
        ("{caption {question}", "malformed"),
    ],
)
def test_invalid_caption_templates(template, message):
    with pytest.raises(ValueError, match=message):
        validate_caption_template(template)


def test_build_messages_rejects_invalid_template():
    with pytest.raises(ValueError, match="lacks"):
        build_messages(make(images=1, caption=CAPTION), "image_caption", caption_template="{caption}")


# --- caption requests ------------------------------------------------------------------------


def test_caption_request_messages():
    messages = caption_request_messages(make(images=2, caption=CAPTION), "Describe the image.")
    parts = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Describe the image."}]
    assert messages == [{"role": "user", "content": parts}]


def test_caption_request_needs_an_image():
    with pytest.raises(ValueError, match="no image"):
        caption_request_messages(make(), "Describe the image.")

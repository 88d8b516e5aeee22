"""Phase prompt builders: the single place that turns a `Sample` into chat messages.

Curation rollouts, GRPO training and evaluation all call `build_messages`, so the policy sees
exactly the same prompt for a sample in every stage. Messages use the TRL/transformers
conversational format; image parts are bare `{"type": "image"}` placeholders and the pixels
travel separately (the sample's `images`, in order).
"""

from __future__ import annotations

import re
import string
from typing import Literal

from infimmr_core.data.schema import Sample

PhaseInput = Literal["text", "image_caption", "image"]

DEFAULT_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process step by step and then "
    "provides the User with the answer. The reasoning process is enclosed within <think> </think> "
    "tags and the answer within <answer> </answer> tags, i.e., "
    "<think> reasoning process here </think> <answer> answer here </answer>. "
    "Inside the answer tags, put the final answer in \\boxed{}."
)

DEFAULT_CAPTION_TEMPLATE = "Image description: {caption}\n\n{question}"

_TEMPLATE_FIELDS = frozenset({"caption", "question"})
_LETTERS = string.ascii_uppercase


def choice_letter(index: int) -> str:
    """Letter for the option at `index` (0 -> "A")."""
    if not 0 <= index < len(_LETTERS):
        raise ValueError(f"choice index {index} out of range: at most {len(_LETTERS)} options are supported")
    return _LETTERS[index]


def format_choices(choices: list[str]) -> str:
    """Options as lines "A. ...\\nB. ..." (no header)."""
    return "\n".join(f"{choice_letter(i)}. {choice}" for i, choice in enumerate(choices))


def choices_listed(problem: str, choices: list[str]) -> bool:
    """Whether every option already appears in `problem` after its letter.

    Accepts the markers datasets commonly use ("A. 3", "A) 3", "(A) 3", "A: 3", "A:3") so a
    problem that already shows its options does not get them a second time.
    """
    for i, choice in enumerate(choices):
        # The lookahead stops option "3" from matching a listed "A. 30".
        marker = rf"(?:^|\s|\()\(?{choice_letter(i)}[.):]\)?\s*{re.escape(choice.strip())}(?=[\s,;]|$)"
        if not re.search(marker, problem, flags=re.MULTILINE):
            return False
    return True


def with_choices(problem: str, choices: list[str]) -> str:
    """The problem text with its options appended, unless it has none or already lists them."""
    if not choices or choices_listed(problem, choices):
        return problem
    return f"{problem}\nChoices:\n{format_choices(choices)}"


def validate_caption_template(template: str) -> None:
    """Raise ValueError unless `template` uses exactly the fields {caption} and {question}."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # unbalanced braces
        raise ValueError(f"malformed caption template {template!r}: {exc}") from exc
    unknown = sorted(set(fields) - _TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"caption template {template!r} has unsupported field(s) {unknown}; "
            "only {caption} and {question} are allowed"
        )
    missing = _TEMPLATE_FIELDS - set(fields)
    if missing:
        raise ValueError(f"caption template {template!r} lacks field(s) {sorted('{' + m + '}' for m in missing)}")


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def _image_parts(sample: Sample, purpose: str) -> list[dict]:
    if not sample.images:
        raise ValueError(f"sample {sample.id!r} has no image, but {purpose} needs one")
    return [{"type": "image"} for _ in sample.images]


def _user_parts(sample: Sample, phase_input: PhaseInput, caption_template: str) -> list[dict]:
    question = with_choices(sample.problem, sample.choices)
    if phase_input == "text":
        if sample.images:
            raise ValueError(
                f"sample {sample.id!r} has {len(sample.images)} image(s) but phase input 'text' is text-only; "
                "filter image samples out before building text prompts"
            )
        return [_text_part(question)]
    if phase_input == "image_caption":
        parts = _image_parts(sample, "phase input 'image_caption'")
        if sample.caption is None or not sample.caption.strip():
            raise ValueError(f"sample {sample.id!r} has no caption, but phase input 'image_caption' needs one")
        validate_caption_template(caption_template)
        return [*parts, _text_part(caption_template.format(caption=sample.caption.strip(), question=question))]
    if phase_input == "image":
        # The caption is deliberately left out even when present: phase 3 must reason from pixels.
        return [*_image_parts(sample, "phase input 'image'"), _text_part(question)]
    raise ValueError(f"unknown phase input {phase_input!r}; expected 'text', 'image_caption' or 'image'")


def build_messages(
    sample: Sample,
    phase_input: PhaseInput,
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    caption_template: str = DEFAULT_CAPTION_TEMPLATE,
) -> list[dict]:
    """System + user messages for `sample` as seen in the given phase.

    text: the problem only (image samples are rejected). image_caption: one image placeholder
    per image, then the caption template filled with the caption and the problem. image: image
    placeholders, then the problem; never the caption.
    """
    return [
        {"role": "system", "content": [_text_part(system_prompt)]},
        {"role": "user", "content": _user_parts(sample, phase_input, caption_template)},
    ]


def caption_request_messages(sample: Sample, prompt: str) -> list[dict]:
    """A single user message asking a captioner to describe the sample's image(s)."""
    return [{"role": "user", "content": [*_image_parts(sample, "a caption request"), _text_part(prompt)]}]

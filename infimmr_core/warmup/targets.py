"""What the warm-up teaches: a sample as the phase would show it, answered by its worked solution in the format the
rewards expect, so the model learns the format and the task together."""

from __future__ import annotations

from infimmr_core.answers.extract import AnswerFormat, check_answer_format
from infimmr_core.config import PromptConfig
from infimmr_core.data.prompts import PhaseInput, build_messages
from infimmr_core.data.schema import Sample


class WarmupDataError(ValueError):
    """A warm-up sample that cannot be taught (no worked solution)."""


def worked_answer(solution: str, answer: str, answer_format: AnswerFormat) -> str:
    """The assistant turn: the solution as reasoning, then the answer where `answer_format` puts it."""
    check_answer_format(answer_format)
    think = f"<think> {solution.strip()} </think> "
    if answer_format == "answer_tag_boxed":
        return think + f"<answer>\\boxed{{{answer}}}</answer>"
    if answer_format == "answer_tag":
        return think + f"<answer>{answer}</answer>"
    return think + f"\\boxed{{{answer}}}"


def worked_solution(sample: Sample, phase_input: PhaseInput) -> str:
    """The sample's worked solution as this input shows it: `metadata.solutions[input]` where the sample has one (a
    picture with its caption may be solved from the caption's words, the picture alone from its digits), else
    `metadata.solution`."""
    per_input = sample.metadata.get("solutions") or {}
    if not isinstance(per_input, dict):
        raise WarmupDataError(f"warm-up sample {sample.id!r} (source {sample.source}): metadata.solutions must map an "
                              f"input (text, image_caption, image) to its worked solution, not {per_input!r}")
    solution = per_input.get(phase_input, sample.metadata.get("solution"))
    if not isinstance(solution, str) or not solution.strip():
        raise WarmupDataError(
            f"warm-up sample {sample.id!r} (source {sample.source}) has no worked solution for input {phase_input!r}: "
            "the warm-up needs one in metadata.solution (for a canonical source, a `solution` column)"
        )
    return solution


def training_chat(sample: Sample, phase_input: PhaseInput, prompts: PromptConfig, answer_format: AnswerFormat) -> list[dict]:
    """System and user turns exactly as the phase builds them, then the worked answer."""
    solution = worked_solution(sample, phase_input)
    messages = build_messages(sample, phase_input, system_prompt=prompts.system_prompt,
                              caption_template=prompts.caption_template)
    answer = worked_answer(solution, sample.answer, answer_format)
    return messages + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]

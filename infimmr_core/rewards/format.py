"""The format reward: is the completion one reasoning block followed by the final answer? (1.0 / 0.0)

Two modes:

* ``lmm_r1``: LMM-R1's check exactly (TideDra/lmm-r1 @ f917f18, `openrlhf/models/remote_rm/math_verifier.py`
  ``verify_format``): its end-of-turn markers removed and surrounding whitespace stripped, the completion must match
  ``^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\\Z`` (DOTALL) with exactly one ``<think>``
  and one ``<answer>``. Nothing, not even a newline, may separate ``</think>`` from ``<answer>``; the answer may be
  empty and needs no ``\\boxed{}``; ``answer_format`` does not change this mode.
* ``lenient`` (ours, the default): whitespace and newlines are allowed before, between and after the blocks, but
  every tag must appear exactly once (LMM-R1's regex lets a stray ``</think>`` into the answer), the answer must not
  be empty, and ``answer_format`` decides what the answer holds: ``answer_tag`` any text, ``answer_tag_boxed`` a
  non-empty ``\\boxed{}`` inside the answer block, ``boxed`` no answer tags but a final ``\\boxed{}`` after
  ``</think>`` followed by nothing but closing math delimiters and a full stop.

An empty think block is accepted by both. A chat template that pre-fills ``<think>`` produces completions without the
opening tag; those score 0 here on purpose: prepend ``"<think>"`` before scoring.
"""

from __future__ import annotations

import re
from typing import Literal

from infimmr_core.answers.extract import boxed_contents, check_answer_format, last_boxed

FormatMode = Literal["lenient", "lmm_r1"]
FORMAT_MODES: tuple[str, ...] = ("lenient", "lmm_r1")

# LMM-R1's pattern and the end-of-turn markers its reward server removes before matching.
LMM_R1_PATTERN = re.compile(r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\Z", re.DOTALL)
LMM_R1_END_MARKERS = ("<|im_end|>", "<｜end▁of▁sentence｜>", "<|endoftext|>", "<end_of_turn>")

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_THINK_SPLIT_RE = re.compile(r"\s*<think>(.*)</think>(.*)", re.DOTALL)
_ANSWER_BLOCK_RE = re.compile(r"\s*<answer>(.*)</answer>\s*", re.DOTALL)
# What may follow the box in the "boxed" format: closing math delimiters and a full stop.
_AFTER_BOX_RE = re.compile(r"(?:\s|\.|\$|\\\]|\\\))*")


def check_format_mode(mode: str) -> None:
    if mode not in FORMAT_MODES:
        raise ValueError(f"mode must be one of {FORMAT_MODES}, got {mode!r}")


def format_reward(completion: str, *, mode: FormatMode = "lenient", answer_format: str = "answer_tag_boxed") -> float:
    """1.0 when the completion has the expected structure under ``mode``, else 0.0."""
    check_format_mode(mode)
    check_answer_format(answer_format)
    ok = lmm_r1_format_ok(completion) if mode == "lmm_r1" else _lenient_ok(completion, answer_format)
    return 1.0 if ok else 0.0


def lmm_r1_format_ok(completion: str) -> bool:
    response = completion
    for marker in LMM_R1_END_MARKERS:
        response = response.replace(marker, "")
    response = response.strip()
    return (LMM_R1_PATTERN.match(response) is not None
            and response.count("<think>") == 1 and response.count("<answer>") == 1)


def _lenient_ok(text: str, answer_format: str) -> bool:
    # Counting tags first rules out repeated blocks, nested tags and stray tags in one go.
    want_answer_tags = 0 if answer_format == "boxed" else 1
    if [text.count(tag) for tag in _TAGS] != [1, 1, want_answer_tags, want_answer_tags]:
        return False
    m = _THINK_SPLIT_RE.fullmatch(text)
    if m is None:  # text before <think>, or </think> before <think>
        return False
    rest = m.group(2)
    if answer_format == "boxed":
        boxes = boxed_contents(rest)
        if not boxes or not boxes[-1][2].strip():
            return False
        return _AFTER_BOX_RE.fullmatch(rest[boxes[-1][1] :]) is not None
    a = _ANSWER_BLOCK_RE.fullmatch(rest)
    if a is None or not a.group(1).strip():
        return False
    if answer_format == "answer_tag_boxed":
        box = last_boxed(a.group(1))
        return box is not None and bool(box.strip())
    return True

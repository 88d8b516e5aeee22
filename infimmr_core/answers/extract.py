"""Where the final answer is in a completion: ``\\boxed{}`` groups, ``<answer>`` blocks, "the answer is" phrases.

One extractor serves the training reward and the semantic verdict of every benchmark; the official verdicts use their
benchmarks' own extraction rules (`answers.official`), which this module's helpers do not imitate.
"""

from __future__ import annotations

import re
from typing import Literal

from infimmr_core.answers.latex import strip_math_delims

AnswerFormat = Literal["answer_tag", "boxed", "answer_tag_boxed"]
ANSWER_FORMATS: tuple[str, ...] = ("answer_tag", "boxed", "answer_tag_boxed")

_BOXED_START_RE = re.compile(r"\\boxed\s*\{")


def boxed_contents(text: str) -> list[tuple[int, int, str]]:
    """All top-level ``\\boxed{...}`` groups as (start, end, content), braces matched properly.

    A regex cannot match nested braces, so we walk the string. ``\\{`` and ``\\}`` are literal
    braces in LaTeX and must not change the depth, hence the backslash skip. An unclosed
    ``\\boxed{`` is ignored rather than swallowing the rest of the text.
    """
    found = []
    for m in _BOXED_START_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    found.append((m.start(), i + 1, text[m.end() : i]))
                    break
            i += 1
    # A \boxed nested inside another is also found; keep only outermost groups so "last" means
    # the last top-level box.
    outer: list[tuple[int, int, str]] = []
    for start, end, content in found:
        if outer and start < outer[-1][1]:
            continue
        outer.append((start, end, content))
    return outer


def last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1][2] if boxes else None


ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def check_answer_format(answer_format: str) -> None:
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")


def extract_answer(completion: str, answer_format: AnswerFormat = "answer_tag_boxed") -> str | None:
    """The final answer text the policy gave, or None when there is none.

    Tag formats: the last ``\\boxed{}`` inside the (last) answer block, else the answer block's
    text, else the last ``\\boxed{}`` anywhere. An answer block that exists but is empty gives
    None: falling back to a box in the reasoning would reward ``<answer></answer>``.
    "boxed" format: the last ``\\boxed{}`` after ``</think>``, else the last one anywhere.
    """
    check_answer_format(answer_format)
    if answer_format == "boxed":
        tail = completion.rsplit("</think>", 1)[-1]
        box = last_boxed(tail)
        if box is None:
            box = last_boxed(completion)
        return _nonempty(box)
    blocks = ANSWER_BLOCK_RE.findall(completion)
    if blocks:
        block = blocks[-1]
        box = last_boxed(block)
        return _nonempty(box if box is not None else block)
    return _nonempty(last_boxed(completion))


def _nonempty(s: str | None) -> str | None:
    if s is None:
        return None
    s = s.strip()
    return s if strip_math_delims(s) else None


_FINAL_PHRASE_RE = re.compile(r"final answer is|所以最终答案是", re.IGNORECASE)


def final_boxes(response: str) -> list[str]:
    """Every non-empty box of the final answer, for answers with several parts ("\\boxed{2} and \\boxed{3}"): the
    boxes in the last answer block, else those after the last "final answer is" (on its line when it has one there),
    else the last box anywhere."""
    blocks = ANSWER_BLOCK_RE.findall(response)
    region = blocks[-1] if blocks else _FINAL_PHRASE_RE.split(response)[-1]
    if not blocks and region is not response and boxed_contents(region.split("\n", 1)[0]):
        region = region.split("\n", 1)[0]  # "... final answer is \\boxed{5}." then more lines: that line only
    boxes = [content.strip() for _, _, content in boxed_contents(region)]
    if not any(boxes):
        last = last_boxed(response)
        boxes = [last.strip()] if last is not None else []
    return [b for b in boxes if strip_math_delims(b)]


_ANSWER_IS_RE = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*[:：]?\s*(.+)", re.IGNORECASE)
_SHORT_RESPONSE = 40  # a one-line response this short is its own answer


def extract_final(response: str) -> str | None:
    """The model's final answer for benchmark scoring: what `extract_answer` finds (answer block, boxes), else the
    text after the last "answer is" on its line, else the whole response (after any reasoning block) when it is one
    short line."""
    answer = extract_answer(response, "answer_tag_boxed")
    if answer is not None:
        return answer
    found = _ANSWER_IS_RE.findall(response)
    if found:
        return found[-1].strip().rstrip(".").strip() or None
    stripped = response.rsplit("</think>", 1)[-1].strip()  # reasoning is never the answer
    return stripped if stripped and "\n" not in stripped and len(stripped) <= _SHORT_RESPONSE else None

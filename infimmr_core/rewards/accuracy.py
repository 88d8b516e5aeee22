"""The accuracy reward: the completion's final answer against the gold answer, by answer type (1.0 / 0.0).

It never returns 1 when something went wrong: an unparsable gold answer, a verifier exception, a timeout and a
missing or empty answer all score 0, with the reason.
"""

from __future__ import annotations

import logging

from infimmr_core.answers.compare import SymbolicNeeded, check_answer_type, compare
from infimmr_core.answers.extract import AnswerFormat, check_answer_format, extract_answer
from infimmr_core.rewards.deadline import DeadlineExceeded, deadline

_log = logging.getLogger(__name__)

# Default per-item budget for in-process scoring; math-verify's own default is 5 s as well.
DEFAULT_TIMEOUT = 5.0


def accuracy_reward(
    completion: str,
    gold: str,
    answer_type: str | None = None,
    *,
    choices: list[str] | None = None,
    answer_format: AnswerFormat = "answer_tag_boxed",
    timeout: float | None = DEFAULT_TIMEOUT,
) -> tuple[float, str]:
    """(1.0, "") when the extracted answer equals ``gold``, else (0.0, reason).

    ``timeout`` bounds verification with SIGALRM in the main thread; in other threads it is
    not enforced (math-verify cannot time out there either): use ``score_batch`` instead.
    """
    if answer_type is not None:
        check_answer_type(answer_type)
    check_answer_format(answer_format)
    if answer_type == "unverifiable":
        return 0.0, "unverifiable"
    pred = extract_answer(completion, answer_format)
    if pred is None:
        return 0.0, no_answer_reason(answer_format)
    return answer_accuracy(pred, gold, answer_type, choices, timeout=timeout)


def no_answer_reason(answer_format: AnswerFormat) -> str:
    return "no boxed answer" if answer_format == "boxed" else "no answer"


def answer_accuracy(
    pred: str, gold: str, answer_type: str | None, choices: list[str] | None, *, timeout: float | None
) -> tuple[float, str]:
    """`accuracy_reward` once the answer is extracted: the verdict depends on (pred, gold, answer_type, choices)
    only, which is what lets the pool score each distinct answer of a batch once."""
    try:
        with deadline(timeout):
            return compare(pred, gold, answer_type, choices)
    except DeadlineExceeded:
        return 0.0, "timeout"
    except Exception:
        _log.debug("verification raised", exc_info=True)
        return 0.0, "verifier error"


# Longer answers go to the worker processes even when they are plain numbers: there a hard timeout covers any
# regex that would backtrack on them; real final answers are far shorter.
QUICK_MAX_CHARS = 400


def quick_accuracy(
    pred: str, gold: str, answer_type: str | None, choices: list[str] | None
) -> tuple[float, str] | None:
    """`answer_accuracy`'s verdict when it needs no math-verify (letters, text, plain numbers, which take
    microseconds and cannot hang), else None. Same verdicts: `compare` runs the same code up to where it would call
    math-verify."""
    if len(pred) > QUICK_MAX_CHARS or len(gold) > QUICK_MAX_CHARS:
        return None
    try:
        return compare(pred, gold, answer_type, choices, symbolic=False)
    except SymbolicNeeded:
        return None
    except Exception:
        _log.debug("verification raised", exc_info=True)
        return 0.0, "verifier error"

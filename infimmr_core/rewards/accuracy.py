"""The accuracy reward: the completion's final answer against the gold answer, by answer type (1.0 / 0.0).

It never returns 1 when something went wrong: an unparsable gold answer, a verifier exception, a timeout and a
missing or empty answer all score 0, with the reason.
"""

from __future__ import annotations

import logging

from infimmr_core.answers.compare import check_answer_type, compare
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
        return 0.0, ("no boxed answer" if answer_format == "boxed" else "no answer")
    try:
        with deadline(timeout):
            return compare(pred, gold, answer_type, choices)
    except DeadlineExceeded:
        return 0.0, "timeout"
    except Exception:
        _log.debug("verification raised", exc_info=True)
        return 0.0, "verifier error"

"""What every benchmark scorer is: two pure verdicts on a model response, always both.

* ``official``: the benchmark's official scoring code, reproduced verdict for verdict (`answers.official`): the number
  to put next to published ones, the headline.
* ``semantic``: the mathematically right verdict (`answers.compare`): equivalent forms, units, letters vs option
  text; shown beside the headline and labelled.

Each verdict runs under its own deadline, so one response that sends sympy into a spin cannot stall an evaluation: a
timeout or an exception in the verifier scores 0 with that reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Literal

from infimmr_core.answers.compare import compare
from infimmr_core.answers.extract import extract_final
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.rewards.deadline import DeadlineExceeded, deadline

_log = logging.getLogger(__name__)

SYMBOLIC_TIMEOUT = 5.0  # seconds per verdict


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None  # what was compared (None: no answer could be found)
    reason: str = ""  # "" when correct; else "no answer", "mismatch", "unparsable gold", "timeout", "verifier error"
    quirk: str = ""  # official verdicts only: the known official-code quirk that decided it


@dataclass(frozen=True)
class Scores:
    official: Verdict
    semantic: Verdict


VerdictFn = Callable[[EvalItem, str], Verdict]


@dataclass(frozen=True)
class Scorer:
    name: str
    official_semantics: str  # whose rules the official verdict follows, recorded in every score's protocol
    semantic_semantics: str
    official: VerdictFn
    semantic: VerdictFn
    # For a judge in "extract" mode: the official verdict of an extraction the judge made (MathVista's two steps).
    official_compare: Callable[[EvalItem, str], bool] | None = None
    # How a judge scores this benchmark: "extract" = the judge pulls the answer out of the response and the official
    # rule scores it; "verdict" = the judge says correct or not (MathVerse's protocol).
    judge_mode: Literal["extract", "verdict"] = "verdict"
    timeout: float = SYMBOLIC_TIMEOUT

    def score(self, item: EvalItem, response: str) -> Scores:
        return Scores(self._run(self.official, item, response), self._run(self.semantic, item, response))

    def _run(self, verdict: VerdictFn, item: EvalItem, response: str) -> Verdict:
        try:
            with deadline(self.timeout):
                return verdict(item, response)
        except DeadlineExceeded:
            return Verdict(False, None, "timeout")
        except Exception:
            _log.debug("%s verdict raised on %s", self.name, item.id, exc_info=True)
            return Verdict(False, None, "verifier error")


def from_official(correct: bool, compared: str | None, quirk: str = "") -> Verdict:
    """An official policy's result as a Verdict, with the reason a wrong one failed."""
    if correct:
        return Verdict(True, compared, "", quirk)
    return Verdict(False, compared, "mismatch" if compared and compared.strip() else "no answer", quirk)


def from_compare(answer: str | None, result: tuple[float, str]) -> Verdict:
    """A semantic comparison's (accuracy, reason) as a Verdict."""
    accuracy, reason = result
    return Verdict(accuracy == 1.0, answer, "" if accuracy == 1.0 else reason or "mismatch")


NO_ANSWER = Verdict(False, None, "no answer")


def semantic_compare(response: str, gold: str, answer_type: str | None = None,
                     choices: tuple[str, ...] | list[str] = ()) -> Verdict:
    """The semantic verdict most benchmarks need: the final answer, compared by type with the gold."""
    answer = extract_final(response)
    if answer is None:
        return NO_ANSWER
    return from_compare(answer, compare(answer, gold, answer_type, list(choices) or None))

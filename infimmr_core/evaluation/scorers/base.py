"""What every benchmark scorer is: extract the model's final answer, then compare it with the gold the way the
benchmark's authors do. The rule score is always computed; a judge (see `evaluation.judge`) may add a second one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.common import extract_final


@dataclass(frozen=True)
class RuleResult:
    correct: bool
    extracted: str | None  # what was compared (None: no answer could be found)


@dataclass(frozen=True)
class Scorer:
    name: str
    semantics: str  # whose scoring rules these are, recorded in every score's protocol
    compare: Callable[[EvalItem, str], bool]
    extract: Callable[[str], str | None] = extract_final
    # How a judge scores this benchmark: "extract" = the judge pulls the answer out of the response and the rule
    # compare scores it (MathVista's official two steps); "verdict" = the judge says correct or not (MathVerse).
    judge_mode: Literal["extract", "verdict"] = "verdict"

    def score(self, item: EvalItem, response: str) -> RuleResult:
        answer = self.extract(response)
        return RuleResult(answer is not None and self.compare(item, answer), answer)

"""Benchmark scorers, one module per benchmark, in a registry: each gives an `official` verdict (the benchmark's own
scoring semantics, the headline) and a `semantic` one (the mathematically right verdict) for every response."""

from __future__ import annotations

from infimmr_core.evaluation.scorers import custom, math500, mathverse, mathvision, mathvista, olympiadbench
from infimmr_core.evaluation.scorers.base import Scorer, Scores, Verdict

SCORERS: dict[str, Scorer] = {
    module.SCORER.name: module.SCORER
    for module in (mathverse, mathvision, mathvista, olympiadbench, math500, custom)
}
VERDICTS = ("official", "semantic")

__all__ = ["SCORERS", "VERDICTS", "Scorer", "Scores", "Verdict"]

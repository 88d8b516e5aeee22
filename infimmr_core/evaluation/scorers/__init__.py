"""Rule scorers, one module per benchmark, each following its authors' scoring semantics."""

from __future__ import annotations

from infimmr_core.evaluation.scorers import custom, math500, mathverse, mathvision, mathvista, olympiadbench
from infimmr_core.evaluation.scorers.base import RuleResult, Scorer

SCORERS: dict[str, Scorer] = {
    module.SCORER.name: module.SCORER
    for module in (mathverse, mathvision, mathvista, olympiadbench, math500, custom)
}

__all__ = ["SCORERS", "RuleResult", "Scorer"]

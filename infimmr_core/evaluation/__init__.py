"""Evaluation: benchmark adapters, per-benchmark scorers, an optional LLM judge and the curriculum report.

The evaluate stage (`run`) lives in `stage`; the science (adapters, scorers) is pure and tested with tables of cases.
"""

from infimmr_core.evaluation.stage import run

__all__ = ["run"]

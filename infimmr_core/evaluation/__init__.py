"""Evaluation: benchmark adapters, per-benchmark scorers, an optional LLM judge and the curriculum report.

The evaluate stage (`run`) lives in `stage`; the science (adapters, scorers) is pure and tested with tables of cases.
Nothing is imported here: the CLI prints the curriculum table (`curriculum_view`) of a stored run without loading the
stage, and with it torch (1.3 s of a 5 s cached rerun).
"""

"""The protocol that travels with every number: what was evaluated, how it was prompted, decoded and scored."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from infimmr_core.config import EvalSetConfig, Recipe
from infimmr_core.evaluation.benchmarks import BENCHMARKS
from infimmr_core.keys import library_versions

LIBRARIES = ("torch", "transformers", "datasets", "math-verify", "latex2sympy2_extended")


def template_id(system_prompt: str, question_template: str) -> str:
    return hashlib.sha256((system_prompt + "\0" + question_template).encode()).hexdigest()[:12]


def describe_set(cfg: EvalSetConfig) -> dict[str, Any]:
    """Which data a set is: dataset id (prefixed when it is not the hub copy), split(s) and subsets."""
    if cfg.kind != "benchmark":
        return {"benchmark": "custom", "dataset": Path(cfg.path).name if cfg.path else cfg.kind, "split": "eval",
                "subsets": [], "dataset_revision": None}
    bench = BENCHMARKS[cfg.benchmark]
    subsets = list(cfg.subsets or bench.subsets)
    dataset = {"hub": bench.hub_id, "fixture": f"fixture:{bench.hub_id}",
               "local": f"local:{Path(cfg.path or '').name}"}[cfg.source]
    splits = sorted({cfg.split or bench.default_split(s) for s in subsets})
    return {"benchmark": bench.name, "dataset": dataset, "split": ",".join(splits),
            "subsets": [s for s in subsets if s], "dataset_revision": cfg.revision}


def headline_rule(cfg: EvalSetConfig) -> str:
    return BENCHMARKS[cfg.benchmark].headline if cfg.kind == "benchmark" else "accuracy over all rows"


def protocol(recipe: Recipe, cfg: EvalSetConfig, n: int, model: dict[str, Any], scorer: dict[str, Any]) -> dict[str, Any]:
    gen = recipe.evaluation.generation
    libraries = LIBRARIES + (("vllm",) if gen.backend == "vllm" else ())
    return {
        **describe_set(cfg), "n": n,
        "prompt_template_id": template_id(recipe.prompts.system_prompt, recipe.evaluation.question_template),
        "decoding": {"temperature": gen.temperature, "top_p": gen.top_p, "max_new_tokens": gen.max_new_tokens,
                     "greedy": gen.temperature == 0},
        "max_pixels": gen.max_pixels, "backend": gen.backend,
        "model": model["label"], "model_name": model["name_or_path"], "model_revision": model["revision"],
        "model_digest": model["digest"], "scorer": scorer, "headline": headline_rule(cfg),
        "libraries": library_versions(libraries),
    }

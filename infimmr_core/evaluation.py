"""The evaluate stage: generate on each evaluation set with the final model, score with the rule scorer, and write
per-sample predictions plus a scores table that carries the protocol that produced it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from infimmr_core.config import Recipe
from infimmr_core.context import StageContext
from infimmr_core.data.images import decode_image
from infimmr_core.data.prompts import build_messages
from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined, load_source
from infimmr_core.inference import GenerationRequest, SamplingSpec, make_generator
from infimmr_core.keys import library_versions
from infimmr_core.rewards import ScoreItem, score_batch
from infimmr_core.training import MODEL_DIR


def protocol(recipe: Recipe, model_digest: str) -> dict[str, Any]:
    gen = recipe.evaluation.generation
    prompts = recipe.prompts
    template_id = hashlib.sha256((prompts.system_prompt + "\0" + prompts.caption_template).encode()).hexdigest()[:12]
    return {
        "decoding": {"temperature": gen.temperature, "top_p": gen.top_p, "max_new_tokens": gen.max_new_tokens},
        "max_pixels": gen.max_pixels,
        "prompt_template_id": template_id,
        "backend": gen.backend,
        "model_digest": model_digest,
        "scorer": f"rule (infimmr rewards, answer_format={recipe.rewards.answer_format})",
        "libraries": library_versions(("torch", "transformers", "math-verify")),
    }


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    gen = recipe.evaluation.generation
    generator = make_generator(gen.backend, ctx.inputs["phase3"] / MODEL_DIR, device=ctx.device,
                               batch_size=gen.batch_size, max_pixels=gen.max_pixels)
    sampling = SamplingSpec(n=1, temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, seed=0)
    proto = protocol(recipe, ctx.upstream_digests["phase3"])
    scores: dict[str, Any] = {}
    with (ctx.out_dir / "predictions.jsonl").open("w") as predictions:
        for eval_set in recipe.evaluation.sets:
            samples: list[Sample] = [s for s in load_source(eval_set) if not isinstance(s, Quarantined)]
            requests = [
                GenerationRequest(
                    messages=build_messages(s, eval_set.input if s.images else "text", system_prompt=recipe.prompts.system_prompt,
                                            caption_template=recipe.prompts.caption_template),
                    images=[decode_image(b) for b in s.images],
                )
                for s in samples
            ]
            completions = [texts[0] for texts in generator.generate(requests, sampling)]
            results = score_batch(
                [ScoreItem(completion=c, gold=s.answer, answer_type=s.answer_type, choices=s.choices or None)
                 for s, c in zip(samples, completions)],
                timeout=recipe.rewards.timeout_seconds, workers=recipe.rewards.workers,
                mode=recipe.rewards.format_mode, answer_format=recipe.rewards.answer_format,
            )
            for s, c, r in zip(samples, completions, results):
                predictions.write(json.dumps({
                    "set": eval_set.name, "id": s.id, "completion": c, "gold": s.answer,
                    "format": r.format, "accuracy": r.accuracy, "reason": r.reason,
                }) + "\n")
            n = len(samples)
            scores[eval_set.name] = {
                "n": n,
                "split": eval_set.kind,
                "input": eval_set.input,
                "accuracy": round(100 * sum(r.accuracy for r in results) / n, 2) if n else None,
                "format_rate": round(100 * sum(r.format for r in results) / n, 2) if n else None,
                "protocol": proto,
            }
            ctx.log(f"{eval_set.name}: accuracy {scores[eval_set.name]['accuracy']}% on {n}")
    (ctx.out_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    return {name: {"n": s["n"], "accuracy": s["accuracy"]} for name, s in scores.items()}

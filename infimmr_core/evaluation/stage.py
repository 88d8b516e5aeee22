"""The evaluate stage: every configured model (base, phase 1..3) on every evaluation set; official and semantic scores
always, judged scores where configured; writes scores.json, curriculum.json, report.md and predictions.jsonl."""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from infimmr_core.config import EvalSetConfig, Recipe
from infimmr_core.context import StageContext
from infimmr_core.evaluation.benchmarks import load_items
from infimmr_core.evaluation.generation import generate_resumable, request_for
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.curriculum_view import own_sets
from infimmr_core.evaluation.figure import learning_png
from infimmr_core.evaluation.intervals import add_intervals, verdicts
from infimmr_core.evaluation.judge import JudgeClient, judge
from infimmr_core.evaluation.protocol import describe_set, protocol
from infimmr_core.evaluation.report import aggregate, curriculum, markdown, scores_document, verdict_differences
from infimmr_core.evaluation.scorers import SCORERS
from infimmr_core.inference import Generator, SamplingSpec, make_generator
from infimmr_core.base_model import model_dir
from infimmr_core.layout import BASE_STAGE, METRICS_FILE, MODEL_DIR, WARMUP_LOG
from infimmr_core.rewards import format_reward


def _dir_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_under_test(ctx: StageContext, label: str) -> tuple[Path, dict[str, Any]]:
    """Where a model's weights are, and how the protocol names it (revision and content digest)."""
    if label != "base":
        return ctx.inputs[label] / MODEL_DIR, {
            "label": label, "name_or_path": f"{label} artifact", "revision": None, "digest": ctx.upstream_digests[label]}
    base = ctx.recipe.base_model
    if BASE_STAGE in ctx.inputs:  # the recipe warms its base model up: the base stage's artifact is the base model
        return ctx.inputs[BASE_STAGE] / MODEL_DIR, {
            "label": "base", "name_or_path": f"{base.name_or_path}, warmed up (base artifact)", "revision": None,
            "digest": ctx.upstream_digests[BASE_STAGE]}
    path = model_dir(base, ctx.cache_dir)
    # A Hub snapshot folder is named by its commit: that pins the weights. Anything else is hashed.
    snapshot = path.parent.name == "snapshots"
    return path, {"label": "base", "name_or_path": base.name_or_path, "revision": path.name if snapshot else base.revision,
                  "digest": None if snapshot else _dir_digest(path)}


def _generate_all(
    ctx: StageContext, loaded: dict[str, list[EvalItem]], label: str, generator: Callable[[], Generator],
) -> dict[str, list[str]]:
    """Completions of one model for every set. The sets are generated as one stream so batches stay full."""
    recipe, ev = ctx.recipe, ctx.recipe.evaluation
    gen = ev.generation
    ids = [f"{name}/{item.id}" for name, items in loaded.items() for item in items]
    stream = [item for items in loaded.values() for item in items]
    completions = generate_resumable(
        ids, stream,
        lambda item: request_for(item, recipe.prompts.system_prompt, ev.question_template, recipe.prompts.caption_template),
        generator,
        SamplingSpec(n=1, temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, seed=0),
        ctx.work_dir / "generations" / label, ev.shard_size, ctx.log,
    )
    by_set, start = {}, 0
    for name, items in loaded.items():
        by_set[name], start = completions[start:start + len(items)], start + len(items)
    return by_set


def _score_set(
    ctx: StageContext, cfg: EvalSetConfig, items: list[EvalItem], completions: list[str], model: dict[str, Any],
    client: JudgeClient | None, predictions,
) -> dict[str, Any]:
    recipe, ev = ctx.recipe, ctx.recipe.evaluation
    benchmark = describe_set(cfg)["benchmark"]
    scorer = SCORERS[benchmark]
    scores = [scorer.score(item, completion) for item, completion in zip(items, completions)]
    formats = [format_reward(c, mode=recipe.rewards.format_mode, answer_format=recipe.rewards.answer_format)
               for c in completions]
    judged = None
    if client is not None and benchmark in ev.judge.benchmarks:
        judged = [judge(client, scorer, item, completion) for item, completion in zip(items, completions)]
    groups = [item.group for item in items]
    format_rate = round(100 * sum(formats) / len(formats), 2) if formats else None

    # Both verdicts, always: official is the headline (comparable with published numbers), semantic sits beside it.
    results = {
        verdict: aggregate(benchmark, groups, [getattr(s, verdict).correct for s in scores]) | {
            "format_rate": format_rate,
            "protocol": protocol(recipe, cfg, len(items), model, {"kind": verdict, "semantics": semantics}),
        }
        for verdict, semantics in (("official", scorer.official_semantics), ("semantic", scorer.semantic_semantics))
    }
    results["official"] |= verdict_differences(scores)
    if judged is not None:
        results["judge"] = aggregate(benchmark, groups, [j.correct for j in judged]) | {
            "format_rate": format_rate,
            "protocol": protocol(recipe, cfg, len(items), model, {
                # Not its endpoint: where the judge is served is operational (no key holds it), and it would be published.
                "kind": "judge", "model": ev.judge.model, "mode": scorer.judge_mode}),
        }
    for index, (item, completion, both, fmt) in enumerate(zip(items, completions, scores, formats)):
        row = {
            "model": model["label"], "set": cfg.name, "benchmark": benchmark, "id": item.id, "group": item.group,
            "gold": item.gold, "completion": completion, "extracted": both.official.extracted,
            "correct": both.official.correct, "format": fmt, "extra": item.extra,
            "official": asdict(both.official), "semantic": asdict(both.semantic),
        }
        if judged is not None:
            row["judge"] = {"correct": judged[index].correct, "reply": judged[index].raw,
                            "extracted": judged[index].extracted}
        predictions.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    summary = (f"{cfg.name} / {model['label']}: official {results['official']['accuracy']}% "
               f"(semantic {results['semantic']['accuracy']}%) on {len(items)}")
    ctx.log(summary + (f", judge {results['judge']['accuracy']}%" if judged is not None else ""))
    return results


def run(ctx: StageContext) -> dict[str, Any]:
    recipe: Recipe = ctx.recipe
    ev = recipe.evaluation
    gen = ev.generation
    loaded = {cfg.name: load_items(cfg) for cfg in ev.sets}
    client = JudgeClient(ev.judge) if ev.judge else None
    sets: dict[str, dict[str, Any]] = {
        cfg.name: {k: v for k, v in describe_set(cfg).items() if k != "dataset_revision"} | {"results": {}}
        for cfg in ev.sets
    }
    with (ctx.out_dir / "predictions.jsonl").open("w", encoding="utf-8") as predictions:
        for label in ev.models:
            model_dir, model = model_under_test(ctx, label)
            loaded_generator: list[Generator] = []

            def generator() -> Generator:  # loaded on first need: a fully resumed model is never loaded
                if not loaded_generator:
                    loaded_generator.append(make_generator(
                        gen.backend, model_dir, device=ctx.device, batch_size=gen.batch_size,
                        max_pixels=gen.max_pixels))
                return loaded_generator[0]

            completions = _generate_all(ctx, loaded, label, generator)
            for cfg in ev.sets:
                sets[cfg.name]["results"][label] = _score_set(
                    ctx, cfg, loaded[cfg.name], completions[cfg.name], model, client, predictions)
            loaded_generator.clear()
            gc.collect()  # release this model's weights before the next one loads
    table = add_intervals(curriculum(sets, ev), verdicts(ctx.out_dir / "predictions.jsonl")) | {"own": own_sets(recipe)}
    (ctx.out_dir / "scores.json").write_text(json.dumps(scores_document(sets, list(ev.models)), indent=2))
    (ctx.out_dir / "curriculum.json").write_text(json.dumps(table, indent=2))
    (ctx.out_dir / "report.md").write_text(markdown(table, sets), encoding="utf-8")
    phases = {label: (recipe.phases[int(label[-1])].input, ctx.inputs[label] / METRICS_FILE)
              for label in ("phase1", "phase2", "phase3") if label in ctx.inputs}
    warmup = ctx.inputs[BASE_STAGE] / WARMUP_LOG if BASE_STAGE in ctx.inputs else None
    (ctx.out_dir / "learning.png").write_bytes(learning_png(table, phases, warmup))
    final = ev.models[-1]
    return {
        name: {"n": entry["results"][final]["official"]["n"], "accuracy": entry["results"][final]["official"]["accuracy"],
               "semantic_accuracy": entry["results"][final]["semantic"]["accuracy"]}
        | ({"judge_accuracy": entry["results"][final]["judge"]["accuracy"]} if "judge" in entry["results"][final] else {})
        for name, entry in sets.items()
    }

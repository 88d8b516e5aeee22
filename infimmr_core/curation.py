"""The curate stage: sources -> canonical samples -> filters and dedup -> captions -> difficulty band -> three pools.

Every row that enters is accounted for: it is kept, filtered (a named reason) or quarantined (a named reason, with
the row), and the report holds `rows_in == kept + sum(filtered) + sum(quarantined)`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from infimmr_core.config import GenerationConfig, ModelRef, Recipe
from infimmr_core.context import StageContext
from infimmr_core.data.images import decode_image
from infimmr_core.data.pool_io import write_pool
from infimmr_core.data.prompts import build_messages, caption_request_messages
from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined, load_source
from infimmr_core.inference import GenerationRequest, SamplingSpec, make_generator
from infimmr_core.models import resolve_model
from infimmr_core.rewards import ScoreItem, score_batch

POOLS = ("text", "image_caption", "image")


class Ledger:
    """Counts and records what happened to every row."""

    def __init__(self) -> None:
        self.rows_in = 0
        self.filtered: Counter[str] = Counter()
        self.quarantined: Counter[str] = Counter()
        self.quarantine_rows: list[dict[str, Any]] = []

    def filter(self, reason: str) -> None:
        self.filtered[reason] += 1

    def quarantine(self, q: Quarantined) -> None:
        self.quarantined[_reason_class(q.reason)] += 1
        self.quarantine_rows.append({"source": q.source, "position": q.position, "reason": q.reason, "row": q.row})


def _reason_class(reason: str) -> str:
    # "image file not found: a.png" -> "image file not found": counts group by kind, the record keeps the detail.
    return reason.split(":", 1)[0]


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def strip_boxed(answer: str) -> str:
    match = re.fullmatch(r"\s*\\boxed\{(.*)\}\s*", answer, flags=re.DOTALL)
    return match.group(1).strip() if match else answer.strip()


def infer_answer_type(answer: str, choices: list[str]) -> str:
    if choices and re.fullmatch(r"[A-Za-z]", answer.strip()):
        return "multiple_choice"
    if re.fullmatch(r"[-+]?\d[\d,]*(\.\d+)?%?", answer.strip()):
        return "numeric"
    return "expression"


def normalise(sample: Sample) -> Sample:
    answer = strip_boxed(sample.answer)
    answer_type = sample.answer_type
    if "answer_type" not in sample.model_fields_set:
        answer_type = infer_answer_type(answer, sample.choices)
    return sample.model_copy(update={"problem": sample.problem.strip(), "answer": answer, "answer_type": answer_type})


def filter_reason(sample: Sample, max_problem_chars: int) -> str | None:
    if not sample.answer:
        return "empty answer"
    if sample.answer_type == "unverifiable":
        return "unverifiable answer"
    if not sample.problem and not sample.images:
        return "empty problem"
    if len(sample.problem) > max_problem_chars:
        return "problem too long"
    return None


def dedup_key(sample: Sample) -> str:
    digest = hashlib.sha256(normalise_text(sample.problem).encode())
    for image in sample.images:
        digest.update(hashlib.sha256(image).digest())
    return digest.hexdigest()


def collect(recipe: Recipe, ledger: Ledger) -> list[Sample]:
    kept: list[Sample] = []
    seen: set[str] = set()
    for source in recipe.curation.sources:
        for item in load_source(source):
            ledger.rows_in += 1
            if isinstance(item, Quarantined):
                ledger.quarantine(item)
                continue
            sample = normalise(item)
            reason = filter_reason(sample, recipe.curation.max_problem_chars)
            if reason is None and (key := dedup_key(sample)) in seen:
                reason = "duplicate"
            if reason:
                ledger.filter(reason)
                continue
            seen.add(key)
            kept.append(sample)
    return kept


def _request(messages: list[dict], sample: Sample) -> GenerationRequest:
    return GenerationRequest(messages=messages, images=[decode_image(b) for b in sample.images])


def _generator(ctx: StageContext, model: ModelRef, gen: GenerationConfig):
    model_dir = resolve_model(model.name_or_path, model.revision, ctx.cache_dir / "models", seed=model.seed)
    return make_generator(gen.backend, model_dir, device=ctx.device, batch_size=gen.batch_size, max_pixels=gen.max_pixels)


def caption(ctx: StageContext, samples: list[Sample]) -> list[Sample]:
    cfg = ctx.recipe.curation.captioning
    targets = [s for s in samples if s.images]
    if not cfg.enabled or not targets:
        return samples
    generator = _generator(ctx, cfg.model or ctx.recipe.base_model, cfg.generation)
    gen = cfg.generation
    outputs = generator.generate(
        [_request(caption_request_messages(s, cfg.prompt), s) for s in targets],
        SamplingSpec(n=1, temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, seed=ctx.recipe.curation.seed),
    )
    captions = {s.id: texts[0].strip() for s, texts in zip(targets, outputs)}
    ctx.log(f"captioned {len(captions)} images")
    return [s.model_copy(update={"caption": captions[s.id]}) if s.id in captions else s for s in samples]


def measure_pass_rates(ctx: StageContext, samples: list[Sample]) -> list[Sample]:
    """k rollouts per sample by the starting policy, scored with the training reward."""
    recipe, cfg = ctx.recipe, ctx.recipe.curation.difficulty
    generator = _generator(ctx, recipe.base_model, cfg.generation)
    prompts = recipe.prompts
    requests = [
        _request(build_messages(s, "image" if s.images else "text", system_prompt=prompts.system_prompt,
                                caption_template=prompts.caption_template), s)
        for s in samples
    ]
    gen = cfg.generation
    outputs = generator.generate(
        requests,
        SamplingSpec(n=cfg.rollouts, temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, seed=recipe.curation.seed),
    )
    items = [
        ScoreItem(completion=text, gold=s.answer, answer_type=s.answer_type, choices=s.choices or None)
        for s, texts in zip(samples, outputs) for text in texts
    ]
    scores = score_batch(items, timeout=recipe.rewards.timeout_seconds, workers=recipe.rewards.workers,
                         mode=recipe.rewards.format_mode, answer_format=recipe.rewards.answer_format)
    rated = []
    for i, s in enumerate(samples):
        correct = sum(b.accuracy >= 1.0 for b in scores[i * cfg.rollouts:(i + 1) * cfg.rollouts])
        rated.append(s.model_copy(update={"pass_rate": correct / cfg.rollouts}))
    return rated


def split_pools(recipe: Recipe, samples: list[Sample]) -> dict[str, list[Sample]]:
    cfg = recipe.curation.pools
    text = [s for s in samples if not s.images]
    image = [s for s in samples if s.images]
    rng = random.Random(recipe.curation.seed)
    rng.shuffle(text)
    rng.shuffle(image)
    if cfg.overlap == "disjoint":
        half = len(image) // 2
        caption_pool, image_pool = image[:half], image[half:]
    else:
        caption_pool, image_pool = image, list(image)
    # Phase 2 needs a caption; images whose captioning produced nothing cannot feed it.
    caption_pool = [s for s in caption_pool if s.caption]
    return {
        "text": text[: cfg.max_text],
        "image_caption": caption_pool[: cfg.max_image_caption],
        "image": [s.model_copy(update={"caption": None}) for s in image_pool[: cfg.max_image]],
    }


def pass_rate_histogram(samples: list[Sample], bins: int = 10) -> list[int]:
    counts = [0] * bins
    for s in samples:
        if s.pass_rate is not None:
            counts[min(int(s.pass_rate * bins), bins - 1)] += 1
    return counts


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    ledger = Ledger()
    samples = collect(recipe, ledger)
    ctx.log(f"{ledger.rows_in} rows in, {len(samples)} after filters and dedup")
    samples = caption(ctx, samples)
    difficulty = recipe.curation.difficulty
    if difficulty.enabled and samples:
        samples = measure_pass_rates(ctx, samples)
        in_band = []
        for s in samples:
            if difficulty.keeps(s.pass_rate):
                in_band.append(s)
            else:
                ledger.filter("pass rate out of band")
        ctx.log(f"difficulty band kept {len(in_band)} of {len(samples)}")
        samples = in_band
    pools = split_pools(recipe, samples)
    for name, pool in pools.items():
        write_pool(pool, ctx.out_dir / "pools" / f"{name}.parquet")
    report = {
        "rows_in": ledger.rows_in,
        "kept": len(samples),
        "filtered": dict(sorted(ledger.filtered.items())),
        "quarantined": dict(sorted(ledger.quarantined.items())),
        "pools": {name: len(pool) for name, pool in pools.items()},
        "pass_rate_histogram": pass_rate_histogram(samples),
    }
    if report["rows_in"] != report["kept"] + sum(ledger.filtered.values()) + sum(ledger.quarantined.values()):
        raise RuntimeError(f"curation lost rows: {report}")  # never publish a pool that silently dropped data
    (ctx.out_dir / "report.json").write_text(json.dumps(report, indent=2))
    with (ctx.out_dir / "quarantine.jsonl").open("w") as fh:
        for row in ledger.quarantine_rows:
            fh.write(json.dumps(row, default=str) + "\n")
    ctx.log(f"pools: {report['pools']}; filtered {report['filtered']}; quarantined {report['quarantined']}")
    return {k: report[k] for k in ("rows_in", "kept", "filtered", "quarantined", "pools")}

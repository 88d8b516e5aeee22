"""Part 2 of curation, `curate-shard`: the expensive work on one shard of accepted samples. Image samples get a
caption from the captioner, and a caption that fails its checks sends the sample to quarantine; then the policy's
k rollouts per sample give each a pass rate (unless the recipe takes the pass rate from a dataset column).

Every shard is its own cached task: a failure redoes that shard only. Inside a shard, captions and rollouts are
kept in the part's work directory as they finish, so a shard that dies during its rollouts keeps its captions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from infimmr_core.config import GenerationConfig, ModelRef
from infimmr_core.context import StageContext
from infimmr_core.curation.captioning import caption_shards, check_caption, needs_caption
from infimmr_core.curation.difficulty import rollout_shards
from infimmr_core.curation.ledger import Ledger, position
from infimmr_core.curation.shards import results_of
from infimmr_core.data.adapters import json_safe
from infimmr_core.data.pool_io import read_pool, write_pool
from infimmr_core.data.sources import Quarantined
from infimmr_core.inference import Generator, TransformersGenerator, make_generator

SAMPLES_FILE = "samples.parquet"
Opener = Callable[[], Generator]
# Model directory -> the transformers generator that loaded it and the max_pixels of its processor.
Loaded = dict[str, tuple[TransformersGenerator, "int | None"]]


def opener(ctx: StageContext, model: ModelRef | None, gen: GenerationConfig, loaded: Loaded | None = None) -> Opener:
    """Load the model (None = the base model) only when a shard needs it (a resumed shard with everything done never
    does). Openers given the same `loaded` load a model's weights once: the captioner and the rollout policy are both
    the base model unless the recipe names others, and each shard process used to load it twice. Each step keeps its
    own batch size and image resolution. vLLM engines are not shared (one holds its share of the GPU until freed)."""

    def open_generator() -> Generator:
        # Here, not at the top: the curate merge imports this module for its file names, and models imports torch.
        from infimmr_core.base_model import model_or_base
        from infimmr_core.models import load_processor

        model_dir = model_or_base(ctx, model)
        if loaded is not None and gen.backend == "transformers" and (held := loaded.get(str(model_dir))):
            first, max_pixels = held
            same = max_pixels == gen.max_pixels
            processor = first.processor if same else load_processor(model_dir, max_pixels=gen.max_pixels)
            return TransformersGenerator.from_loaded(first.model, processor, device=first.device,
                                                     batch_size=gen.batch_size)
        generator = make_generator(gen.backend, model_dir, device=ctx.device, batch_size=gen.batch_size,
                                   max_pixels=gen.max_pixels)
        if loaded is not None and isinstance(generator, TransformersGenerator):
            loaded[str(model_dir)] = (generator, gen.max_pixels)
        return generator

    return open_generator


def caption(ctx: StageContext, ledger: Ledger, shard: Path, open_captioner: Opener | None = None) -> Path:
    """Caption the shard's image samples that have no caption of their own and quarantine those whose caption (their
    own or generated) fails a check; each records where its caption came from (`metadata.caption_source`: source or
    captioner). Returns the kept samples, captioned, as a Parquet file."""
    cfg, recipe = ctx.recipe.curation.captioning, ctx.recipe
    state = ctx.work_dir / "captions"
    open_captioner = open_captioner or opener(ctx, cfg.model, cfg.generation)
    caption_shards([shard], state, cfg, open_captioner, seed=recipe.curation.seed, log=ctx.log)
    captions = results_of(state, shard)
    kept = []
    for sample in read_pool(shard):
        if sample.images:
            origin = "captioner" if needs_caption(sample) else "source"
            text = captions[sample.id] if origin == "captioner" else sample.caption
            if reason := check_caption(text, sample, cfg):
                row = {**json_safe(sample.model_dump(exclude={"images"})), "caption": text}
                ledger.quarantine(Quarantined(sample.source, position(sample), reason, row), step="captioning")
                continue
            ledger.captions[origin] += 1
            sample = sample.model_copy(update={"caption": text, "metadata": {**sample.metadata, "caption_source": origin}})
        kept.append(sample)
    ledger.step("captioning", len(kept))
    captioned = ctx.work_dir / "captioned" / shard.name
    write_pool(kept, captioned)
    return captioned


def measure_pass_rates(ctx: StageContext, shard: Path, out: Path, open_policy: Opener | None = None) -> None:
    """k rollouts per sample of the policy, scored by the training reward; each sample's pass_rate is set."""
    cfg, recipe = ctx.recipe.curation.difficulty, ctx.recipe
    state = ctx.work_dir / "pass_rates"
    open_policy = open_policy or opener(ctx, cfg.policy, cfg.generation)
    rollout_shards([shard], state, cfg, open_policy, recipe.prompts, recipe.rewards, seed=recipe.curation.seed, log=ctx.log)
    rates = results_of(state, shard)
    write_pool([s.model_copy(update={"pass_rate": rates[s.id]}) for s in read_pool(shard)], out)


def enrich(
    ctx: StageContext, shard: Path, folder: Path, open_captioner: Opener | None = None, open_policy: Opener | None = None
) -> int:
    """One shard in, `folder`/samples.parquet (+ its ledger) out; returns the number of samples written."""
    cur = ctx.recipe.curation
    loaded: Loaded = {}  # one copy of each model for both steps
    open_captioner = open_captioner or opener(ctx, cur.captioning.model, cur.captioning.generation, loaded)
    open_policy = open_policy or opener(ctx, cur.difficulty.policy, cur.difficulty.generation, loaded)
    ledger = Ledger(folder)
    if cur.captioning.enabled:
        shard = caption(ctx, ledger, shard, open_captioner)
    out = folder / SAMPLES_FILE
    if cur.difficulty.rolls_out:
        measure_pass_rates(ctx, shard, out, open_policy)
    else:  # the band reads the dataset's own column when the shards are merged
        shutil.copyfile(shard, out)
    ledger.save()
    return pq.read_metadata(out).num_rows


def run(ctx: StageContext) -> dict[str, int]:
    kept = enrich(ctx, ctx.inputs["shard"], ctx.out_dir)
    ctx.log(f"{ctx.inputs['shard'].name}: {kept} samples")
    return {"samples": kept}

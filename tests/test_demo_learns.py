"""GRPO on the demo's phase-1 task makes the model better on held-out items, by more than noise (issue 11).

The same stage code as a pipeline run, at small sizes, in this process: the `base` stage warms a tiny model up on the
text task alone (no vision pre-warm), phase 1 trains it with GRPO through `infimmr_core.training` on a pool of the
demo's text problems, and the evaluate stage scores both checkpoints on 200 held-out items (other phrasings than any
trained) with the paired 95% interval of the change, exactly as the demo's curriculum table does. A broken reward,
prompt, chat template, hand-off or scorer leaves the lower end of that interval at or below zero, and fails here.

Measured on the 2-core development machine (shared), with the demo's KL anchor (beta 0.04): base 66.0% -> phase 1
85.5%, +19.5 points [+12.19, +26.81], in about 110 s; the run is deterministic for a given code version (same seeds,
one thread). Before the anchor (beta 0): +17.0 [+8.65, +25.35]; with the golds handed to the accuracy reward
misaligned by one prompt (a deliberately broken reward), 66.0% -> 10.0%, and the test fails. Fewer steps did not show
it (beta 0): 20 steps +3.5 [-4.9, +11.9], 35 steps +7.0 [-1.7, +15.7].
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from infimmr_core import training
from infimmr_core.context import StageContext
from infimmr_core.data import digit_sums
from infimmr_core.data.pool_io import write_pool
from infimmr_core.evaluation import stage as evaluation
from infimmr_core.layout import MODEL_DIR
from infimmr_core.models import load_model
from infimmr_core.recipes import load_recipe
from infimmr_core.warmup import stage as warmup
from infimmr_core.weights import weights_digest

SMALL = [
    "warmup.tasks=[{name: sum-text, input: text, source: {kind: synthetic_sum_text, count: 400, seed: 101}}]",
    "warmup.vision_steps=0",
    # Stopped at half right on its dev items: format learnt, room left above (held-out about 66%).
    "warmup.target_accuracy=0.5",
    "evaluation.sets=[{name: sum-text, kind: synthetic_sum_text, count: 200, seed: 7001, input: text}]",
    "evaluation.models=[base, phase1]",
    # The GRPO settings this test was measured with (the demo's phase 1 trains longer, at 3e-4: its start is a model
    # trained on three tasks, where 4e-4 lost ground on one seed); 50 steps keep the test under two minutes.
    "phases.1.learning_rate=4.0e-4",
    "phases.1.max_steps=50",
]


def context(stage: str, recipe, tmp: Path, inputs: dict[str, Path], digests: dict[str, str]) -> StageContext:
    out = tmp / stage
    out.mkdir()
    return StageContext(stage=stage, recipe=recipe, inputs=inputs, out_dir=out, work_dir=tmp / f"{stage}-work",
                        cache_dir=tmp / "cache", device="cpu", upstream_digests=digests, key=f"test-{stage}")


def test_grpo_phase_one_raises_held_out_accuracy_beyond_noise(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    torch.set_num_threads(1)  # as the recipe's runtime.torch_threads: reproducible, and fast on a shared 2-core box
    recipe = load_recipe("demo", SMALL)

    base = context("base", recipe, tmp_path, {}, {})
    warmed = warmup.run(base)
    assert warmed["reached_target"], warmed

    # The curate stage's artifact as phase 1 reads it: a pool of the demo's text problems (its own seed, disjoint
    # from the evaluation set's items by construction).
    curate = tmp_path / "curate"
    write_pool(digit_sums.text_problems(512, 201), curate / "pools" / "text.parquet")

    phase = context("phase1", recipe, tmp_path, {"base": base.out_dir, "curate": curate}, {})
    trained = training.run(phase)
    # The hand-off: phase 1 started from the base stage's weights as stored.
    assert trained["start_weights"] == weights_digest(load_model(base.out_dir / MODEL_DIR))
    # The phase's TensorBoard directory was its own: not left in the environment for later runs (and the processes
    # they start) to log into this run's record.
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ

    evaluate = context("evaluate", recipe, tmp_path, {"base": base.out_dir, "phase1": phase.out_dir},
                       {"base": "base-digest", "phase1": "phase1-digest"})
    evaluation.run(evaluate)
    table = json.loads((evaluate.out_dir / "curriculum.json").read_text())
    rows = {r["label"]: r for r in table["rows"] if r["scorer"] == "official"}
    before, after = rows["base"]["scores"]["sum-text"], rows["phase1"]["scores"]["sum-text"]
    change = rows["phase1 - base"]
    low, high = change["intervals"]["sum-text"]
    message = (f"held-out sum-text (n=200): base {before}% -> phase 1 {after}%, change "
               f"{change['scores']['sum-text']:+} points, 95% interval [{low:+}, {high:+}]")
    print(message)
    assert low > 0, message

"""One GRPO step of the demo recipe, split into its parts, and what saving and syncing a checkpoint adds to it.

The demo's phase 2 (image + caption: the step with the most work per completion) runs through the project's own phase
code (`infimmr_core.grpo_phase.train`) from the demo's tiny model, on the demo's image problems, at the recipe's batch
(16 prompts x 8 completions) and one torch thread. Its run record already times every step by part (generation, reward,
logprobs, forward_backward, optimizer, other: `infimmr_core.step_timing`); the rows give each part's share of the
step, the first step left out (it pays for warm-up). The checkpoint row runs the same steps with a checkpoint saved
and synced to the store every step and with none, alternately, and compares their whole training wall times (a
checkpoint is written between steps, outside any step's own time).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.perf.common import median, print_rows, ratio_row

BENCH = "grpo_step"
PARTS = ("generation", "reward", "logprobs", "forward_backward", "optimizer", "other")


def _phase(root: Path, recipe, model: Path, pool: Path, name: str) -> tuple[list[dict[str, Any]], float]:
    """Train `recipe`'s phase 2 from `model` in its own folder; its per-step timings (the run record's, where the
    wall-clock figures are kept apart from the artifact) and the whole training's wall seconds."""
    from infimmr_core.grpo_phase import PhaseRun, train
    from infimmr_core.layout import TIMINGS_FILE

    out = root / name
    run = PhaseRun(stage="phase2", key=name, number=2, recipe=recipe, pool_path=pool, init_dir=model, out_dir=out,
                   trainer_dir=out / "trainer", device="cpu", summary_path=out / "summary.json",
                   record_dir=out / "record")
    started = time.perf_counter()
    train(run)
    wall = time.perf_counter() - started
    return [json.loads(line) for line in (out / "record" / TIMINGS_FILE).read_text().splitlines() if line.strip()], wall


def _per_step(history: list[dict[str, Any]], key: str) -> list[float]:
    return [h[key] for h in history if key in h and h.get("step", 0) > 1]


def run(quick: bool = False) -> list[dict[str, Any]]:
    import torch

    from infimmr_core.base_model import model_dir
    from infimmr_core.data import digit_sums
    from infimmr_core.data.pool_io import write_pool
    from infimmr_core.recipes import load_recipe

    torch.set_num_threads(1)  # the demo recipe's runtime.torch_threads
    steps = 3 if quick else 5
    root = Path(tempfile.mkdtemp(prefix="infimmr-bench-grpo-"))
    try:
        settings = [f"store.uri=file://{root / 'store'}", f"phases.2.max_steps={steps}", "phases.2.logging_steps=1",
                    "phases.2.report_to=[]"]
        plain = load_recipe("demo", [*settings, f"phases.2.save_steps={steps + 1}"])
        saving = load_recipe("demo", [*settings, "phases.2.save_steps=1"])
        model = model_dir(plain.base_model, root / "cache")
        pool = root / "image_caption.parquet"
        write_pool(digit_sums.image_problems(256, 202), pool)

        histories: dict[str, list[list[dict[str, Any]]]] = {"plain": [], "saving": []}
        walls: dict[str, list[float]] = {"plain": [], "saving": []}
        for repeat in range(1 if quick else 2):  # alternately, so both see the same load
            for name, recipe in (("plain", plain), ("saving", saving)):
                history, wall = _phase(root, recipe, model, pool, f"{name}-{repeat}")
                histories[name].append(history)
                walls[name].append(wall)

        plain_steps = histories["plain"]
        step = median([v for history in plain_steps for v in _per_step(history, "seconds/step")])
        cfg = plain.phases[2]
        shape = (f"demo phase 2 (image + caption), {cfg.per_device_train_batch_size} completions "
                 f"({cfg.num_generations} per prompt) x {cfg.max_completion_length} tokens, 1 torch thread, steps 2-{steps}")
        rows = [
            ratio_row(BENCH, f"share of a step: {part}", part, "whole step",
                      median([v for history in plain_steps for v in _per_step(history, f"seconds/{part}")]), step, "s",
                      note=shape)
            for part in PARTS
        ]
        # A checkpoint is written between steps (after the step's log), so it shows in the whole training's wall.
        rows.append(ratio_row(
            BENCH, "training wall with a checkpoint saved and synced every step / without", "checkpoint every step",
            "no checkpoint", median(walls["saving"]), median(walls["plain"]), "s",
            note=f"{steps} steps; weights, optimizer and RNG state saved by Trainer, then uploaded to the local store "
                 "by CheckpointSync; the extra seconds over the steps are what a checkpoint costs",
        ))
        return rows
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import sys

    print_rows(run(quick="--quick" in sys.argv))

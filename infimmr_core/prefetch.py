"""Fetching the base model while a run starts up.

A cold run's first stage that reads `recipe.base_model` (the warm-up, or else curation's captions and rollouts) would
download it from the Hub (or build the offline tiny one) inside its own time, after Prefect's temporary server has
started: 15-25 s on 2 cores in which nothing else happens. Started first, in a process of its own, the fetch overlaps
that start-up; the stage then finds the model in the download cache, or waits for the fetch under the cache's lock
(a Hub download's per-file locks, the tiny builder's lock) and never fetches it twice. Nothing about the result
changes: the same directory, resolved the same way, only earlier.

    python -m infimmr_core.prefetch MODEL_REF_JSON CACHE_DIR
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from infimmr_core.config import ModelRef, Recipe
from infimmr_core.layout import BASE_STAGE
from infimmr_core.stages import pipeline_stages


def last_reader(recipe: Recipe) -> str:
    """The last stage that reads `recipe.base_model` itself: the warm-up when the recipe has one (every later stage
    reads the warm-up's model), else evaluation (it scores the base model; curation and phase 1 come before it)."""
    return BASE_STAGE if recipe.warmup is not None else "evaluate"


def needs_fetch(recipe: Recipe, first_to_run: str) -> bool:
    """Will this run read the base model: does it compute a stage at or before the last one that reads it?"""
    stages = pipeline_stages(recipe)
    return stages.index(first_to_run) <= stages.index(last_reader(recipe))


def start(ref: ModelRef, cache_dir: Path) -> subprocess.Popen:
    """Fetch `ref` into `cache_dir` in a background process (stopped with the run: see `stop`)."""
    from infimmr_core.runner import _die_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "infimmr_core.prefetch", ref.model_dump_json(), str(cache_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
        start_new_session=True, preexec_fn=_die_with_parent,
    )


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> str | None:
    """End a fetch the run no longer waits for (SIGTERM: it cleans up its partial files) and say how it ended: None when
    it finished, else a line for the log. A failed fetch is not the run's failure: the stage that needs the model
    fetches it itself and reports the real error."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return "the base model's background fetch was stopped before it finished"
    if proc.returncode:
        detail = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-1:]
        return f"the base model's background fetch failed (exit {proc.returncode}): {' '.join(detail)}"
    return None


def main(argv: list[str]) -> int:
    # SIGTERM from `stop` ends the process through SystemExit, so the builders' cleanup (`finally`) runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from infimmr_core import threads
    from infimmr_core.base_model import model_dir

    ref, cache_dir = ModelRef.model_validate(json.loads(argv[0])), Path(argv[1])
    # One core: the run's own start-up (Prefect's server) runs beside it.
    threads.apply(1)
    model_dir(ref, cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

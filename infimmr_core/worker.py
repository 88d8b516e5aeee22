"""Child-process entry point: `python -m infimmr_core.worker SPEC.json` runs one stage and stores its artifact."""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from infimmr_core.config import Recipe
from infimmr_core.context import StageContext
from infimmr_core.inference import resolve_device
from infimmr_core import threads
from infimmr_core.stages import SHARD, SPECS
from infimmr_core.store import store_from_config


@contextmanager
def work_dir_of(cache_dir: Path, stage: str, key: str) -> Iterator[Path]:
    """This attempt's scratch directory, never shared with another process.

    The key's own directory (work/<stage>/<key>) holds resumable state (captions, evaluation shards, trainer
    checkpoints), so a rerun after a crash finds it: one process at a time may use it, the one holding an exclusive
    lock on work/<stage>/<key>.lock (the kernel drops it when that process dies). Runs that share a store wait for each
    other before they get here (the key's lease), but two stores can share a cache: a process that finds the lock taken
    works in a private work/<stage>/<key>.run-<id> instead and removes it when it ends, whatever the outcome. Nobody
    deletes a directory it does not hold."""
    root = cache_dir / "work" / stage
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{key}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            private = root / f"{key}.run-{uuid.uuid4().hex[:12]}"
            try:
                yield private
            finally:
                shutil.rmtree(private, ignore_errors=True)
            return
        yield root / key


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    stage, key = spec["stage"], spec["key"]
    recipe = Recipe.model_validate(spec["recipe"])
    # Every stage process, configured or not: torch's default is the machine's cores, not this process's share.
    threads.apply(threads.intra_op_threads(recipe.runtime.torch_threads,
                                           processes=recipe.runtime.parallel_shards if stage == SHARD else 1))
    store = store_from_config(recipe.store)
    inputs = {
        name: store.get_file(ref["stage"], ref["key"], ref["path"]) if ref.get("path") else store.get_dir(ref["stage"], ref["key"])
        for name, ref in spec["upstream"].items()
    }
    with work_dir_of(store.cache_dir, stage, key) as work_dir:
        _run(spec, stage, key, recipe, store, inputs, work_dir)


def _run(spec: dict, stage: str, key: str, recipe: Recipe, store, inputs: dict[str, Path], work_dir: Path) -> None:
    out_dir = work_dir / "artifact"
    if out_dir.exists():  # leftovers of a crashed attempt are not part of this one's output
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    ctx = StageContext(
        stage=stage, recipe=recipe, inputs=inputs, out_dir=out_dir, work_dir=work_dir,
        cache_dir=store.cache_dir, device=resolve_device(recipe.runtime.device),
        upstream_digests={name: ref["digest"] for name, ref in spec["upstream"].items()},
        store=store, key=key,
    )
    started = time.perf_counter()
    ctx.log(f"running on {ctx.device}; key {key}")
    module = importlib.import_module(SPECS[stage].module)
    metrics = module.run(ctx) or {}
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    manifest = store.put_dir(
        stage, key, out_dir, key_inputs=spec["key_inputs"], metrics=metrics, replace=spec.get("replace", False),
        producer={
            "host": platform.node(), "python": platform.python_version(), "pid": os.getpid(),
            "created_at": datetime.now(timezone.utc).isoformat(),
        },
    )
    ctx.log(f"stored {store.artifact_uri(stage, key)} ({len(manifest.files)} files)")
    if hasattr(module, "after_commit"):  # e.g. drop resumable state (checkpoints) that the artifact now supersedes
        module.after_commit(ctx)
    shutil.rmtree(work_dir, ignore_errors=True)
    Path(spec["result_path"]).write_text(manifest.model_dump_json())


def report_error(spec_path: str, error: Exception) -> None:
    """The exception that ends this stage, for the parent's one-line reason (its output may be long, or cut)."""
    try:
        error_path = json.loads(Path(spec_path).read_text()).get("error_path")
        if error_path:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            Path(error_path).write_text(json.dumps({"type": type(error).__name__, "message": " | ".join(lines[:3])[:500]}))
    except Exception:  # noqa: BLE001 - the traceback on stderr still says what happened
        pass


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as error:
        report_error(sys.argv[1], error)
        raise

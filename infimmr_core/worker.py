"""Child-process entry point: `python -m infimmr_core.worker SPEC.json` runs one stage and stores its artifact;
`python -m infimmr_core.worker --serve MARKER` runs one after another the stages whose spec paths it reads on stdin
(curation's parts, see infimmr_core.runner)."""

from __future__ import annotations

import atexit
import fcntl
import gc
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
from infimmr_core.download_cache import newest_mtime
from infimmr_core.inference import resolve_device
from infimmr_core import threads
from infimmr_core.stages import COLLECT, SHARD, SPECS
from infimmr_core.store import store_from_config

# Stages that compute on no device: they run on the CPU whatever `runtime.device` says, so this process never imports
# torch to resolve `auto` for them. Importing torch costs a stage process 2-4 s on a shared 2-core box, and tearing it
# down ~1 s more: several times these stages' own work (issue 15). tests/test_light_imports.py holds their modules,
# and this one, to importing no ML library.
NO_DEVICE = frozenset({COLLECT, "curate", "publish"})


def uses_device(stage: str, recipe: Recipe) -> bool:
    """Does this run of `stage` compute with torch? Not the NO_DEVICE stages, nor a shard that neither captions nor
    rolls out (it copies its samples; the band reads the dataset's own pass-rate column)."""
    if stage == SHARD:
        return recipe.curation.captioning.enabled or recipe.curation.difficulty.rolls_out
    return stage not in NO_DEVICE


@contextmanager
def work_dir_of(cache_dir: Path, stage: str, key: str, *, keep_failed_days: float = 0) -> Iterator[Path]:
    """This attempt's scratch directory, never shared with another process, and nothing of it left behind.

    The key's own directory (work/<stage>/<key>) holds resumable state (captions, evaluation shards, trainer
    checkpoints), so a rerun after a crash finds it: one process at a time may use it, the one holding an exclusive
    lock on work/<stage>/<key>.lock (the kernel drops it when that process dies). Runs that share a store wait for each
    other before they get here (the key's lease), but two stores can share a cache: a process that finds the lock taken
    works in a private work/<stage>/<key>.run-<id>, locked by work/<stage>/<key>.run-<id>.lock for as long as it
    lives, and removes both when it ends, whatever the outcome. The key's lock file goes when its run ends too (the
    directory stays only as a failed key's resumable state; a success removes it). A run killed before it could
    clean up leaves a private directory whose lock nobody holds: the next run on this cache removes it, and a failed
    key's directory that nothing touched for `keep_failed_days` (0: kept until its key runs again). Nobody deletes a
    directory whose lock is held, or one it did not lock."""
    root = cache_dir / "work" / stage
    root.mkdir(parents=True, exist_ok=True)
    remove_dead_runs(cache_dir / "work")
    if keep_failed_days > 0:
        remove_stale_keys(cache_dir / "work", max_age_seconds=keep_failed_days * 86400)
    key_lock = root / f"{key}.lock"
    fd = _try_lock(key_lock)
    if fd is not None:
        try:
            yield root / key
        finally:
            _remove_lock(key_lock, fd)
        return
    private = root / f"{key}.run-{uuid.uuid4().hex[:12]}"
    private_lock = private.with_name(private.name + ".lock")
    fd = _try_lock(private_lock, wait=True)  # a fresh name: only a cleaner mistaking it for dead can hold it, briefly
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)
        _remove_lock(private_lock, fd)


def remove_dead_runs(work: Path) -> list[Path]:
    """Remove what runs that died left under `work` (<cache>/work): private directories whose lock file nobody holds,
    and lock files nobody holds. Returns what it removed. A held lock means a live run: never touched. A key's own
    directory is a failed key's resumable state and stays; a private directory without a lock file (made by an older
    version, which locked none) cannot be proved abandoned and stays too."""
    removed = []
    for lock in sorted(work.glob("*/*.lock")):
        fd = _try_lock(lock, create=False)
        if fd is None:
            continue  # a live run holds it, or it is gone already
        private = lock.with_suffix("")
        try:
            if ".run-" in private.name:
                shutil.rmtree(private, ignore_errors=True)
                removed.append(private)
        finally:
            _remove_lock(lock, fd)
        removed.append(lock)
    return removed


def remove_stale_keys(work: Path, *, max_age_seconds: float, now: float | None = None) -> list[Path]:
    """Remove failed keys' directories under `work` (their resumable state) that nothing has written for
    `max_age_seconds`: a key nobody reruns would keep its scratch forever. Each is removed holding its key's lock, so a
    run of that key starting meanwhile works in a private directory instead; one whose lock is held is in use."""
    now = time.time() if now is None else now
    removed = []
    for directory in sorted(p for p in work.glob("*/*") if p.is_dir() and ".run-" not in p.name):
        if now - newest_mtime(directory) < max_age_seconds:
            continue
        lock = directory.with_name(directory.name + ".lock")
        fd = _try_lock(lock)
        if fd is None:
            continue  # a live run of that key
        try:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
        finally:
            _remove_lock(lock, fd)
    return removed


def _try_lock(path: Path, *, wait: bool = False, create: bool = True) -> int | None:
    """An exclusive lock on the file at `path` (an open descriptor), or None when another process holds it (or, with
    create=False, when there is no such file). The file a holder has locked is the one at `path` still: a lock file is
    removed by its holder while held (`_remove_lock`), and a process that locked it in the meantime locked a file no
    longer there, so it tries again with the new one."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.stat(path), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not create:
            return None


def _remove_lock(path: Path, fd: int) -> None:
    """Remove a lock file while still holding it, then release it (see _try_lock)."""
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    stage, key = spec["stage"], spec["key"]
    recipe = Recipe.model_validate(spec["recipe"])
    if uses_device(stage, recipe):
        # Loaded now, so that its threads are set below rather than read from OMP_NUM_THREADS when the stage loads it
        # (torch caps that variable at the machine's cores; a configured torch_threads is not capped).
        import torch  # noqa: F401
    # Every stage process, configured or not: torch's default is the machine's cores, not this process's share.
    threads.apply(threads.intra_op_threads(recipe.runtime.torch_threads,
                                           processes=recipe.runtime.parallel_shards if stage == SHARD else 1))
    store = store_from_config(recipe.store)
    inputs = {
        name: store.get_file(ref["stage"], ref["key"], ref["path"]) if ref.get("path") else store.get_dir(ref["stage"], ref["key"])
        for name, ref in spec["upstream"].items()
    }
    with work_dir_of(store.cache_dir, stage, key, keep_failed_days=recipe.store.keep_failed_work_days) as work_dir:
        _run(spec, stage, key, recipe, store, inputs, work_dir)


def _run(spec: dict, stage: str, key: str, recipe: Recipe, store, inputs: dict[str, Path], work_dir: Path) -> None:
    out_dir = work_dir / "artifact"
    if out_dir.exists():  # leftovers of a crashed attempt are not part of this one's output
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    ctx = StageContext(
        stage=stage, recipe=recipe, inputs=inputs, out_dir=out_dir, work_dir=work_dir,
        cache_dir=store.cache_dir, device=resolve_device(recipe.runtime.device) if uses_device(stage, recipe) else "cpu",
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


def exit_now(code: int = 0) -> None:
    """End this process without the interpreter's teardown, once its work is stored: with torch and a model loaded,
    freeing every module and object one by one took a stage process 1-3 s on a shared 2-core box (issue 15), and nothing
    is left to save. The atexit handlers still run (multiprocessing's children and temporary directories, logging)."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve(marker: str, once: bool = False) -> None:
    """Run parts one after another in this process, a warm worker of `infimmr_core.runner`: each line on stdin is a
    spec's path; each part's output ends with a line `<marker> next` (send another) or `<marker> last` (this process
    ends now). A part that fails ends the process, as it would a process of its own; so does one that used a GPU or a
    vLLM engine, whose memory only the end of the process surely gives back. Stdin closed: the process ends.

    `once`: a standby for a stage of its own (`runner._Standby`): torch and the model libraries are imported while it
    waits (`preload`), and it runs one part, as a fresh process would."""
    if once:
        preload()
    while spec_path := sys.stdin.readline().strip():
        try:
            main(spec_path)
        except Exception as error:
            report_error(spec_path, error)
            raise
        last = once or _holds_device_memory()
        print(f"{marker} {'last' if last else 'next'}", flush=True)
        if last:
            return
        gc.collect()  # the part's model and data, before the next part loads its own


# What a model stage imports before its work begins, beyond torch: transformers' Qwen2.5-VL classes (every model
# stage; about 3-5 s on 2 cores) and TRL's trainer (the phases; about 1.5 s more).
PRELOADED = (
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl", "transformers.models.qwen2_5_vl.processing_qwen2_5_vl",
    "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl", "trl.trainer.grpo_trainer",
)


def preload() -> None:
    """Import torch and `PRELOADED` now, while the previous stage still runs. A module that fails to import is left
    to the stage that needs it, to fail there with its own error."""
    import torch  # noqa: F401

    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a preload must never end the standby
            pass


def _holds_device_memory() -> bool:
    torch = sys.modules.get("torch")
    return "vllm" in sys.modules or (torch is not None and torch.cuda.is_initialized())


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2], once="--once" in sys.argv[3:])
    else:
        try:
            main(sys.argv[1])
        except Exception as error:
            report_error(sys.argv[1], error)
            raise
    exit_now()

"""Phase checkpoints in the object store: each one its own artifact, synced in the background, found again on restart.

A checkpoint of the phase stage `phaseN` at key K and optimiser step S is the artifact `phaseN-checkpoints/K-S`
(S zero-padded), committed manifest last, so "the newest complete checkpoint" is simply the highest S with a
manifest. The store is the only state a restarted phase needs: a fresh machine resumes from it.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from pathlib import Path

from infimmr_core.store import ArtifactCorrupt, ArtifactMissing, ArtifactStore

STEP_DIGITS = 8


def checkpoint_stage(stage: str) -> str:
    return f"{stage}-checkpoints"


def checkpoint_key(key: str, step: int) -> str:
    return f"{key}-{step:0{STEP_DIGITS}d}"


def stored_steps(store: ArtifactStore, stage: str, key: str) -> list[int]:
    """Steps of the committed checkpoints of (stage, key), ascending."""
    prefix = f"{key}-"
    return sorted(
        int(k[len(prefix):]) for k in store.list_keys(checkpoint_stage(stage))
        if k.startswith(prefix) and k[len(prefix):].isdigit()
    )


def restore_latest(store: ArtifactStore, stage: str, key: str, dest_parent: Path) -> Path | None:
    """Copy the newest complete checkpoint into `dest_parent/checkpoint-STEP` (Trainer's layout) and return it.

    A copy, never the store's own directory: the trainer rotates (deletes) old checkpoints in its output directory.
    A damaged checkpoint (its manifest or a file) is passed over for the one before it, never a permanent failure.
    """
    for step in reversed(stored_steps(store, stage, key)):
        try:
            src = store.get_dir(checkpoint_stage(stage), checkpoint_key(key, step))
        except (ArtifactMissing, ArtifactCorrupt) as err:
            print(f"checkpoint {step} of {stage} is damaged, trying the one before it: {err}", flush=True)
            continue
        return _copy_checkpoint(src, dest_parent, step)
    return None


def _copy_checkpoint(src: Path, dest_parent: Path, step: int) -> Path:
    dest = dest_parent / f"checkpoint-{step}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("MANIFEST.json"))
    return dest


def prune(store: ArtifactStore, stage: str, key: str, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints of (stage, key); keep=0 deletes them all."""
    steps = stored_steps(store, stage, key)
    for step in steps[: max(0, len(steps) - keep)]:
        store.delete(checkpoint_stage(stage), checkpoint_key(key, step))


def _snapshot(src: Path, dest: Path) -> None:
    # Hard links: instant, no extra disk, and immune to the trainer deleting `src` while the upload runs
    # (the trainer writes every checkpoint into a new directory and never rewrites a file in place).
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:  # another filesystem
            shutil.copy2(s, d)

    shutil.copytree(src, dest, copy_function=link)


class CheckpointSync:
    """Uploads checkpoints from a background thread, in order, pruning the store to the newest `keep` after each.

    `submit` only snapshots the directory (hard links) and returns: training never waits for the network.
    `close` waits for the queue and re-raises the first upload error, so a phase never ends believing
    its checkpoints are safe when they are not.
    """

    def __init__(self, store: ArtifactStore, stage: str, key: str, staging_dir: Path, keep: int):
        self.store, self.stage, self.key, self.keep = store, stage, key, keep
        self.staging_dir = staging_dir
        self.synced: list[int] = []
        self._queue: queue.Queue[tuple[int, Path] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="checkpoint-sync", daemon=True)
        self._thread.start()

    def submit(self, step: int, checkpoint_dir: Path) -> None:
        snap = self.staging_dir / f"checkpoint-{step}"
        if snap.exists():
            shutil.rmtree(snap)
        snap.parent.mkdir(parents=True, exist_ok=True)
        _snapshot(checkpoint_dir, snap)
        self._queue.put((step, snap))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            step, snap = item
            try:
                if self._error is None:
                    self.store.put_dir(
                        checkpoint_stage(self.stage), checkpoint_key(self.key, step), snap,
                        key_inputs={"stage": self.stage, "key": self.key, "step": step}, metrics={"step": step},
                    )
                    self.synced.append(step)
                    prune(self.store, self.stage, self.key, self.keep)
            except BaseException as exc:  # noqa: BLE001 - reported by close()
                self._error = exc
            finally:
                shutil.rmtree(snap, ignore_errors=True)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"checkpoint sync to {self.store.uri} failed") from self._error

"""What a stage's `run(ctx)` receives: its recipe, its inputs as local directories, and where to write."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from infimmr_core.config import Recipe
from infimmr_core.store import ArtifactStore


@dataclass
class StageContext:
    stage: str
    recipe: Recipe
    inputs: dict[str, Path]  # upstream name -> local directory holding its verified artifact (or, for an upstream
    # that is one file of an artifact, that verified file)
    out_dir: Path  # everything written here becomes the artifact
    work_dir: Path  # scratch that survives a crash of this stage (same key -> same directory), for resuming
    cache_dir: Path  # shared download/model cache
    device: str  # resolved: "cpu" or "cuda"
    upstream_digests: dict[str, str]  # upstream stage name -> content digest of its artifact
    store: ArtifactStore | None = None  # where the artifact goes; stages may keep resumable state there (checkpoints)
    key: str = ""  # this stage's key: names that state, so a restart of the same key finds it

    def log(self, message: str) -> None:
        print(f"[{self.stage}] {message}", file=sys.stderr, flush=True)

"""Running one stage in a child process.

Heavy work (torch, CUDA, generation, training) never runs in the orchestrator: a crash, an OOM kill or a hang stays
in the child, which has its own timeout and dies with its parent. The child writes the artifact to the store itself,
so the parent only ever sees a manifest.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from infimmr_core.config import Recipe
from infimmr_core.stages import ArtifactRef, StagePlan
from infimmr_core.store import Manifest


class StageFailed(RuntimeError):
    pass


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL when the orchestrator dies, so a killed run leaves no orphan that could still
    # publish a stage the user believes was interrupted.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_stage_process(
    plan: StagePlan,
    recipe: Recipe,
    upstream: dict[str, ArtifactRef],
    on_line: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Manifest:
    stage = plan.stage
    with tempfile.TemporaryDirectory(prefix=f"infimmr-{stage}-") as tmp:
        spec_path, result_path, error_path = Path(tmp, "spec.json"), Path(tmp, "result.json"), Path(tmp, "error.json")
        spec_path.write_text(json.dumps({
            "stage": stage,
            "key": plan.key,
            "key_inputs": plan.key_inputs,
            "replace": plan.replace,
            "recipe": recipe.model_dump(mode="json", by_alias=True),
            "upstream": {name: ref.model_dump(mode="json") for name, ref in upstream.items()},
            "result_path": str(result_path),
            "error_path": str(error_path),
        }))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "infimmr_core.worker", str(spec_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        tail: deque[str] = deque(maxlen=30)
        timed_out = threading.Event()
        timer = threading.Timer(recipe.runtime.stage_timeout_seconds, lambda: (timed_out.set(), _kill_group(proc)))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                on_line(line)
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                _kill_group(proc)
        if rc != 0 or not result_path.exists():
            reason = failure_reason(rc, timed_out.is_set(), recipe.runtime.stage_timeout_seconds, _read_error(error_path))
            # The reason alone on the first line: a list of failures (curation shards) keeps only that line.
            raise StageFailed(f"stage {stage} {reason}\nlast output:\n" + "\n".join(tail))
        return Manifest.model_validate_json(result_path.read_text())


def _read_error(path: Path) -> dict | None:
    """The exception the worker reported (`worker.report_error`); None when it wrote none (killed) or none readable."""
    try:
        error = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return error if isinstance(error, dict) and isinstance(error.get("type"), str) else None


def failure_reason(rc: int, timed_out: bool, timeout: int, error: dict | None) -> str:
    """Why a stage process failed, in one line: callers that list many failures (curation shards) keep only that."""
    if timed_out:
        return f"timed out after {timeout} s"
    code = f"exited with code {rc}"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        # SIGKILL from nobody in this process tree is most often the kernel's out-of-memory killer.
        code += f" ({name}{', e.g. out of memory' if -rc == signal.SIGKILL else ''})"
    if error:
        message = f": {error['message']}" if error.get("message") else ""
        return f"failed with {error['type']}{message} ({code})"
    return code if rc != 0 else "exited without storing its artifact"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

"""Running one stage in a child process.

Heavy work (torch, CUDA, generation, training) never runs in the orchestrator: a crash, an OOM kill or a hang stays
in the child, which has its own timeout and dies with its parent. The child writes the artifact to the store itself,
so the parent only ever sees a manifest.

Curation's parts (collect, every shard, the merge) are small, many and back to back: they run one after another in a
warm worker process (`python -m infimmr_core.worker --serve`) instead of one fresh process each. Each part keeps its
own spec, timeout, key and artifact, committed when it ends, so a crash still loses only the part that was running.
A fresh process cost a smoke shard ~3 s of start-up (the interpreter, torch's import and teardown) and ~3 s of first
use (the model code's imports) for under a second of work (issue 15).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from infimmr_core.config import Recipe
from infimmr_core.stages import COLLECT, SHARD, ArtifactRef, StagePlan
from infimmr_core.store import Manifest

# The stages whose runs share warm worker processes (see the module docstring).
WARM_STAGES = frozenset({COLLECT, SHARD, "curate"})
# A warm worker nobody used for this long ends: the next part starts a fresh one. Curation's parts follow each other
# within a fraction of a second; a long-lived orchestrator (a served deployment) holds no idle process for long.
WARM_IDLE_SECONDS = 30.0


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
    *,
    warm: bool | None = None,
) -> Manifest:
    """Run the planned stage in a child process and return the manifest it stored. `warm`: run it in a warm worker
    process that runs other parts before and after it (default: for WARM_STAGES) or in a fresh process of its own."""
    stage = plan.stage
    warm = stage in WARM_STAGES if warm is None else warm
    timeout = recipe.runtime.stage_timeout_seconds
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
        tail: deque[str] = deque(maxlen=30)

        def read(line: str) -> None:
            tail.append(line)
            on_line(line)

        rc, timed_out = (_WARM.run if warm else _STANDBY.run)(spec_path, timeout, read)
        if rc != 0 or not result_path.exists():
            reason = failure_reason(rc, timed_out, timeout, _read_error(error_path))
            # The reason alone on the first line: a list of failures (curation shards) keeps only that line.
            raise StageFailed(f"stage {stage} {reason}\nlast output:\n" + "\n".join(tail))
        return Manifest.model_validate_json(result_path.read_text())


def _start_worker(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "infimmr_core.worker", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env,
        start_new_session=True, preexec_fn=_die_with_parent, **kwargs,
    )


class _Deadline:
    """Kills a worker's process group when the part it runs is not done within `seconds`. After `finish()` it never
    fires, so a warm worker that finished in time is never killed by a late timer while it runs the next part."""

    def __init__(self, proc: subprocess.Popen, seconds: float):
        self._proc, self._lock, self._done, self.fired = proc, threading.Lock(), False, False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._done:
                self.fired = True
                _kill_group(self._proc)

    def finish(self) -> bool:
        """Stop the clock; whether it had fired."""
        with self._lock:
            self._done = True
        self._timer.cancel()
        return self.fired


def _run_fresh(spec_path: Path, timeout: float, read: Callable[[str], None]) -> tuple[int, bool]:
    """The part in a process of its own: its exit code and whether it timed out."""
    proc = _start_worker([str(spec_path)])
    deadline = _Deadline(proc, timeout)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            read(line.rstrip("\n"))
        rc = proc.wait()
    finally:
        timed_out = deadline.finish()
        if proc.poll() is None:
            _kill_group(proc)
    return rc, timed_out


class _Spawner:
    """Starts warm workers from one long-lived daemon thread. PR_SET_PDEATHSIG fires when the *thread* that started a
    child ends, and a warm worker outlives the task thread that first needed it; a daemon thread lives as long as the
    orchestrator's interpreter (past its atexit handlers, which end idle workers in order)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, args: list[str], **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="infimmr-warm-spawner", daemon=True)
                self._thread.start()
        started: Future = Future()
        self._requests.put((args, kwargs, started))
        return started.result()

    def _serve(self) -> None:
        while True:
            args, kwargs, started = self._requests.get()
            try:
                started.set_result(_start_worker(args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                started.set_exception(error)


class _WarmWorker:
    """One `python -m infimmr_core.worker --serve MARKER` process: it reads a spec path per line on stdin, runs that
    part, and ends the part's output with a line `MARKER next` (it takes another) or `MARKER last` (it ends)."""

    def __init__(self, spawner: _Spawner, *options: str):
        self.marker = f"infimmr-part-done-{uuid.uuid4().hex}"
        self.proc = spawner.start(["--serve", self.marker, *options], stdin=subprocess.PIPE)
        self.idle_since = 0.0

    def send(self, spec_path: Path) -> bool:
        """Hand it a part; False when it has ended (while idle) and cannot take one."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{spec_path}\n")
            self.proc.stdin.flush()
            return True
        except OSError:
            return False

    def run(self, timeout: float, read: Callable[[str], None]) -> tuple[int, bool, bool]:
        """Follow the part `send` handed it: its exit code (0: it ran to its end), whether it timed out, and whether this process takes another."""
        assert self.proc.stdout is not None
        deadline = _Deadline(self.proc, timeout)
        outcome = None
        try:
            while line := self.proc.stdout.readline():
                line = line.rstrip("\n")
                if line.startswith(self.marker):
                    outcome = line[len(self.marker):].strip()
                    break
                read(line)
        finally:
            timed_out = deadline.finish()
            if outcome is None and self.proc.poll() is None:  # interrupted, or cut off by the deadline
                _kill_group(self.proc)
        if outcome is not None:
            return 0, False, outcome == "next" and not timed_out
        return self.proc.wait(), timed_out, False

    def close(self, wait: float = 30.0) -> None:
        """End it: stdin closed, it exits when its current part (none, when idle) is done; killed after `wait`."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)  # still running, so its group is still ours
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class _WarmPool:
    """Idle warm workers, shared by the threads of this process (Prefect runs parallel shards in task threads). A part
    takes an idle worker or starts one, and gives it back when it ran to its end; one that failed, timed out or said
    `last` is not reused. Idle workers end after WARM_IDLE_SECONDS, and when this interpreter exits."""

    def __init__(self) -> None:
        self._idle: list[_WarmWorker] = []
        self._lock = threading.Lock()
        self._reaper: threading.Timer | None = None
        self._spawner = _Spawner()

    def run(self, spec_path: Path, timeout: float, read: Callable[[str], None]) -> tuple[int, bool]:
        worker = self._take()
        if not worker.send(spec_path):  # it ended while idle: nothing of this part ran yet
            _close_later(worker)
            worker = _WarmWorker(self._spawner)
            worker.send(spec_path)
        try:
            rc, timed_out, again = worker.run(timeout, read)
        except BaseException:
            if worker.proc.poll() is None:
                _kill_group(worker.proc)
            _close_later(worker)
            raise
        if again:
            self._give_back(worker)
        else:
            _close_later(worker)
        return rc, timed_out

    def _take(self) -> _WarmWorker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                _close_later(worker)
        return _WarmWorker(self._spawner)

    def _give_back(self, worker: _WarmWorker) -> None:
        with self._lock:
            worker.idle_since = time.monotonic()
            self._idle.append(worker)
            self._schedule(WARM_IDLE_SECONDS)

    def _schedule(self, seconds: float) -> None:
        if self._reaper is None:
            self._reaper = threading.Timer(seconds, self._reap)
            self._reaper.daemon = True
            self._reaper.start()

    def _reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._reaper = None
            stale = [w for w in self._idle if now - w.idle_since >= WARM_IDLE_SECONDS]
            self._idle = [w for w in self._idle if w not in stale]
            if self._idle:
                self._schedule(max(0.1, WARM_IDLE_SECONDS - (now - min(w.idle_since for w in self._idle))))
        for worker in stale:
            worker.close()

    def close_idle(self) -> int:
        """End every idle worker now (in order: each finishes exiting); how many there were."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close(wait=10.0)
        return len(idle)

    def forget(self) -> None:
        """In a forked child: the workers and the spawner thread are the parent's, never this process's."""
        self._idle, self._lock, self._reaper, self._spawner = [], threading.Lock(), None, _Spawner()


def _close_later(worker: _WarmWorker) -> None:
    # Its teardown (torch's, ~1-2 s) is nobody's critical path.
    threading.Thread(target=worker.close, name="infimmr-warm-close", daemon=True).start()


_WARM = _WarmPool()
atexit.register(_WARM.close_idle)
os.register_at_fork(after_in_child=_WARM.forget)


class _Standby:
    """The process the next stage of its own will run in, started while the current one runs: `worker --serve MARKER
    --once` imports torch, waits for one spec, runs it and ends, as a fresh process would. A model stage's process
    spent 1.5-1.8 s starting the interpreter and importing torch before its own work began (issue 15: 6 such stages
    in a demo run); the standby spends them on another core during the previous stage. It is used only while this
    process's environment is the one it was started with (a stage may need a variable set for it alone, e.g. publish's
    Hub token); otherwise, or when it has ended, the stage starts a fresh process as before."""

    def __init__(self) -> None:
        self._worker: _WarmWorker | None = None
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._running = 0  # stages running now; the standby waits for the next one as long as any runs
        self._ended = 0  # stages ended so far: a reaper ends the standby if no stage started or ended since it was set

    def run(self, spec_path: Path, timeout: float, read: Callable[[str], None]) -> tuple[int, bool]:
        worker = self._take()
        self._prepare()  # the next stage's, warming up while this one runs
        with self._lock:
            self._running += 1
        try:
            if worker is None or not worker.send(spec_path):
                if worker is not None:
                    _close_later(worker)
                return _run_fresh(spec_path, timeout, read)
            try:
                rc, timed_out, _ = worker.run(timeout, read)  # cut off or interrupted: its process group is killed
            finally:
                _close_later(worker)  # it said `last`: its exit, torch's teardown included, is nobody's critical path
            return rc, timed_out
        finally:
            with self._lock:
                self._running -= 1
                self._ended += 1
                ended = self._ended
            # No next stage within WARM_IDLE_SECONDS (the run ended; a served deployment waits for its next run):
            # the standby ends rather than hold an interpreter with torch loaded.
            reaper = threading.Timer(WARM_IDLE_SECONDS, self._reap, args=(ended,))
            reaper.daemon = True
            reaper.start()

    def _reap(self, ended: int) -> None:
        with self._lock:
            if self._running or self._ended != ended:
                return
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def pid(self) -> int | None:
        """The waiting process's pid (tests)."""
        with self._lock:
            return self._worker.proc.pid if self._worker is not None else None

    def _take(self) -> _WarmWorker | None:
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is None:
            return None
        if worker.proc.poll() is not None or self._env != dict(os.environ):
            _close_later(worker)
            return None
        return worker

    def _prepare(self) -> None:
        with self._lock:
            if self._worker is None:
                self._env = dict(os.environ)
                self._worker = _WarmWorker(_WARM._spawner, "--once")

    def close(self) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close(wait=10.0)

    def forget(self) -> None:
        """In a forked child: the process is the parent's."""
        self._worker, self._lock, self._running = None, threading.Lock(), 0


_STANDBY = _Standby()
atexit.register(_STANDBY.close)
os.register_at_fork(after_in_child=_STANDBY.forget)


def prepare_standby() -> None:
    """Start the standby now rather than with the first stage of its own, e.g. beside Prefect's start-up."""
    _STANDBY._prepare()


def close_warm_workers() -> int:
    """End the idle warm workers and the standby process now (they would end after WARM_IDLE_SECONDS, or with this
    process)."""
    _STANDBY.close()
    return _WARM.close_idle()


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

"""Batch scoring in worker processes, with a hard per-item wall timeout.

math-verify's own timeouts rely on ``signal.alarm`` (main thread only) and sympy can hang for a long time on inputs
like ``9^{9^{9^9}}``, sometimes inside C code where no Python signal handler runs. So every verdict that needs
math-verify is computed in a worker process: the worker's own deadline normally stops a slow item, and the parent
kills a worker that overruns and starts a new one, so a batch never hangs.

Everything else is decided in the calling process, warm and without a round trip: the format reward and the answer
extraction (regexes), the verdicts that need no math-verify (`accuracy.quick_accuracy`: letters, text, plain
numbers), and answers already scored (a GRPO group repeats the same final answer many times, and the verdict depends
on the extracted answer only). Workers are started only when a batch has symbolic work, so they cost nothing where
they would not pay.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from pydantic import BaseModel

from infimmr_core.answers.compare import check_answer_type
from infimmr_core.answers.extract import check_answer_format, extract_answer
from infimmr_core.data.schema import AnswerType
from infimmr_core.rewards.accuracy import DEFAULT_TIMEOUT, answer_accuracy, no_answer_reason, quick_accuracy
from infimmr_core.rewards.combined import RewardBreakdown, breakdown, score
from infimmr_core.rewards.format import check_format_mode, format_reward


class ScoreItem(BaseModel):
    """One completion to score against its gold answer."""

    completion: str
    gold: str
    answer_type: AnswerType | None = None
    choices: list[str] | None = None

_SCORE_KWARGS = frozenset({"format_weight", "accuracy_weight", "mode", "answer_format"})
# Extra wall time before the parent kills a worker: the worker's own SIGALRM deadline fires at
# `timeout` and usually answers first (no respawn); the kill covers hangs inside C code, where
# Python signal handlers never get to run.
_KILL_GRACE = 0.5
_MAX_CHUNK = 32
_STARTUP_TIMEOUT = 120.0
# Verdicts kept across calls (a few MB at most); timeouts and verifier errors are never kept, since another try may
# answer.
_CACHE_SIZE = 65536
_NOT_CACHED = frozenset({"timeout", "verifier error"})

# What a verdict depends on: (extracted answer, gold, answer_type, choices).
Key = tuple[str, str, "str | None", "tuple[str, ...] | None"]


def _mp_context() -> multiprocessing.context.BaseContext:
    # forkserver: children fork from a server that has math-verify imported already, so a
    # killed worker is replaced quickly; plain fork is unsafe in a threaded trainer.
    # As with spawn, each child still re-imports the caller's __main__ module (Python 3.11's
    # forkserver never receives the main path, so preloading "__main__" would not help).
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["math_verify", "infimmr_core.rewards.warm", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _worker_main(conn, score_kwargs: dict, soft_timeout: float | None) -> None:
    """Worker loop: verdicts for chunks of (idx, answer, gold, answer_type, choices), one result
    message per item so the parent knows when each item started."""
    # Ctrl-C is the parent's to handle; it tears the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Warm up (imports, grammar, sympy's caches) before saying ready, so that cost is not
    # charged to the first item's deadline; cheap when forked from the forkserver, which preloads `warm`.
    import_module("infimmr_core.rewards.warm")
    conn.send(("ready",))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for idx, answer, gold, answer_type, choices in chunk:
            try:
                acc, reason = answer_accuracy(answer, gold, answer_type, choices, timeout=soft_timeout)
            except Exception:  # answer_accuracy catches the verifier's errors; this is a malformed item
                acc, reason = 0.0, "verifier error"
            conn.send((idx, acc, reason))


class _Worker:
    def __init__(self, ctx, score_kwargs: dict, soft_timeout: float | None):
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_worker_main, args=(child_conn, score_kwargs, soft_timeout), daemon=True
        )
        self.proc.start()
        child_conn.close()  # so the parent sees EOF when the child dies
        self.ready = False
        self.spawned_at = time.monotonic()
        self.outstanding: deque[int] = deque()
        self.head_started = 0.0  # when the worker started its current (first outstanding) item

    def stop(self, *, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                kill = True
        if kill:
            self.proc.kill()
        self.proc.join(timeout=2.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _check_score_kwargs(score_kwargs: dict) -> None:
    unknown = set(score_kwargs) - _SCORE_KWARGS
    if unknown:
        raise TypeError(f"unexpected scoring keyword arguments {sorted(unknown)}")
    check_format_mode(score_kwargs.get("mode", "lenient"))
    check_answer_format(score_kwargs.get("answer_format", "answer_tag_boxed"))


def _as_items(items: Sequence[ScoreItem | dict]) -> list[ScoreItem]:
    return [it if isinstance(it, ScoreItem) else ScoreItem.model_validate(it) for it in items]


class RewardPool:
    """Scoring worker processes that can be reused across batches.

    ``score_batch`` starts and stops one per call (~0.3 s, plus re-importing the caller's
    main module in each worker). A trainer scoring every step can keep one open instead,
    which also keeps the workers' parse caches warm::

        with RewardPool(workers=2, timeout=5.0) as pool:
            for step in ...:
                rewards = pool.score(items)

    Same timeout semantics as ``score_batch``. One ``score`` call runs at a time (a lock
    serialises threads); the pool must not be used from a forked child.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        soft_deadline: bool = True,
        **score_kwargs: Any,
    ):
        _check_score_kwargs(score_kwargs)
        if workers < 1:
            raise ValueError("RewardPool needs at least one worker")
        if not timeout or timeout <= 0:
            raise ValueError("RewardPool needs a positive timeout")
        self.workers = workers
        self.timeout = timeout
        self._score_kwargs = dict(score_kwargs)
        self._soft_timeout = timeout if soft_deadline else None
        self._ctx = _mp_context()
        self._pool: list[_Worker] = []
        self._cache: OrderedDict[Key, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers. Idempotent."""
        with self._lock:
            self._closed = True
            for w in self._pool:
                w.stop(kill=bool(w.outstanding))
            self._pool = []

    def score(self, items: Sequence[ScoreItem | dict]) -> list[RewardBreakdown]:
        """Score ``items``; results in input order."""
        parsed = _as_items(items)
        if not parsed:
            return []
        kw = self._score_kwargs
        mode, answer_format = kw.get("mode", "lenient"), kw.get("answer_format", "answer_tag_boxed")
        weights = kw.get("format_weight", 0.5), kw.get("accuracy_weight", 1.0)
        with self._lock:
            if self._closed:
                raise RuntimeError("RewardPool is closed")
            # Each distinct answer once: decided here when no math-verify is needed or already known, else queued
            # for the workers.
            verdicts: list[tuple[float, str] | Key] = []
            queued: dict[Key, int] = {}
            for it in parsed:
                verdict = self._verdict_here(it, answer_format)
                if not isinstance(verdict[0], float):
                    queued.setdefault(verdict, len(queued))
                verdicts.append(verdict)
            if queued:
                payload = [(i, key[0], key[1], key[2], list(key[3]) if key[3] is not None else None)
                           for key, i in queued.items()]
                try:
                    answered = self._run(payload)
                finally:
                    # An interrupted run (Ctrl-C, error) leaves items in flight: drop those workers.
                    for w in [w for w in self._pool if w.outstanding]:
                        w.stop(kill=True)
                        self._pool.remove(w)
                for key, i in queued.items():
                    if answered[i][1] not in _NOT_CACHED:
                        self._remember(key, answered[i])
            results = []
            for it, verdict in zip(parsed, verdicts):
                acc, reason = answered[queued[verdict]] if verdict in queued else verdict
                fmt = format_reward(it.completion, mode=mode, answer_format=answer_format)
                results.append(breakdown(fmt, acc, reason, *weights))
            return results

    def _verdict_here(self, item: ScoreItem, answer_format: str) -> tuple[float, str] | Key:
        """The verdict when it needs no worker, else the key to ask the workers about."""
        if item.answer_type is not None:
            check_answer_type(item.answer_type)
        if item.answer_type == "unverifiable":
            return 0.0, "unverifiable"
        answer = extract_answer(item.completion, answer_format)
        if answer is None:
            return 0.0, no_answer_reason(answer_format)
        key = (answer, item.gold, item.answer_type, tuple(item.choices) if item.choices is not None else None)
        known = self._cache.get(key)
        if known is not None:
            self._cache.move_to_end(key)
            return known
        quick = quick_accuracy(answer, item.gold, item.answer_type, item.choices)
        if quick is not None:
            self._remember(key, quick)
            return quick
        return key

    def _remember(self, key: Key, verdict: tuple[float, str]) -> None:
        self._cache[key] = verdict
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self._score_kwargs, self._soft_timeout)

    def _run(self, payload: list[tuple]) -> list[tuple[float, str]]:
        """(accuracy, reason) for each (idx, answer, gold, answer_type, choices), computed by the workers."""
        n = len(payload)
        pool = self._pool
        # Only as many workers as there is work for; once started they stay for later calls.
        while len(pool) < min(self.workers, n):
            pool.append(self._spawn())
        # Chunks amortise the pipe round trip; small enough that work spreads over all workers.
        chunk = max(1, min(_MAX_CHUNK, n // (len(pool) * 4)))
        hard_limit = self.timeout + _KILL_GRACE
        results: list[tuple[float, str] | None] = [None] * n
        pending = deque(range(n))
        remaining = n
        startup_failures = 0

        def replace(w: _Worker, head_reason: str | None) -> None:
            nonlocal remaining
            if w.outstanding and head_reason is not None:
                head = w.outstanding.popleft()
                results[head] = (0.0, head_reason)
                remaining -= 1
            pending.extendleft(reversed(w.outstanding))  # retried first, in input order
            w.outstanding.clear()
            w.stop(kill=True)
            pool[pool.index(w)] = self._spawn()

        while remaining:
            now = time.monotonic()
            # Dispatch only to idle workers: a worker reads its pipe only between chunks, so
            # sending more could block the parent on a full pipe while deadlines pass.
            for w in pool:
                if w.ready and not w.outstanding and pending:
                    batch = [pending.popleft() for _ in range(min(chunk, len(pending)))]
                    w.outstanding.extend(batch)
                    w.head_started = now
                    try:
                        w.conn.send([payload[i] for i in batch])
                    except OSError:  # died while idle (e.g. OOM-killed between batches)
                        replace(w, None)
            busy = [w.head_started + hard_limit - now for w in pool if w.outstanding]
            wait_s = max(0.0, min([0.1, *busy]))
            for conn in multiprocessing.connection.wait([w.conn for w in pool], timeout=wait_s):
                w = next(x for x in pool if x.conn is conn)
                try:
                    while conn.poll():
                        msg = conn.recv()
                        if msg[0] == "ready":
                            w.ready = True
                            startup_failures = 0
                            continue
                        idx, acc, reason = msg
                        if not w.outstanding or w.outstanding[0] != idx:
                            raise RuntimeError(f"reward worker answered item {idx} out of order")
                        w.outstanding.popleft()
                        w.head_started = time.monotonic()
                        results[idx] = (acc, reason)
                        remaining -= 1
                except (EOFError, OSError):  # the worker died (crash, OOM kill)
                    if not w.ready:
                        startup_failures += 1
                        if startup_failures > 3:
                            raise RuntimeError(
                                "reward scoring workers keep dying at startup (a script starting "
                                "them needs an `if __name__ == \"__main__\":` guard)"
                            ) from None
                    replace(w, "verifier error")
            now = time.monotonic()
            for w in list(pool):
                if w.outstanding and now - w.head_started > hard_limit:
                    replace(w, "timeout")
                elif not w.ready and now - w.spawned_at > _STARTUP_TIMEOUT:
                    raise RuntimeError("reward scoring worker did not start")
        return results  # type: ignore[return-value]


def score_batch(
    items: Sequence[ScoreItem],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 2,
    soft_deadline: bool = True,
    **score_kwargs: Any,
) -> list[RewardBreakdown]:
    """Score many completions in ``workers`` processes; results come back in input order.

    An item still running after ``timeout`` seconds gets accuracy 0 and reason "timeout"
    (format is still scored). Inside a worker a SIGALRM deadline normally stops it at
    ``timeout``; if it does not (``soft_deadline=False`` or a hang in C code), the parent kills
    the worker at ``timeout + 0.5`` s and starts a new one, so the batch never hangs.
    ``score_kwargs`` are passed to ``score`` (format_weight, accuracy_weight, mode,
    answer_format). ``workers=0`` scores in this process (no hard timeout).

    Workers are started with forkserver (spawn where that is missing), so a calling script
    needs the usual ``if __name__ == "__main__":`` guard. Each call starts and stops its own
    pool (~0.3 s); use ``RewardPool`` to keep one across calls.
    """
    _check_score_kwargs(score_kwargs)
    parsed = _as_items(items)
    if not parsed:
        return []
    if workers <= 0:
        return [
            score(it.completion, it.gold, it.answer_type, choices=it.choices, timeout=timeout, **score_kwargs)
            for it in parsed
        ]
    n_workers = min(workers, len(parsed))
    with RewardPool(workers=n_workers, timeout=timeout, soft_deadline=soft_deadline, **score_kwargs) as pool:
        return pool.score(parsed)


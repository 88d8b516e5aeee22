"""The verification deadline: interrupt symbolic work after a wall-clock budget (SIGALRM, main thread only).

We call math-verify and sympy with their own timeouts disabled and use this instead, because math-verify's
``signal.alarm`` is whole seconds, cannot be nested, and reports a timeout as a plain mismatch.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager


class DeadlineExceeded(BaseException):
    """Raised when the deadline passes.

    A BaseException so that math-verify's and sympy's ``except Exception`` blocks cannot swallow it and turn a
    timeout into a silent "mismatch".
    """


@contextmanager
def deadline(seconds: float | None):
    """Interrupt the body with `DeadlineExceeded` after ``seconds`` (main thread only, else no-op).

    A timer that was already armed (e.g. pytest-timeout) is re-armed with its remaining time.
    """
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise DeadlineExceeded()

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _raise)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, old_handler)
            if old_delay > 0:
                left = old_delay - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)

"""The helpers tests use to signal processes hit only the test's own process tree, whatever else runs on the machine."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from processes import cmdline, descendants_of, has_exited, parent_of, signal_descendant, signal_own_group


@pytest.mark.parametrize(
    ("line", "parent"),
    [
        ("123 (python) S 45 123 123 0 -1", 45),
        ("7 (a b) R 9 7 7 0 -1", 9),
        ("8 (odd) name) (x)) S 1 8 8 0 -1", 1),  # a command name may hold ') ' itself
    ],
)
def test_parent_of(line, parent):
    assert parent_of(line) == parent


SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _wait_for(condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)
    return found


def test_only_the_roots_own_descendant_is_signalled(tmp_path):
    marker = f"test-processes-{tmp_path.name}"
    # Two processes with the same command line: one under `root` (a grandchild), one that is not.
    root = subprocess.Popen([sys.executable, "-c",
                             f"import subprocess; subprocess.Popen({[*SLEEPER, marker]!r}).wait()"])
    outsider = subprocess.Popen([*SLEEPER, marker])
    try:
        matches = lambda args: marker in args  # noqa: E731
        [grandchild] = _wait_for(lambda: [p for p in descendants_of(root.pid) if matches(cmdline(p))], "the grandchild")
        assert outsider.pid not in descendants_of(root.pid)
        assert signal_descendant(root.pid, matches) == grandchild
        assert root.wait(timeout=30) == 0  # its child was killed, so it returns
        assert outsider.poll() is None, "a process outside the tree was signalled"
        assert signal_descendant(root.pid, matches) is None  # nothing of ours left
    finally:
        outsider.kill()
        root.kill()
        outsider.wait()


def test_exit_is_seen_without_reaping_and_a_reaped_child_is_never_signalled():
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    _wait_for(lambda: has_exited(proc), "the exit")
    assert proc.returncode is None  # still a zombie: its pid and group id are not reusable yet
    signal_own_group(proc, signal.SIGKILL)  # a group of zombies: harmless
    assert proc.wait(timeout=10) == 0
    signal_own_group(proc, signal.SIGKILL)  # reaped: the pid may be someone else's now, so nothing is sent

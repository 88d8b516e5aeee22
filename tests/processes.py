"""Signalling only what a test started.

A test finds the processes it may signal by parent links from a child it holds (`subprocess.Popen`), never by name
across the machine: another pipeline on the same machine (a second `make test`, a user's run) has processes with the
same command lines. Signals go through a pidfd opened *before* the last check that the process is ours, so a pid that
exits and is reused in between can never be hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")


def parent_of(stat_line: str) -> int:
    """The parent pid from a /proc/PID/stat line. The command name (field 2) is in parentheses and may itself contain
    spaces and parentheses, so the fields are counted from the last ')'."""
    return int(stat_line[stat_line.rindex(")") + 2:].split()[1])


def _parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = parent_of((entry / "stat").read_text())
            except (OSError, ValueError):  # exited while we looked
                continue
    return parents


def descendants_of(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren, ...), breadth first."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, frontier = [], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found += frontier
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _is_descendant(pid: int, root_pid: int) -> bool:
    parents = _parents()
    while pid in parents and pid > 1:
        pid = parents[pid]
        if pid == root_pid:
            return True
    return False


def signal_descendant(root_pid: int, predicate: Callable[[list[str]], bool], sig: int = signal.SIGKILL) -> int | None:
    """Send `sig` to the first descendant of `root_pid` whose command line satisfies `predicate`; its pid, or None
    when there is none (yet)."""
    for pid in descendants_of(root_pid):
        if not predicate(cmdline(pid)):
            continue
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            # Checked again through the pidfd's process: the pid may have been reused since the scan.
            if _is_descendant(pid, root_pid) and predicate(cmdline(pid)):
                signal.pidfd_send_signal(fd, sig)
                return pid
        except ProcessLookupError:
            continue
        finally:
            os.close(fd)
    return None


def has_exited(proc: subprocess.Popen) -> bool:
    """Whether `proc` has exited, without reaping it (unlike `poll()`): while the zombie is unreaped its pid, and the
    process group it leads, cannot be given to anyone else, so `signal_own_group` stays safe."""
    if proc.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def signal_own_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by `proc` (started with `start_new_session=True`), unless `proc` was already
    reaped: then its pid may belong to another process now, and the group is not provably ours."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

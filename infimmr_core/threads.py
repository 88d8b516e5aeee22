"""How many intra-op threads torch gets in a stage's process: the recipe's `runtime.torch_threads`, else the cores
this process may run on shared by the processes that run beside it.

torch's own default is the machine's physical cores, whatever the process was given (taskset, a container's cpuset)
and however many sibling processes share them: on a shared 2-core box a smoke phase ran 8-10x slower with it than with
one thread (issue 15). `OMP_NUM_THREADS` is set as well, so that libraries loaded later and processes started from
this one (accelerate's ranks) start from the same figure instead of the machine's.
"""

from __future__ import annotations

import os
import sys


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def intra_op_threads(configured: int | None, *, processes: int = 1, cores: int | None = None) -> int:
    """`configured` when the recipe sets it, else this process's share of the available cores (at least one) when
    `processes` processes (ranks, parallel shards) run at once on them."""
    if configured is not None:
        if configured < 1:
            raise ValueError(f"torch_threads must be at least 1, got {configured}")
        return configured
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    return max(1, (available_cores() if cores is None else cores) // processes)


def apply(threads: int) -> None:
    """Use `threads` intra-op threads in this process from now on (and in the processes it starts)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # already loaded: the variable alone comes too late
        sys.modules["torch"].set_num_threads(threads)

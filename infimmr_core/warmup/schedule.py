"""Which tasks a warm-up step trains, and how many examples each gets: pure functions of the step and the tasks' last
dev accuracies, so the schedule is reproducible and testable without a model.

A task below its target gets a full share of every step; a task that reached it rests on a smaller share (rehearsal:
dropping it altogether let the other tasks wipe it out within 50 steps at the warm-up's learning rate). The warm-up
ends at the first check where every task has reached the target.
"""

from __future__ import annotations


def weights(accuracy: dict[str, float], target: float, resting_weight: float) -> dict[str, float]:
    """A task's weight in the mix: 1 below the target, `resting_weight` once it has reached it."""
    return {task: 1.0 if value < target else resting_weight for task, value in accuracy.items()}


def shares(task_weights: dict[str, float], batch_size: int, step: int) -> dict[str, int]:
    """Examples per task in one step: one each, then the rest of the batch in proportion to the weights; what the
    proportions leave over goes to the tasks in turn, step by step."""
    tasks = list(task_weights)
    if not tasks:
        return {}
    rest, total = max(batch_size - len(tasks), 0), sum(task_weights.values())
    counts = {t: 1 + (int(rest * task_weights[t] / total) if total else 0) for t in tasks}
    first = step % len(tasks)
    turn = tasks[first:] + tasks[:first]
    for i in range(max(0, batch_size - sum(counts.values()))):
        counts[turn[i % len(turn)]] += 1
    return counts


def all_reached(accuracy: dict[str, float], target: float) -> bool:
    return all(value >= target for value in accuracy.values())


def is_check_step(step: int, check_every: int, max_steps: int) -> bool:
    return step % check_every == 0 or step == max_steps


def distance_to_target(accuracy: dict[str, float], target: float) -> float:
    """Root mean square distance of the tasks' dev accuracies from the target: the kept model is the checked one that
    minimises it, so no task is far above the target (no headroom) or far below it (no reward signal)."""
    if not accuracy:
        return 0.0
    return (sum((value - target) ** 2 for value in accuracy.values()) / len(accuracy)) ** 0.5

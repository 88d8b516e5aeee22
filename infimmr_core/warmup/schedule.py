"""Which tasks a warm-up step trains, and how many examples each gets: pure functions of the step and the tasks' last
dev accuracies, so the schedule is reproducible and testable without a model.

A task below its target gets a full share of every step; a task that reached it rests on a smaller share, possibly
none (training the others can wipe it out within 50 steps at the warm-up's learning rate: then it is below the target
at the next check and back in the mix). The warm-up ends at the first check where every task has reached the target.

Which checked model the stage keeps (`keeps`): the one that brought every task to the target; failing that (the step
budget ran out), the one closest to the target.
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


def keeps(accuracy: dict[str, float], target: float, kept_distance: float) -> bool:
    """Whether a check replaces the model kept so far: always when every task has reached the target (the warm-up
    ends there), else when it is closer to the target. The last task to reach the target is the one reading the image,
    and it gets there in a jump (dev accuracy 0.1-0.2 for hundreds of steps, then 0.4-0.65 within one check): the
    closest check before the jump is a model that cannot read the image yet, and GRPO on image-only prompts does not
    teach reading from there (phase 3: -12 and -8 points on two seeds); from the check after it, it gains 30-44."""
    return all_reached(accuracy, target) or distance_to_target(accuracy, target) < kept_distance


def shortfall(result: dict, target: float) -> str | None:
    """What to tell the user when the warm-up's step budget ran out before every task reached the target (`result`:
    the base stage's metrics); None when it reached it. A phase whose task starts near 0% has almost no reward to learn
    from (seed 1 of the demo once kept a model reading the image at 16%, and phase 3 gained +1.5), so this must not
    pass unseen in a run that otherwise completes."""
    if result.get("reached_target", True):
        return None
    accuracy = result.get("dev_accuracy", {})
    below = ", ".join(task for task, value in accuracy.items() if value < target)
    return (f"the warm-up (stage base) used its {result.get('steps', '?')} steps without bringing every task to its "
            f"target dev accuracy {target:g}; it kept step {result.get('kept_step', '?')}: "
            + ", ".join(f"{task} {value:.2f}" for task, value in accuracy.items())
            + f". Phases training {below} start from a model that rarely solves their task, so they may learn little; "
            "warmup.jsonl in the base artifact has the curve (more warmup.max_steps, or another seed, may help)")

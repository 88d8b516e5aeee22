"""Rewards for GRPO on verifiable math answers, one job per module:

* `format`: the structure of a completion (``lmm_r1``: LMM-R1's exact regex; ``lenient``: ours);
* `accuracy`: the final answer against the gold, through the answer library (`infimmr_core.answers`);
* `deadline`: the per-item verification deadline;
* `pool`: scoring batches in worker processes with a hard per-item timeout;
* `combined`: format and accuracy together (weights, breakdown) and the registry recipes name rewards from.

A completion is expected to look like ``<think> reasoning </think><answer> ... \\boxed{final} ... </answer>``.
"""

from infimmr_core.answers.extract import AnswerFormat, extract_answer
from infimmr_core.rewards.accuracy import DEFAULT_TIMEOUT, accuracy_reward
from infimmr_core.rewards.combined import REWARD_FUNCS, RewardBreakdown, score
from infimmr_core.rewards.deadline import DeadlineExceeded, deadline
from infimmr_core.rewards.format import FormatMode, format_reward
from infimmr_core.rewards.pool import RewardPool, ScoreItem, score_batch

__all__ = [
    "DEFAULT_TIMEOUT",
    "REWARD_FUNCS",
    "AnswerFormat",
    "DeadlineExceeded",
    "FormatMode",
    "RewardBreakdown",
    "RewardPool",
    "ScoreItem",
    "accuracy_reward",
    "deadline",
    "extract_answer",
    "format_reward",
    "score",
    "score_batch",
]

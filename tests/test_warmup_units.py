"""The warm-up's pure parts: what it teaches (worked answers the rewards accept), how a step's examples are shared
between tasks, and when it stops."""

from __future__ import annotations

import pytest

from infimmr_core.config import PromptConfig
from infimmr_core.data.schema import Sample
from infimmr_core.rewards import accuracy_reward, format_reward
from infimmr_core.warmup.schedule import all_reached, distance_to_target, keeps, shares, shortfall, weights
from infimmr_core.warmup.targets import WarmupDataError, training_chat, worked_answer, worked_solution


@pytest.mark.parametrize(
    ("answer_format", "expected"),
    [
        ("answer_tag_boxed", "<think> 3 + 5 = 8 </think> <answer>\\boxed{8}</answer>"),
        ("answer_tag", "<think> 3 + 5 = 8 </think> <answer>8</answer>"),
        ("boxed", "<think> 3 + 5 = 8 </think> \\boxed{8}"),
    ],
)
def test_worked_answers_are_what_the_rewards_pay_for(answer_format, expected):
    text = worked_answer("3 + 5 = 8", "8", answer_format)
    assert text == expected
    assert format_reward(text, answer_format=answer_format) == 1.0
    assert accuracy_reward(text, "8", "numeric", answer_format=answer_format)[0] == 1.0


def test_a_training_chat_is_the_phase_prompt_then_the_worked_answer():
    sample = Sample(id="s", source="t", problem="What is 3 + 5?", answer="8", metadata={"solution": "3 + 5 = 8"})
    chat = training_chat(sample, "text", PromptConfig(system_prompt="Think."), "answer_tag_boxed")
    assert [m["role"] for m in chat] == ["system", "user", "assistant"]
    assert chat[1]["content"] == [{"type": "text", "text": "What is 3 + 5?"}]
    assert chat[2]["content"][0]["text"].startswith("<think> 3 + 5 = 8 </think>")


@pytest.mark.parametrize(
    ("metadata", "phase_input", "expected"),
    [
        ({"solution": "3 + 5 = 8"}, "image_caption", "3 + 5 = 8"),  # one solution serves every input
        ({"solution": "3 + 5 = 8", "solutions": {"image_caption": "three + five = 8"}}, "image_caption",
         "three + five = 8"),
        ({"solution": "3 + 5 = 8", "solutions": {"image_caption": "three + five = 8"}}, "image", "3 + 5 = 8"),
        ({"solutions": {"image": "3 + 5 = 8"}}, "image", "3 + 5 = 8"),
    ],
)
def test_the_worked_solution_is_the_one_for_the_input(metadata, phase_input, expected):
    sample = Sample(id="s", source="t", problem="What is the sum?", answer="8", metadata=metadata)
    assert worked_solution(sample, phase_input) == expected


@pytest.mark.parametrize(
    ("metadata", "phase_input"),
    [({}, "text"), ({"solution": "  "}, "text"), ({"solutions": {"image_caption": "three + five = 8"}}, "image")],
)
def test_a_sample_without_a_worked_solution_is_named(metadata, phase_input):
    sample = Sample(id="no-solution", source="mine", problem="What is 3 + 5?", answer="8", metadata=metadata)
    with pytest.raises(WarmupDataError, match=f"no-solution.*input '{phase_input}'.*metadata.solution"):
        training_chat(sample, phase_input, PromptConfig(), "answer_tag_boxed")


def test_solutions_that_are_not_a_mapping_are_named():
    sample = Sample(id="odd", source="mine", problem="What is 3 + 5?", answer="8", metadata={"solutions": "3 + 5 = 8"})
    with pytest.raises(WarmupDataError, match="odd.*metadata.solutions must map an input"):
        training_chat(sample, "text", PromptConfig(), "answer_tag_boxed")


@pytest.mark.parametrize(
    ("task_weights", "batch", "step", "expected"),
    [
        ({"a": 1.0, "b": 1.0, "c": 1.0}, 24, 0, {"a": 8, "b": 8, "c": 8}),
        ({"a": 1.0, "b": 1.0}, 5, 0, {"a": 3, "b": 2}),  # the leftover example goes to the tasks in turn
        ({"a": 1.0, "b": 1.0}, 5, 1, {"a": 2, "b": 3}),
        ({"a": 1.0, "b": 0.25, "c": 1.0}, 21, 0, {"a": 9, "b": 3, "c": 9}),  # a resting task keeps a small share
        ({"a": 0.0, "b": 1.0}, 4, 0, {"a": 1, "b": 3}),  # never nothing: every task is rehearsed
        ({}, 8, 0, {}),
    ],
)
def test_shares_split_every_step_by_weight(task_weights, batch, step, expected):
    got = shares(task_weights, batch, step)
    assert got == expected and (not got or sum(got.values()) == max(batch, len(got)))


@pytest.mark.parametrize(
    ("accuracy", "expected_weights", "done"),
    [
        ({"a": 0.1, "b": 0.2}, {"a": 1.0, "b": 1.0}, False),
        ({"a": 0.5, "b": 0.2}, {"a": 0.25, "b": 1.0}, False),
        ({"a": 0.45, "b": 0.9}, {"a": 0.25, "b": 0.25}, True),  # the target itself counts as reached
    ],
)
def test_tasks_rest_once_they_reach_the_target_and_the_warmup_ends_when_all_have(accuracy, expected_weights, done):
    assert weights(accuracy, 0.45, 0.25) == expected_weights
    assert all_reached(accuracy, 0.45) is done


@pytest.mark.parametrize(
    ("accuracy", "expected"),
    [
        ({"text": 0.35, "image": 0.35}, 0.0),
        ({"text": 0.0, "image": 0.0}, 0.35),  # the untrained start: never kept over a model that learnt something
        ({"text": 0.45, "image": 0.25}, 0.1),
        ({"text": 0.66, "image": 0.80, "caption": 0.67}, 0.3656),  # the overshoot of one measured seed
        ({}, 0.0),
    ],
)
def test_distance_to_target_is_the_root_mean_square_gap(accuracy, expected):
    assert distance_to_target(accuracy, 0.35) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("accuracy", "kept_distance", "replaces"),
    [
        ({"t": 0.45, "i": 0.22}, 0.2, True),  # closer to the target than the kept model
        ({"t": 0.66, "i": 0.05}, 0.1, False),  # farther, and the image task has not reached it
        # seed 0 of the demo: text and caption rested, the image task jumped from 0.23 to 0.66 in one check; farther
        # from 0.35 than the check before, but the first that reads the image, so it is the one stored
        ({"text": 0.36, "caption": 0.5, "image": 0.66}, 0.18, True),
    ],
)
def test_the_check_that_brings_every_task_to_the_target_is_kept_else_the_closest(accuracy, kept_distance, replaces):
    assert keeps(accuracy, 0.35, kept_distance) is replaces


@pytest.mark.parametrize("result,says", [
    ({"steps": 575, "kept_step": 575, "reached_target": True, "dev_accuracy": {"text": 0.42, "image": 0.37}}, None),
    ({"steps": 9}, None),  # a base artifact from before the field: nothing to say
    ({"steps": 1500, "kept_step": 350, "reached_target": False, "dev_accuracy": {"text": 0.27, "image": 0.16}},
     ["its 1500 steps", "target dev accuracy 0.35", "kept step 350", "text 0.27, image 0.16",
      "Phases training text, image start from a model"]),
])
def test_a_warmup_that_missed_its_target_is_said(result, says):
    note = shortfall(result, 0.35)
    if says is None:
        assert note is None
    else:
        assert all(part in note for part in says), note


def test_the_cli_ends_a_run_whose_warmup_missed_its_target_with_the_warning(capsys):
    """What `infimmr run` prints last, from the base stage's metrics as a stored manifest holds them (the demo's seed 1
    before 1da1042), and nothing for a warm-up that reached its target or a recipe without one."""
    from infimmr.flows.cli import _print_warnings
    from infimmr_core.recipes import load_recipe

    missed = {"steps": 1500, "kept_step": 350, "reached_target": False, "vision_steps": 300,
              "dev_accuracy": {"sum-text": 0.2656, "sum-caption": 0.1562, "sum-image": 0.1562}}
    demo = load_recipe("demo")
    _print_warnings(demo, {"stages": {"base": {"state": "cached", "metrics": missed}}})
    printed = capsys.readouterr().err
    assert printed.startswith("\nwarning: the warm-up (stage base) used its 1500 steps"), printed
    assert "kept step 350: sum-text 0.27, sum-caption 0.16, sum-image 0.16" in printed
    _print_warnings(demo, {"stages": {"base": {"state": "completed", "metrics": {**missed, "reached_target": True}}}})
    _print_warnings(load_recipe("smoke"), {"stages": {"curate": {"state": "completed", "metrics": {}}}})
    assert capsys.readouterr().err == ""

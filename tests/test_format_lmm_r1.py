"""The `lmm_r1` format mode is LMM-R1's released check, verdict for verdict, and `lenient` differs where it says.

Completions come from LMM-R1's own examples/data/test_message.jsonl (the example its system prompt gives, and each
row's gold answer in the answer block), then whitespace, box and tag variants. The expected column is what
`verify_format` in TideDra/lmm-r1 @ f917f18 (openrlhf/models/remote_rm/math_verifier.py) returns: end-of-turn
markers removed, surrounding whitespace stripped, then its regex plus exactly one <think> and one <answer>.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infimmr_core.rewards import format_reward

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "agreement" / "lmm_r1_test_message.jsonl").read_text(encoding="utf-8").splitlines()[1:]]


def _system_example(system: str) -> str:
    """The completion LMM-R1's system prompt shows: "i.e., <think> ... </answer>, which means ..."."""
    return re.search(r"i\.e\., (<think>.*?</answer>)", system).group(1)


EXAMPLE = _system_example(ROWS[0]["system"])
THINK = "<think> The picture shows a sequence that decreases by 10 each step. </think>"


def answer_block(row: dict) -> str:
    return f"<answer> The answer is {row['answer']} </answer>"


# (completion, LMM-R1 verdict, lenient verdict with answer_format=answer_tag_boxed)
CASES = [
    pytest.param(EXAMPLE, 1.0, 1.0, id="system-prompt-example"),
    *[pytest.param(THINK + answer_block(row), 1.0, 1.0, id=f"row{i}-gold") for i, row in enumerate(ROWS)],
    *[pytest.param(THINK + "\n" + answer_block(row), 0.0, 1.0, id=f"row{i}-newline-between") for i, row in enumerate(ROWS)],
    pytest.param(THINK + " " + answer_block(ROWS[0]), 0.0, 1.0, id="space-between"),
    pytest.param("\n" + EXAMPLE + "\n", 1.0, 1.0, id="surrounding-newlines-stripped"),
    pytest.param("  " + EXAMPLE, 1.0, 1.0, id="leading-spaces-stripped"),
    pytest.param(EXAMPLE + "<|im_end|>", 1.0, 0.0, id="end-of-turn-marker-removed"),
    pytest.param(EXAMPLE + "<|endoftext|>\n", 1.0, 0.0, id="endoftext-marker-removed"),
    pytest.param(THINK + "<answer> The answer is 60 </answer>", 1.0, 0.0, id="no-box-needed"),
    pytest.param(THINK + "<answer> The answer is $\\boxed{}$ </answer>", 1.0, 0.0, id="empty-box"),
    pytest.param(THINK + "<answer></answer>", 1.0, 0.0, id="empty-answer"),
    pytest.param("<think></think>" + answer_block(ROWS[0]), 1.0, 1.0, id="empty-think"),
    pytest.param(THINK + answer_block(ROWS[0]) + " Done.", 0.0, 0.0, id="text-after"),
    pytest.param("Sure. " + THINK + answer_block(ROWS[0]), 0.0, 0.0, id="text-before"),
    pytest.param(THINK + answer_block(ROWS[0]) + answer_block(ROWS[1]), 0.0, 0.0, id="two-answers"),
    pytest.param(THINK + THINK + answer_block(ROWS[0]), 0.0, 0.0, id="two-thinks"),
    pytest.param(THINK + "<answer> 60 </think> </answer>", 1.0, 0.0, id="stray-close-think-in-answer"),
    pytest.param(answer_block(ROWS[0]), 0.0, 0.0, id="no-think"),
    pytest.param(" The reasoning. </think>" + answer_block(ROWS[0]), 0.0, 0.0, id="prefilled-think"),
    pytest.param(THINK + "<answer> $\\boxed{60}$", 0.0, 0.0, id="unclosed-answer"),
    pytest.param(THINK.replace("</think>", "") + answer_block(ROWS[0]), 0.0, 0.0, id="unclosed-think"),
    pytest.param("<think>\nline one\nline two\n</think><answer>\n$\\boxed{60}$\n</answer>", 1.0, 1.0,
                 id="newlines-inside-blocks"),
]


@pytest.mark.parametrize("completion, lmm_r1, lenient", CASES)
def test_lmm_r1_mode_matches_lmm_r1_and_lenient_keeps_its_rules(completion, lmm_r1, lenient):
    assert format_reward(completion, mode="lmm_r1") == lmm_r1
    assert format_reward(completion, mode="lenient", answer_format="answer_tag_boxed") == lenient


def test_lmm_r1_mode_ignores_the_answer_format():
    completion = THINK + "<answer> 60 </answer>"
    assert {format_reward(completion, mode="lmm_r1", answer_format=f)
            for f in ("answer_tag", "answer_tag_boxed", "boxed")} == {1.0}


def test_fixture_is_lmm_r1s_file():
    assert len(ROWS) == 2 and [row["answer"] for row in ROWS] == ["$\\boxed{60}$", "$\\boxed{A}$"]
    assert EXAMPLE == "<think> Since $1+1=2$, so the answer is $2$. </think><answer> The answer is $\\boxed{2}$ </answer>"

"""Agreement of our `official` verdicts with each benchmark's official verdicts, on corpora built from the
benchmarks' released files (tests/agreement/, see its README for provenance and how to rebuild).

Prints the agreement per benchmark and every disagreement with its reason; run it with

    .venv/bin/python -m pytest tests/test_agreement.py -q -s

A disagreement must be listed in KNOWN with its reason (an official-code behaviour we cannot or do not reproduce, or
a released file scored by other code than the one released), so the list stays the truth.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from infimmr_core.answers.official.olympiadbench import Judge
from infimmr_core.evaluation.benchmarks import (
    math500_item, mathverse_item, mathvision_item, mathvista_item, olympiad_item,
)
from infimmr_core.evaluation.scorers import SCORERS

CORPORA = Path(__file__).parent / "agreement"
MIN_AGREEMENT = {"mathvista": 99.5, "mathvision": 99.5, "olympiadbench": 99.5, "math500": 99.5, "mathverse": 99.5}
MIN_CASES = 300

# Case id -> why our official verdict differs from the stored one.
_INT_BEFORE_FLOAT = ("the released file was scored by an earlier int(extraction) conversion; the released "
                     "calculate_score.py, which we follow, reads it with int(float(extraction))")
KNOWN: dict[str, dict[str, str]] = {
    "mathvista": {"gpt4_2shot_code_use_ocr:799": _INT_BEFORE_FLOAT, "mplugowl_7b_ft:525": _INT_BEFORE_FLOAT},
    "mathvision": {},
    "olympiadbench": {
        "examples:21:0": "the official judge gives the same verdict: judge.py passes the model answer first, so the "
                         "precision list [1e34, 0.001] is paired with the answer's order (0.001 first) and 7.1e35 "
                         "misses 7e35 by more than 0.001; the authors' expected verdict assumes the gold's order",
    },
    "math500": {},
    "mathverse": {},
}


def _rows(name: str) -> tuple[dict, list[dict]]:
    lines = (CORPORA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0])["_provenance"], [json.loads(line) for line in lines[1:]]


def _boxed(answer: str) -> str:
    return f"<think>…</think><answer>\\boxed{{{answer}}}</answer>"


def _precision(row: dict) -> float | list[float]:
    """An example's precision as the authors' script passes it (a string is read with float())."""
    precision = row["precision"]
    return list(precision) if isinstance(precision, list) else float(precision)


def mathvista_verdict(row: dict) -> bool:
    item = mathvista_item({
        "pid": row["id"], "question": "q", "choices": row["choices"], "answer": row["answer"], "unit": row["unit"],
        "precision": row["precision"], "question_type": row["question_type"], "answer_type": row["answer_type"],
        "query": "q",
    }, "")
    return SCORERS["mathvista"].official_compare(item, row["extraction"])


def mathvision_verdict(row: dict) -> bool:
    item = mathvision_item({"id": row["id"], "question": "q", "options": row["options"], "answer": row["answer"]}, "")
    return SCORERS["mathvision"].score(item, row["response"]).official.correct


def olympiad_verdict(row: dict) -> bool:
    if row["source"] == "scoring_examples":  # the judge as judge.py calls it: the model answer first
        return Judge(_precision(row)).judge(row["answer"], row["gold"])
    item = olympiad_item({"id": row["id"], "question": "q", "final_answer": [row["gold"]],
                          "answer_type": row["answer_type"], "error": row["error"] or None, "unit": None,
                          "is_multiple_answer": False}, "OE_TO_maths_en_COMP")
    return SCORERS["olympiadbench"].score(item, row["response"]).official.correct


def math500_verdict(row: dict) -> bool:
    item = math500_item({"problem": "p", "answer": row["gold"], "unique_id": row["id"]}, "")
    return SCORERS["math500"].score(item, _boxed(row["answer"])).official.correct


def mathverse_verdict(row: dict) -> bool:
    question = "Q" + ("\nChoices:\n" + "\n".join(f"{'ABCDEFGH'[i]}:{c}" for i, c in enumerate(row["choices"]))
                      if row["choices"] else "")
    item = mathverse_item({"sample_index": row["id"], "problem_index": "1", "problem_version": "Text Only",
                           "question": question, "answer": row["gold"], "question_type": row["question_type"],
                           "question_for_eval": question}, "testmini_text_only")
    response = row["answer"] if row["answer"] == "null" else _boxed(row["answer"])
    return SCORERS["mathverse"].score(item, response).official.correct


VERDICTS: dict[str, Callable[[dict], bool]] = {
    "mathvista": mathvista_verdict, "mathvision": mathvision_verdict, "olympiadbench": olympiad_verdict,
    "math500": math500_verdict, "mathverse": mathverse_verdict,
}


@pytest.mark.parametrize("benchmark", list(VERDICTS))
def test_official_agrees_with_the_official_verdicts(benchmark, capsys):
    provenance, rows = _rows(benchmark)
    assert len(rows) >= MIN_CASES
    disagreements = [row for row in rows if VERDICTS[benchmark](row) != row["official"]]
    agreement = 100 * (len(rows) - len(disagreements)) / len(rows)
    with capsys.disabled():
        print(f"\n[agreement] {benchmark}: {agreement:.2f}% of {len(rows)} cases ({len(disagreements)} differ); "
              f"official verdicts: {provenance['verdict']}")
        for row in disagreements:
            shown = {k: row[k] for k in ("gold", "answer", "extraction", "response") if k in row}
            reason = KNOWN[benchmark].get(row["id"], "UNEXPLAINED")
            print(f"  {row['id']}: official={row['official']} ours={not row['official']} {shown} -- {reason}")
    assert agreement >= MIN_AGREEMENT[benchmark]
    assert not [row["id"] for row in disagreements if row["id"] not in KNOWN[benchmark]]


def test_olympiadbench_scoring_examples_as_the_official_judge_scores_them(capsys):
    """The authors' 36 scoring examples: judge.py's argument order (model answer first) gets 35/36, as the released
    judge does (a precision list is consumed in the model answer's order); the examples' own order gets 36/36."""
    _, rows = _rows("olympiadbench")
    examples = [row for row in rows if row["source"] == "scoring_examples"]
    assert len(examples) == 36

    def judged(row: dict, answer_first: bool) -> bool:
        pair = (row["answer"], row["gold"]) if answer_first else (row["gold"], row["answer"])
        return Judge(_precision(row)).judge(*pair)

    judge_py = sum(judged(row, True) == row["official"] for row in examples)
    authors = sum(judged(row, False) == row["official"] for row in examples)
    with capsys.disabled():
        print(f"\n[agreement] olympiadbench scoring examples: {judge_py}/36 in judge.py's order, {authors}/36 in the "
              "examples' own order")
    assert judge_py >= 35 and authors == 36

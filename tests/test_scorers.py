"""Benchmark scorers: tables of (gold as the benchmark stores it, model response) -> (official, semantic) verdicts.

Golds come through the real adapters from rows in the hub schema, so each case uses a format the benchmark has. The
official column is what the benchmark's released scoring code says (see tests/test_agreement.py for the measured
agreement on its own result files); the semantic column is the mathematically right verdict."""

from __future__ import annotations

import pytest

from infimmr_core.evaluation.benchmarks import (
    math500_item, mathverse_item, mathvision_item, mathvista_item, olympiad_item,
)
from infimmr_core.evaluation.report import aggregate
from infimmr_core.evaluation.scorers import SCORERS


def boxed(answer: str) -> str:
    return f"<think>reasoning</think> <answer>\\boxed{{{answer}}}</answer>"


def check(benchmark: str, item, response: str, official: bool, semantic: bool) -> None:
    scores = SCORERS[benchmark].score(item, response)
    assert (scores.official.correct, scores.semantic.correct) == (official, semantic), scores
    for verdict in (scores.official, scores.semantic):
        assert (verdict.reason == "") == verdict.correct, verdict


# --- MathVista: option text golds, letters, precision, units, lists ------------------------------------------------

def vista(answer, *, choices=None, answer_type="text", precision=None, unit=None):
    return mathvista_item({
        "pid": "1", "question": "q", "choices": choices, "answer": answer, "unit": unit, "precision": precision,
        "question_type": "multi_choice" if choices else "free_form", "answer_type": answer_type, "query": "q",
    }, "")


ANGLES = ["135°", "140°", "145°", "150°"]
MATHVISTA_CASES = [
    (vista("145°", choices=ANGLES), boxed("C"), True, True),
    (vista("145°", choices=ANGLES), boxed("(C)"), True, True),
    (vista("145°", choices=ANGLES), "The answer is (C) 145°.", True, True),
    (vista("145°", choices=ANGLES), boxed("145°"), True, True),
    (vista("145°", choices=ANGLES), boxed("145^\\circ"), True, True),  # official: nearest option by raw edit distance
    (vista("145°", choices=ANGLES), boxed("\\angle ABC = 145°"), True, False),  # ... whatever the text says
    (vista("145°", choices=ANGLES), boxed("B"), False, False),
    (vista("145°", choices=ANGLES), boxed("Option C"), False, True),
    (vista("135°", choices=ANGLES), "<think>no idea</think>", True, False),  # official: "" -> the shortest option
    (vista("pear", choices=["apple", "pear", "plum"]), boxed("Pear"), True, True),
    (vista("pear", choices=["apple", "pear", "plum"]), boxed("A"), False, False),
    (vista("1000", answer_type="integer"), boxed("1000"), True, True),
    (vista("1000", answer_type="integer"), boxed("1,000"), False, True),
    (vista("1000", answer_type="integer"), boxed("1000.0"), True, True),
    (vista("7", answer_type="integer", unit="years"), boxed("7 years"), False, True),
    (vista("7", answer_type="integer"), boxed("7.6"), True, False),  # official truncates with int(float(x))
    (vista("1", answer_type="integer"), boxed("4/3"), False, False),
    (vista("4", answer_type="integer"), boxed("$4$"), False, True),
    (vista("4", answer_type="integer"), boxed("\\frac{8}{2}"), False, True),
    (vista("4", answer_type="integer"), boxed("x = 4"), False, True),
    (vista("1.2", answer_type="float", precision=1.0), boxed("1.2"), True, True),
    (vista("1.2", answer_type="float", precision=1.0), boxed("1.23"), True, True),  # rounded to one decimal
    (vista("1.2", answer_type="float", precision=1.0), boxed("1.26"), False, False),
    (vista("0.25", answer_type="float", precision=2.0), boxed("\\frac{1}{4}"), False, True),
    (vista("0.25", answer_type="float", precision=2.0), boxed("0.2"), False, False),
    (vista("[2, 3, 5]", answer_type="list"), boxed("[2, 3, 5]"), True, True),
    (vista("[2, 3, 5]", answer_type="list"), boxed("[2,3,5]"), False, True),  # official compares str(list) text
    (vista("[2, 3, 5]", answer_type="list"), boxed("[2, 5, 3]"), False, False),
    (vista("0", answer_type="integer"), "0", True, True),  # a bare response is its own answer
]


@pytest.mark.parametrize("item,response,official,semantic", MATHVISTA_CASES)
def test_mathvista(item, response, official, semantic):
    check("mathvista", item, response, official, semantic)


def test_mathvista_judge_extraction_is_scored_by_the_official_rule():
    item = vista("145°", choices=ANGLES)
    assert SCORERS["mathvista"].official_compare(item, "C") is True
    assert SCORERS["mathvista"].official_compare(item, "B") is False


# --- MATH-Vision: letters with option texts or bare A-E, LaTeX values to 2 dp --------------------------------------

def vision(answer, options=()):
    return mathvision_item({"id": "1", "question": "q <image1>", "options": list(options), "answer": answer,
                            "level": 1, "subject": "algebra"}, "")


DAYS = ["Wednesday", "Thursday", "Friday", "Tuesday", "Sunday"]
MATHVISION_CASES = [
    (vision("D", "ABCDE"), boxed("D"), True, True),
    (vision("D", "ABCDE"), boxed("(D)"), True, True),
    (vision("D", "ABCDE"), boxed("\\text{D}"), True, True),
    (vision("D", "ABCDE"), boxed("d"), True, True),  # official lower-cases both sides
    (vision("D", "ABCDE"), boxed("E"), False, False),
    (vision("B", DAYS), boxed("Thursday"), True, True),
    (vision("B", DAYS), boxed("thursday"), True, True),
    (vision("B", DAYS), boxed("Friday"), False, False),
    (vision("B", DAYS), boxed("B"), True, True),
    (vision("B", DAYS), "So the answer is B.", True, True),
    (vision("60"), boxed("60"), True, True),
    (vision("60"), boxed("60^\\circ"), True, True),
    (vision("60"), boxed("x = 60"), True, True),
    (vision("60"), boxed("61"), False, False),
    (vision("\\frac{25}{7}"), boxed("\\frac{25}{7}"), True, True),
    (vision("\\frac{25}{7}"), boxed("3.57"), True, False),  # official: values equal to 2 decimals
    (vision("\\frac{25}{7}"), boxed("3.5"), False, False),
    (vision("$4 \\pi$"), boxed("4\\pi"), True, True),
    (vision("$4 \\pi$"), boxed("12.57"), True, False),
    (vision("$4 \\pi$"), boxed("2\\pi"), False, False),
    (vision("7/3"), boxed("\\frac{7}{3}"), True, True),
    (vision("(1, 2)"), boxed("(1,2)"), True, True),
    (vision("5\\sqrt{3}"), boxed("5\\sqrt3"), True, True),  # official repairs \sqrt3
    (vision("O"), boxed("O"), True, True),  # a free-form point name is not option letter O
    (vision("60"), "<think>no answer given</think>", False, False),
]


@pytest.mark.parametrize("item,response,official,semantic", MATHVISION_CASES)
def test_mathvision(item, response, official, semantic):
    check("mathvision", item, response, official, semantic)


# --- OlympiadBench: $-wrapped LaTeX, tolerance, intervals, several answers, units -----------------------------------

def olympiad(final, *, answer_type="Numerical", error=None, unit=None, multiple=False):
    return olympiad_item({"id": 1, "question": "q", "final_answer": [final], "answer_type": answer_type,
                          "error": error, "unit": unit, "is_multiple_answer": multiple}, "OE_MM_maths_en_COMP")


OLYMPIAD_CASES = [
    (olympiad("$\\frac{1}{2}$"), boxed("\\frac{1}{2}"), True, True),
    (olympiad("$\\frac{1}{2}$"), boxed("0.5"), True, True),
    (olympiad("$\\frac{1}{2}$"), boxed("0.5001"), False, False),  # default tolerance 1e-8
    (olympiad("$\\frac{1}{2}$"), boxed("50\\%"), False, True),  # official drops "%" but keeps its backslash
    (olympiad("$50$"), boxed("0.5"), True, False),  # official: the answer's x*100 and x/100 are accepted too
    (olympiad("$19.6$", error="0.1", unit="m"), boxed("19.65"), True, True),
    (olympiad("$19.6$", error="0.1", unit="m"), boxed("19.6 m"), False, True),  # official keeps the unit
    (olympiad("$19.6$", error="0.1", unit="m"), boxed("19.8"), False, False),
    (olympiad("$[-1,1]$", answer_type="Interval"), boxed("[-1, 1]"), True, True),
    (olympiad("$[-1,1]$", answer_type="Interval"), boxed("(-1,1)"), False, False),
    (olympiad("$[a,b]$", answer_type="Interval"), boxed("x \\in [a,b]"), True, True),
    (olympiad("$(-\\infty, 2] \\cup [3, \\infty)$", answer_type="Interval"),
     boxed("(-\\infty,2]\\cup[3,\\infty)"), False, True),  # official compares the pieces with their spaces
    (olympiad("$2,3$", multiple=True), boxed("3, 2"), True, True),  # order does not matter
    (olympiad("$2,3$", multiple=True), "<think>.</think><answer>\\boxed{2} and \\boxed{3}</answer>", True, True),
    (olympiad("$2,3$", multiple=True), boxed("2"), False, False),
    (olympiad("$(1,8,19), (2,7,19)$", answer_type="Tuple", multiple=True), boxed("(2,7,19),(1,8,19)"), True, True),
    (olympiad("$(1,8,19), (2,7,19)$", answer_type="Tuple", multiple=True), boxed("(1,8,19)"), False, False),
    (olympiad("$\\pi r^2$", answer_type="Expression"), boxed("r^2\\pi"), True, True),
    (olympiad("$\\pi r^2$", answer_type="Expression"), boxed("2\\pi r"), False, False),
    (olympiad("$1 \\pm \\sqrt{2}$", multiple=True), boxed("1+\\sqrt{2}, 1-\\sqrt{2}"), True, True),
    (olympiad("$y=2x+1$", answer_type="Equation"), boxed("y = 1 + 2x"), True, True),
    (olympiad("$a_{n}=2n+1$", answer_type="Expression"), boxed("2n+1"), True, True),
    (olympiad("$5$"), "So the final answer is \\boxed{5}", True, True),
    (olympiad("$5$"), "So the final answer is \\boxed{5}.\nCheck: \\boxed{6} was wrong.", True, True),
]


@pytest.mark.parametrize("item,response,official,semantic", OLYMPIAD_CASES)
def test_olympiadbench(item, response, official, semantic):
    check("olympiadbench", item, response, official, semantic)


# --- MathVerse: letters (choices embedded in the question), free-form equivalence ----------------------------------

MC_QUESTION = "As shown in the figure, angle CED is ()\nChoices:\nA:40°\nB:60°\nC:120°\nD:140°"


def verse(answer, qtype="multi-choice", version="Vision Dominant", question=None):
    question = question or (MC_QUESTION if qtype == "multi-choice" else "Find the length of AB.")
    return mathverse_item({"sample_index": "1", "problem_index": "1", "problem_version": version, "question": question,
                           "answer": answer, "question_type": qtype, "question_for_eval": question}, "testmini")


MATHVERSE_CASES = [
    (verse("B"), boxed("B"), True, True),
    (verse("B"), boxed("(B)"), True, True),
    (verse("B"), boxed("b"), True, True),
    (verse("B"), boxed("B: 60°"), True, True),
    (verse("B"), boxed("B:60°"), True, True),  # MathVerse's own option format
    (verse("B"), boxed("60°"), True, True),  # the option's full text
    (verse("B"), boxed("60^\\circ"), False, True),  # not the option's text as written; the same value
    (verse("B"), boxed("A"), False, False),
    (verse("B"), boxed("120°"), False, False),
    (verse("B"), "The answer is B.", True, True),
    (verse("(C)", question="Q?\nChoices:\nA.$x \\geq 0$\nB.$x>0$\nC.All real $x$"), boxed("C"), True, True),
    (verse("False", question="True or false: ...\nChoices:\nA. True\nB. False"), boxed("False"), True, True),
    (verse("False", question="True or false: ...\nChoices:\nA. True\nB. False"), boxed("B"), True, True),
    (verse("False", question="True or false: ...\nChoices:\nA. True\nB. False"), boxed("A"), False, False),
    (verse("C\nD"), boxed("C, D"), True, True),
    (verse("C\nD"), boxed("C"), False, False),
    (verse("14", "free-form"), boxed("14"), True, True),
    (verse("14", "free-form"), boxed("14.0"), True, True),
    (verse("14", "free-form"), boxed("15"), False, False),
    (verse("4.4 m", "free-form"), boxed("440 cm"), True, True),
    (verse("Area $=9 \\pi \\mathrm{cm}^{2}$", "free-form"), boxed("9\\pi"), True, True),
    (verse("2\\sqrt{3}", "free-form"), boxed("\\sqrt{12}"), True, True),
    (verse("2\\sqrt{3}", "free-form"), boxed("3\\sqrt{2}"), False, False),
    (verse("\\frac{1}{2}", "free-form"), boxed("0.5"), True, True),
    (verse("y=x^2+1", "free-form"), boxed("y = 1 + x^2"), True, True),
    (verse("(0, 3]", "free-form"), boxed("(0,3]"), True, True),
    (verse("(-2,1]", "free-form"), boxed("(-2, 1)"), False, False),
    (verse("N 34° W", "free-form"), boxed("N 34° W"), True, True),
    (verse("9", "free-form"), "<think>I cannot tell</think>", False, False),
]


@pytest.mark.parametrize("item,response,official,semantic", MATHVERSE_CASES)
def test_mathverse(item, response, official, semantic):
    check("mathverse", item, response, official, semantic)


def test_mathverse_vision_only_question_lives_in_the_image():
    item = mathverse_item({"sample_index": "5", "problem_index": "1", "problem_version": "Vision Only", "question": "",
                           "answer": "B", "question_type": "multi-choice", "question_for_eval": MC_QUESTION}, "testmini")
    assert "Choices" not in item.question and item.choices == ("40°", "60°", "120°", "140°")
    check("mathverse", item, boxed("60°"), True, True)


def test_mathverse_headline_is_the_mean_over_vision_versions():
    groups = ["Text Dominant"] * 2 + ["Vision Only"] * 4 + ["Text Only"] * 2
    correct = [True, True, True, False, False, False, False, False]
    result = aggregate("mathverse", groups, correct)
    assert result["accuracy"] == 62.5  # (100 + 25) / 2; Text Only is not in the headline
    assert result["breakdown"]["Text Only"] == {"n": 2, "accuracy": 0.0}
    assert aggregate("mathvista", groups, correct)["accuracy"] == 37.5


# --- MATH-500: PRM800K's grader (official) and math-verify (semantic) -----------------------------------------------

def m500(answer):
    return math500_item({"problem": "p", "answer": answer, "subject": "Algebra", "level": 1, "unique_id": "t/1.json"}, "")


MATH500_CASES = [
    (m500("\\left( 3, \\frac{\\pi}{2} \\right)"), boxed("(3, \\frac{\\pi}{2})"), True, True),
    (m500("\\left( 3, \\frac{\\pi}{2} \\right)"), boxed("(3, \\pi)"), False, False),
    (m500("\\frac{14}{3}"), boxed("\\dfrac{14}{3}"), True, True),
    (m500("\\frac{14}{3}"), boxed("14/3"), True, True),
    (m500("\\frac{14}{3}"), boxed("4.67"), False, False),
    (m500("\\frac{1}{2}"), boxed("\\frac{2}{4}"), False, True),  # PRM800K: unreduced fractions fail
    (m500("9"), boxed("9"), True, True),
    (m500("9"), boxed("8"), False, False),
    (m500("10"), "x + 7 = 17, so the final answer is 10", True, True),
    (m500("5\\sqrt{2}"), boxed("\\sqrt{50}"), True, True),
    (m500("5\\sqrt{2}"), boxed("5\\sqrt{3}"), False, False),
    (m500("\\{1,2\\}"), boxed("\\{2,1\\}"), False, True),  # PRM800K compares sets as written
    (m500("[-2, 5)"), boxed("[-2,5)"), True, True),
    (m500("[-2, 5)"), boxed("(-2,5)"), False, False),
    (m500("\\text{(C)}"), boxed("\\text{(C)}"), True, True),
    (m500("x^2+2x+1"), boxed("(x+1)^2"), True, True),
    (m500("\\frac{63}{5}"), boxed("12 3/5"), True, True),  # a mixed number
    (m500("4t"), boxed("4t+0"), True, True),
    (m500("101_2"), boxed("5"), False, True),
    (m500("10"), "<think>I am not sure</think>", False, False),
]


@pytest.mark.parametrize("item,response,official,semantic", MATH500_CASES)
def test_math500(item, response, official, semantic):
    check("math500", item, response, official, semantic)


# --- The wrong answers the issue found accepted: no semantic verdict (and no official one) accepts them ---------------

WRONG_ANSWERS = [
    pytest.param("mathvista", vista("1", answer_type="integer"), boxed("4/3"), id="mathvista-4/3-for-1"),
    pytest.param("mathvista", vista("135°", choices=ANGLES), boxed("I do not know"), id="mathvista-non-answer"),
    pytest.param("olympiadbench", olympiad("$x^2+y^2=1$", answer_type="Equation"), boxed("x^2-y^2=1"),
                 id="olympiad-sign-flipped-equation"),
    pytest.param("olympiadbench", olympiad("$f(x)=1$", answer_type="Expression"), boxed("f(y)=1"),
                 id="olympiad-other-variable"),
    pytest.param("olympiadbench", olympiad("$2n$", answer_type="Expression"), boxed("2"), id="olympiad-2-for-2n"),
    pytest.param("olympiadbench", olympiad("$14$"), boxed("14n"), id="olympiad-14n-for-14"),
    pytest.param("mathverse", verse("N 34° W", "free-form"), boxed("S 34° W"), id="mathverse-opposite-bearing"),
    pytest.param("mathverse", verse("9", "free-form"), boxed("9x"), id="mathverse-9x-for-9"),
    pytest.param("math500", m500("101_2"), boxed("101"), id="math500-101-for-101_2"),
    pytest.param("math500", m500("x+4t"), boxed("x+4"), id="math500-variable-is-not-a-unit"),
]


@pytest.mark.parametrize("benchmark,item,response", WRONG_ANSWERS)
def test_semantic_rejects_the_wrong_answers(benchmark, item, response):
    scores = SCORERS[benchmark].score(item, response)
    assert scores.semantic.correct is False, scores
    if benchmark != "mathvista":  # MathVista's official nearest-option mapping accepts the non-answer (counted)
        assert scores.official.correct is False, scores


def test_official_quirk_is_named_when_it_decides():
    scores = SCORERS["mathvista"].score(vista("135°", choices=ANGLES), "<think>no idea</think>")
    assert scores.official.correct and scores.official.quirk == "no answer mapped to the nearest option"
    truncated = SCORERS["mathvista"].score(vista("7", answer_type="integer"), boxed("7.6"))
    assert truncated.official.quirk == "a non-integer truncated to the integer gold"
    union = SCORERS["olympiadbench"].score(olympiad("$(-\\infty, 2] \\cup [3, \\infty)$", answer_type="Interval"),
                                           boxed("(-\\infty,2]\\cup[3,\\infty)"))
    assert not union.official.correct and union.official.quirk.startswith("a union written with other spacing")
    assert union.semantic.correct


def test_timeout_and_verifier_error_score_zero_with_reason(monkeypatch):
    from infimmr_core.evaluation.scorers.base import Scorer

    def slow(item, response):
        while True:
            pass

    def broken(item, response):
        raise RuntimeError("bug")

    scorer = Scorer("t", "o", "s", slow, broken, timeout=0.5)
    scores = scorer.score(m500("1"), boxed("1"))
    assert (scores.official.correct, scores.official.reason) == (False, "timeout")
    assert (scores.semantic.correct, scores.semantic.reason) == (False, "verifier error")

"""Rule scorers per benchmark: tables of (gold as the benchmark stores it, model response) -> exact verdict.

Golds come through the real adapters from rows in the hub schema, so each case uses a format the benchmark has."""

from __future__ import annotations

import pytest

from infimmr_core.evaluation.benchmarks import (
    mathverse_item, mathvision_item, mathvista_item, math500_item, olympiad_item,
)
from infimmr_core.evaluation.report import aggregate
from infimmr_core.evaluation.scorers import SCORERS


def boxed(answer: str) -> str:
    return f"<think>reasoning</think> <answer>\\boxed{{{answer}}}</answer>"


# --- MathVista: option text golds, letters, precision, units, lists ------------------------------------------------

def vista(answer, *, choices=None, answer_type="text", precision=None, unit=None):
    return mathvista_item({
        "pid": "1", "question": "q", "choices": choices, "answer": answer, "unit": unit, "precision": precision,
        "question_type": "multi_choice" if choices else "free_form", "answer_type": answer_type, "query": "q",
    }, "")


ANGLES = ["135°", "140°", "145°", "150°"]
MATHVISTA_CASES = [
    (vista("145°", choices=ANGLES), boxed("C"), True),
    (vista("145°", choices=ANGLES), boxed("(C)"), True),
    (vista("145°", choices=ANGLES), "The answer is (C) 145°.", True),
    (vista("145°", choices=ANGLES), boxed("145^\\circ"), True),
    (vista("145°", choices=ANGLES), boxed("B"), False),
    (vista("145°", choices=ANGLES), boxed("\\angle ABC = 145°"), True),  # official: nearest option by edit distance
    (vista("145°", choices=ANGLES), "no idea at all, the figure is unclear to me and I cannot say", False),
    (vista("pear", choices=["apple", "pear", "plum"]), boxed("Pear"), True),
    (vista("pear", choices=["apple", "pear", "plum"]), boxed("A"), False),
    (vista("1000", answer_type="integer"), boxed("1,000"), True),
    (vista("1000", answer_type="integer"), boxed("1000.0"), True),
    (vista("7", answer_type="integer", unit="years"), boxed("7 years"), True),
    (vista("7", answer_type="integer", unit="years"), boxed("8"), False),
    (vista("1.2", answer_type="float", precision=1.0), boxed("1.2"), True),
    (vista("1.2", answer_type="float", precision=1.0), boxed("1.23"), True),  # rounded to one decimal
    (vista("1.2", answer_type="float", precision=1.0), boxed("1.26"), False),
    (vista("0.25", answer_type="float", precision=2.0), boxed("\\frac{1}{4}"), True),
    (vista("0.25", answer_type="float", precision=2.0), boxed("0.2"), False),
    (vista("[2, 3, 5]", answer_type="list"), boxed("[2,3,5]"), True),
    (vista("[2, 3, 5]", answer_type="list"), boxed("[2, 5, 3]"), False),
    (vista("0", answer_type="integer"), "0", True),  # a bare short response is its own answer
]


@pytest.mark.parametrize("item,response,expected", MATHVISTA_CASES)
def test_mathvista(item, response, expected):
    assert SCORERS["mathvista"].score(item, response).correct is expected


# --- MATH-Vision: letters with option texts or bare A-E, LaTeX values to 2 dp --------------------------------------

def vision(answer, options=()):
    return mathvision_item({"id": "1", "question": "q <image1>", "options": list(options), "answer": answer,
                            "level": 1, "subject": "algebra"}, "")


DAYS = ["Wednesday", "Thursday", "Friday", "Tuesday", "Sunday"]
MATHVISION_CASES = [
    (vision("D", "ABCDE"), boxed("D"), True),
    (vision("D", "ABCDE"), boxed("(D)"), True),
    (vision("D", "ABCDE"), boxed("\\text{D}"), True),
    (vision("D", "ABCDE"), boxed("E"), False),
    (vision("B", DAYS), boxed("Thursday"), True),
    (vision("B", DAYS), boxed("thursday"), True),
    (vision("B", DAYS), boxed("Friday"), False),
    (vision("B", DAYS), boxed("B"), True),
    (vision("60"), boxed("60"), True),
    (vision("60"), boxed("60^\\circ"), True),
    (vision("60"), boxed("x = 60"), True),
    (vision("60"), boxed("61"), False),
    (vision("\\frac{25}{7}"), boxed("\\frac{25}{7}"), True),
    (vision("\\frac{25}{7}"), boxed("3.57"), True),  # equal to 2 dp
    (vision("\\frac{25}{7}"), boxed("3.5"), False),
    (vision("$4 \\pi$"), boxed("4\\pi"), True),
    (vision("$4 \\pi$"), boxed("12.57"), True),
    (vision("$4 \\pi$"), boxed("2\\pi"), False),
    (vision("7/3"), boxed("\\frac{7}{3}"), True),
    (vision("(1, 2)"), boxed("(1,2)"), True),
    (vision("60"), "<think>no answer given</think>", False),
]


@pytest.mark.parametrize("item,response,expected", MATHVISION_CASES)
def test_mathvision(item, response, expected):
    assert SCORERS["mathvision"].score(item, response).correct is expected


# --- OlympiadBench: $-wrapped LaTeX, tolerance, intervals, several answers, units -----------------------------------

def olympiad(final, *, answer_type="Numerical", error=None, unit=None, multiple=False):
    return olympiad_item({"id": 1, "question": "q", "final_answer": [final], "answer_type": answer_type,
                          "error": error, "unit": unit, "is_multiple_answer": multiple}, "OE_MM_maths_en_COMP")


OLYMPIAD_CASES = [
    (olympiad("$\\frac{1}{2}$"), boxed("\\frac{1}{2}"), True),
    (olympiad("$\\frac{1}{2}$"), boxed("0.5"), True),
    (olympiad("$\\frac{1}{2}$"), boxed("0.5001"), False),  # default tolerance 1e-8
    (olympiad("$\\frac{1}{2}$"), boxed("50\\%"), True),  # x*100 of the gold is accepted
    (olympiad("$19.6$", error="0.1", unit="m"), boxed("19.65"), True),
    (olympiad("$19.6$", error="0.1", unit="m"), boxed("19.6 m"), True),
    (olympiad("$19.6$", error="0.1", unit="m"), boxed("19.8"), False),
    (olympiad("$[-1,1]$", answer_type="Interval"), boxed("[-1, 1]"), True),
    (olympiad("$[-1,1]$", answer_type="Interval"), boxed("(-1,1)"), False),
    (olympiad("$(-\\infty, 2] \\cup [3, \\infty)$", answer_type="Interval"),
     boxed("(-\\infty,2]\\cup[3,\\infty)"), True),
    (olympiad("$2,3$", multiple=True), boxed("3, 2"), True),  # order does not matter
    (olympiad("$2,3$", multiple=True), "<think>.</think><answer>\\boxed{2} and \\boxed{3}</answer>", True),
    (olympiad("$2,3$", multiple=True), boxed("2"), False),
    (olympiad("$(1,8,19), (2,7,19)$", answer_type="Tuple", multiple=True), boxed("(2,7,19),(1,8,19)"), True),
    (olympiad("$(1,8,19), (2,7,19)$", answer_type="Tuple", multiple=True), boxed("(1,8,19)"), False),
    (olympiad("$\\pi r^2$", answer_type="Expression"), boxed("r^2\\pi"), True),
    (olympiad("$\\pi r^2$", answer_type="Expression"), boxed("2\\pi r"), False),
    (olympiad("$1 \\pm \\sqrt{2}$", multiple=True), boxed("1+\\sqrt{2}, 1-\\sqrt{2}"), True),
    (olympiad("$y=2x+1$", answer_type="Equation"), boxed("y = 1 + 2x"), True),
    (olympiad("$5$"), "So the final answer is \\boxed{5}", True),
]


@pytest.mark.parametrize("item,response,expected", OLYMPIAD_CASES)
def test_olympiadbench(item, response, expected):
    assert SCORERS["olympiadbench"].score(item, response).correct is expected


# --- MathVerse: letters (choices embedded in the question), free-form equivalence ----------------------------------

MC_QUESTION = "As shown in the figure, angle CED is ()\nChoices:\nA:40°\nB:60°\nC:120°\nD:140°"


def verse(answer, qtype="multi-choice", version="Vision Dominant"):
    question = MC_QUESTION if qtype == "multi-choice" else "Find the length of AB."
    return mathverse_item({"sample_index": "1", "problem_index": "1", "problem_version": version, "question": question,
                           "answer": answer, "question_type": qtype, "question_for_eval": question}, "testmini")


MATHVERSE_CASES = [
    (verse("B"), boxed("B"), True),
    (verse("B"), boxed("(B)"), True),
    (verse("B"), boxed("B: 60°"), True),
    (verse("B"), boxed("60°"), True),  # the option's text maps to its letter
    (verse("B"), boxed("60^\\circ"), True),
    (verse("B"), boxed("A"), False),
    (verse("B"), boxed("120°"), False),
    (verse("B"), "The answer is B.", True),
    (verse("14", "free-form"), boxed("14"), True),
    (verse("14", "free-form"), boxed("14.0"), True),
    (verse("14", "free-form"), boxed("15"), False),
    (verse("2\\sqrt{3}", "free-form"), boxed("\\sqrt{12}"), True),
    (verse("2\\sqrt{3}", "free-form"), boxed("3\\sqrt{2}"), False),
    (verse("\\frac{1}{2}", "free-form"), boxed("0.5"), True),
    (verse("y=x^2+1", "free-form"), boxed("y = 1 + x^2"), True),
    (verse("(0, 3]", "free-form"), boxed("(0,3]"), True),
]


@pytest.mark.parametrize("item,response,expected", MATHVERSE_CASES)
def test_mathverse(item, response, expected):
    assert SCORERS["mathverse"].score(item, response).correct is expected


def test_mathverse_vision_only_question_lives_in_the_image():
    item = mathverse_item({"sample_index": "5", "problem_index": "1", "problem_version": "Vision Only", "question": "",
                           "answer": "B", "question_type": "multi-choice", "question_for_eval": MC_QUESTION}, "testmini")
    assert "Choices" not in item.question and item.choices == ("40°", "60°", "120°", "140°")
    assert SCORERS["mathverse"].score(item, boxed("60°")).correct is True


def test_mathverse_headline_is_the_mean_over_vision_versions():
    groups = ["Text Dominant"] * 2 + ["Vision Only"] * 4 + ["Text Only"] * 2
    correct = [True, True, True, False, False, False, False, False]
    result = aggregate("mathverse", groups, correct)
    assert result["accuracy"] == 62.5  # (100 + 25) / 2; Text Only is not in the headline
    assert result["breakdown"]["Text Only"] == {"n": 2, "accuracy": 0.0}
    assert aggregate("mathvista", groups, correct)["accuracy"] == 37.5


# --- MATH-500: math-verify equivalence ------------------------------------------------------------------------------

def m500(answer):
    return math500_item({"problem": "p", "answer": answer, "subject": "Algebra", "level": 1, "unique_id": "t/1.json"}, "")


MATH500_CASES = [
    (m500("\\left( 3, \\frac{\\pi}{2} \\right)"), boxed("(3, \\frac{\\pi}{2})"), True),
    (m500("\\left( 3, \\frac{\\pi}{2} \\right)"), boxed("(3, \\pi)"), False),
    (m500("\\frac{14}{3}"), boxed("\\dfrac{14}{3}"), True),
    (m500("\\frac{14}{3}"), boxed("14/3"), True),
    (m500("\\frac{14}{3}"), boxed("4.67"), False),
    (m500("9"), boxed("9"), True),
    (m500("9"), boxed("8"), False),
    (m500("10"), "x + 7 = 17, so the final answer is 10", True),
    (m500("5\\sqrt{2}"), boxed("\\sqrt{50}"), True),
    (m500("5\\sqrt{2}"), boxed("5\\sqrt{3}"), False),
    (m500("\\{1,2\\}"), boxed("\\{2,1\\}"), True),
    (m500("[-2, 5)"), boxed("[-2,5)"), True),
    (m500("[-2, 5)"), boxed("(-2,5)"), False),
    (m500("\\text{(C)}"), boxed("\\text{(C)}"), True),
    (m500("x^2+2x+1"), boxed("(x+1)^2"), True),
    (m500("10"), "<think>I am not sure</think>", False),
]


@pytest.mark.parametrize("item,response,expected", MATH500_CASES)
def test_math500(item, response, expected):
    assert SCORERS["math500"].score(item, response).correct is expected

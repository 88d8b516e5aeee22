"""Rewards: format/accuracy tables, the known failure modes, timeouts and batch scoring."""

from __future__ import annotations

import random
import threading
import time

import pytest

from infimmr_core.answers import compare as answer_compare
from infimmr_core.answers import symbolic
from infimmr_core.rewards import (
    REWARD_FUNCS,
    RewardBreakdown,
    RewardPool,
    ScoreItem,
    accuracy_reward,
    extract_answer,
    format_reward,
    score,
    score_batch,
)
from infimmr_core.rewards.accuracy import answer_accuracy, quick_accuracy


def resp(answer: str, think: str = "Let me work it out.") -> str:
    """A well-formed response with `answer` inside the answer block."""
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def boxed(x: str) -> str:
    return resp(f"The answer is \\boxed{{{x}}}")


OPTS = ["10", "12", "14", "16"]
WORDS = ["red", "green", "blue", "yellow"]

# (completion, gold, answer_type, choices, expected format, expected accuracy)
SCORE_CASES = [
    # --- multiple choice: letter forms ---
    pytest.param(boxed("C"), "C", "multiple_choice", None, 1.0, 1.0, id="mc-boxed-letter"),
    pytest.param(boxed("(C)"), "C", "multiple_choice", None, 1.0, 1.0, id="mc-paren"),
    pytest.param(boxed("C."), "C", "multiple_choice", None, 1.0, 1.0, id="mc-dot"),
    pytest.param(boxed("C)"), "C", "multiple_choice", None, 1.0, 1.0, id="mc-close-paren"),
    pytest.param(boxed("\\text{C}"), "C", "multiple_choice", None, 1.0, 1.0, id="mc-text"),
    pytest.param(boxed("\\text{(C)}"), "(C)", "multiple_choice", None, 1.0, 1.0, id="mc-text-paren-gold-paren"),
    pytest.param(boxed("c"), "C", "multiple_choice", None, 1.0, 1.0, id="mc-lowercase"),
    pytest.param(resp("option C"), "C", "multiple_choice", None, 0.0, 1.0, id="mc-option-word-unboxed"),
    pytest.param(resp("C"), "C", "multiple_choice", None, 0.0, 1.0, id="mc-bare-answer-tag"),
    pytest.param(boxed("C. 14"), "C", "multiple_choice", OPTS, 1.0, 1.0, id="mc-letter-then-text"),
    pytest.param(boxed("D"), "C", "multiple_choice", None, 1.0, 0.0, id="mc-wrong-letter"),
    pytest.param(boxed("C and D"), "C", "multiple_choice", None, 1.0, 0.0, id="mc-two-letters"),
    pytest.param(boxed("E"), "E", "multiple_choice", OPTS, 1.0, 0.0, id="mc-gold-out-of-range"),
    # --- multiple choice: option text ---
    pytest.param(boxed("14"), "C", "multiple_choice", OPTS, 1.0, 1.0, id="mc-pred-option-text"),
    pytest.param(boxed("B"), "12", "multiple_choice", OPTS, 1.0, 1.0, id="mc-gold-option-text"),
    pytest.param(boxed("\\text{blue}"), "blue", "multiple_choice", WORDS, 1.0, 1.0, id="mc-both-text"),
    pytest.param(boxed("14 cm"), "C", "multiple_choice", OPTS, 1.0, 1.0, id="mc-option-with-unit"),
    pytest.param(boxed("16"), "C", "multiple_choice", OPTS, 1.0, 0.0, id="mc-other-option-text"),
    pytest.param(boxed("purple"), "blue", "multiple_choice", WORDS, 1.0, 0.0, id="mc-unknown-text"),
    # --- numeric ---
    pytest.param(boxed("1,000"), "1000", "numeric", None, 1.0, 1.0, id="num-thousands-comma"),
    pytest.param(boxed("1{,}000"), "1000", "numeric", None, 1.0, 1.0, id="num-thousands-brace"),
    pytest.param(boxed("1\\,000"), "1000", "numeric", None, 1.0, 1.0, id="num-thousands-thinspace"),
    pytest.param(boxed("12,345.5"), "12345.5", "numeric", None, 1.0, 1.0, id="num-thousands-decimal"),
    pytest.param(boxed("50\\%"), "0.5", "numeric", None, 1.0, 1.0, id="num-percent-vs-decimal"),
    pytest.param(boxed("50\\%"), "1/2", "numeric", None, 1.0, 1.0, id="num-percent-vs-fraction"),
    pytest.param(boxed("0.5"), "50\\%", "numeric", None, 1.0, 1.0, id="num-decimal-vs-percent-gold"),
    pytest.param(boxed("50"), "0.5", "numeric", None, 1.0, 0.0, id="num-50-is-not-half"),
    pytest.param(boxed("30^\\circ"), "30", "numeric", None, 1.0, 1.0, id="num-degrees"),
    pytest.param(boxed("30^{\\circ}"), "30^\\circ", "numeric", None, 1.0, 1.0, id="num-degrees-braced"),
    pytest.param(boxed("12 cm"), "12", "numeric", None, 1.0, 1.0, id="num-unit"),
    pytest.param(boxed("12\\text{ cm}^2"), "12", "numeric", None, 1.0, 1.0, id="num-text-unit-squared"),
    pytest.param(boxed("12\\,\\mathrm{m/s}"), "12", "numeric", None, 1.0, 1.0, id="num-mathrm-unit"),
    pytest.param(boxed("\\$5"), "5", "numeric", None, 1.0, 1.0, id="num-currency"),
    pytest.param(boxed("-\\frac{3}{4}"), "-0.75", "numeric", None, 1.0, 1.0, id="num-neg-frac"),
    pytest.param(boxed("\\frac12"), "0.5", "numeric", None, 1.0, 1.0, id="num-frac-shorthand"),
    pytest.param(boxed("0.333333"), "1/3", "numeric", None, 1.0, 1.0, id="num-rounded-6-digits"),
    pytest.param(boxed("0.333"), "1/3", "numeric", None, 1.0, 0.0, id="num-rounded-3-digits"),
    pytest.param(boxed("2x"), "2", "numeric", None, 1.0, 0.0, id="num-variable-not-unit"),
    pytest.param(boxed("-3"), "3", "numeric", None, 1.0, 0.0, id="num-sign"),
    pytest.param(boxed("x = 5"), "5", "numeric", None, 1.0, 1.0, id="num-assignment"),
    pytest.param(boxed("2\\sqrt{2}"), "2.8284271", "numeric", None, 1.0, 1.0, id="num-surd-vs-decimal"),
    # --- expression ---
    pytest.param(boxed("\\frac{\\sqrt{2}}{2}"), "\\frac{1}{\\sqrt{2}}", "expression", None, 1.0, 1.0, id="expr-sqrt"),
    pytest.param(boxed("\\sqrt{8}"), "2\\sqrt{2}", "expression", None, 1.0, 1.0, id="expr-sqrt-simplify"),
    pytest.param(boxed("\\dfrac{3}{4}"), "0.75", "expression", None, 1.0, 1.0, id="expr-dfrac"),
    pytest.param(boxed("(x+1)^2"), "x^2+2x+1", "expression", None, 1.0, 1.0, id="expr-polynomial"),
    pytest.param(boxed("x^2+2x"), "x^2+2x+1", "expression", None, 1.0, 0.0, id="expr-polynomial-wrong"),
    pytest.param(boxed("[1,2)"), "[1, 2)", "expression", None, 1.0, 1.0, id="expr-interval"),
    pytest.param(boxed("(1,2)"), "[1,2)", "expression", None, 1.0, 0.0, id="expr-interval-open-vs-half"),
    pytest.param(boxed("(-\\infty, 3]"), "(-\\infty,3]", "expression", None, 1.0, 1.0, id="expr-interval-infinite"),
    pytest.param(boxed("\\{3,1,2\\}"), "\\{1,2,3\\}", "expression", None, 1.0, 1.0, id="expr-set-order"),
    pytest.param(boxed("\\{1,2\\}"), "\\{1,2,3\\}", "expression", None, 1.0, 0.0, id="expr-set-missing"),
    pytest.param(boxed("\\frac{\\pi}{6}"), "30^\\circ", "expression", None, 1.0, 0.0, id="expr-radians-vs-degrees"),
    pytest.param(boxed("2\\pi r"), "2\\pi r", "expression", None, 1.0, 1.0, id="expr-symbolic"),
    # --- text ---
    pytest.param(resp("North-East."), "north east", "text", None, 0.0, 1.0, id="text-punct-case"),
    pytest.param(boxed("\\text{ Yes }"), "yes", "text", None, 1.0, 1.0, id="text-boxed-text"),
    pytest.param(boxed("no"), "yes", "text", None, 1.0, 0.0, id="text-wrong"),
    pytest.param(boxed("isosceles  triangle"), "Isosceles triangle", "text", None, 1.0, 1.0, id="text-whitespace"),
    # --- type inferred from the gold ---
    pytest.param(boxed("(B)"), "B", None, None, 1.0, 1.0, id="infer-mc-letter"),
    pytest.param(boxed("B"), "12", None, OPTS, 1.0, 1.0, id="infer-mc-option-text"),
    pytest.param(boxed("1,000 apples"), "1000", None, None, 1.0, 1.0, id="infer-numeric"),
    pytest.param(boxed("\\frac{1}{2}"), "0.5", None, None, 1.0, 1.0, id="infer-numeric-frac"),
    # math-verify accepts a set for a relation gold (not the other way round)
    pytest.param(boxed("[0, \\infty)"), "x \\ge 0", None, None, 1.0, 1.0, id="infer-relation-gold-interval-pred"),
    pytest.param(boxed("x \\ge 0"), "[0, \\infty)", None, None, 1.0, 0.0, id="infer-interval-gold-relation-pred"),
    pytest.param(boxed("e"), "e", None, None, 1.0, 1.0, id="infer-lowercase-e-is-math"),
    pytest.param(boxed("\\text{Blue}"), "blue", None, None, 1.0, 1.0, id="infer-text"),
    pytest.param(boxed("\\sqrt{3}/3"), "\\frac{\\sqrt{3}}{3}", None, None, 1.0, 1.0, id="infer-expression"),
    # --- answer location ---
    pytest.param(resp("\\boxed{1} then \\boxed{2}"), "2", "numeric", None, 1.0, 1.0, id="last-box-in-answer"),
    pytest.param(resp("\\boxed{\\frac{1}{\\sqrt{4}}}"), "1/2", "numeric", None, 1.0, 1.0, id="nested-braces"),
    pytest.param(resp("7", think="maybe \\boxed{5}"), "7", "numeric", None, 0.0, 1.0, id="answer-text-over-think-box"),
    pytest.param("<think>so</think> \\boxed{7}", "7", "numeric", None, 0.0, 1.0, id="box-without-answer-tag"),
    # --- known failure modes: never 1 on failure ---
    # math-verify compares its unparsed string fallbacks by string equality: same garbage -> 1
    pytest.param(boxed("\\frac{1}{}"), "\\frac{1}{}", "expression", None, 1.0, 0.0, id="unparsable-gold-same-garbage"),
    pytest.param(boxed("\\frac{1}{}"), "\\frac{1}{}", None, None, 1.0, 0.0, id="unparsable-gold-inferred"),
    pytest.param(resp("\\sqrt{}"), "\\sqrt{}", "expression", None, 0.0, 0.0, id="unparsable-gold-answer-tag"),
    pytest.param(boxed("abc"), "abc", "numeric", None, 1.0, 0.0, id="numeric-gold-not-a-number"),
    pytest.param(boxed("5"), "", "numeric", None, 1.0, 0.0, id="empty-gold"),
    pytest.param(boxed("A"), "Z", "multiple_choice", OPTS, 1.0, 0.0, id="mc-unresolvable-gold"),
    pytest.param(resp("", think="it is \\boxed{5}"), "5", "numeric", None, 0.0, 0.0, id="empty-answer-block"),
    pytest.param(resp("  \n ", think="\\boxed{5}"), "5", "numeric", None, 0.0, 0.0, id="whitespace-answer-block"),
    pytest.param(resp("\\boxed{}"), "5", "numeric", None, 0.0, 0.0, id="empty-box"),
    pytest.param(resp("\\boxed{5}") + "<answer>\\boxed{6}</answer>", "6", "numeric", None, 0.0, 1.0, id="two-answers-last-wins-format-0"),
    pytest.param("Let me think.</think>\n<answer>\\boxed{5}</answer>", "5", "numeric", None, 0.0, 1.0, id="prefilled-think-format-0"),
    pytest.param(boxed("5"), "5", "unverifiable", None, 1.0, 0.0, id="unverifiable"),
    pytest.param("I don't know", "5", None, None, 0.0, 0.0, id="no-answer-at-all"),
]


@pytest.mark.parametrize("completion, gold, answer_type, choices, fmt, acc", SCORE_CASES)
def test_score_table(completion, gold, answer_type, choices, fmt, acc):
    b = score(completion, gold, answer_type, choices=choices)
    assert (b.format, b.accuracy) == (fmt, acc), b
    assert b.total == 0.5 * fmt + 1.0 * acc
    # reason is "" exactly when correct
    assert (b.reason == "") == (acc == 1.0)


# (completion, mode, answer_format, expected format reward)
GOOD = "<think>reason</think><answer>\\boxed{5}</answer>"
FORMAT_CASES = [
    pytest.param(GOOD, "lenient", "answer_tag_boxed", 1.0, id="plain"),
    pytest.param(GOOD, "lmm_r1", "answer_tag_boxed", 1.0, id="plain-lmm_r1"),
    pytest.param("<think>r</think>\n\n<answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 1.0, id="newline-between"),
    pytest.param("<think>r</think>\n\n<answer>\\boxed{5}</answer>", "lmm_r1", "answer_tag_boxed", 0.0, id="newline-between-lmm_r1"),
    pytest.param("\n <think>r</think><answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 1.0, id="leading-ws"),
    pytest.param("\n <think>r</think><answer>\\boxed{5}</answer>", "lmm_r1", "answer_tag_boxed", 1.0, id="leading-ws-stripped-lmm_r1"),
    pytest.param(GOOD + "\n", "lenient", "answer_tag_boxed", 1.0, id="trailing-newline"),
    pytest.param(GOOD + "\n", "lmm_r1", "answer_tag_boxed", 1.0, id="trailing-newline-stripped-lmm_r1"),
    pytest.param("<think>\nmulti\nline\n</think><answer>\n\\boxed{5}\n</answer>", "lmm_r1", "answer_tag_boxed", 1.0, id="newlines-inside-lmm_r1"),
    pytest.param("<think>a</think><think>b</think><answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 0.0, id="two-think"),
    pytest.param("<think>a</think><answer>\\boxed{5}</answer><answer>\\boxed{6}</answer>", "lenient", "answer_tag_boxed", 0.0, id="two-answers"),
    pytest.param("<think>a</think><answer>\\boxed{5}</answer><answer>\\boxed{6}</answer>", "lmm_r1", "answer_tag_boxed", 0.0, id="two-answers-lmm_r1-count"),
    pytest.param("<think>a<think>b</think></think><answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 0.0, id="nested-think"),
    pytest.param("<think>a</think><answer><answer>\\boxed{5}</answer></answer>", "lenient", "answer_tag_boxed", 0.0, id="nested-answer"),
    pytest.param("<think>a</think><answer></answer>", "lenient", "answer_tag", 0.0, id="empty-answer"),
    pytest.param("<think>a</think><answer> \n </answer>", "lenient", "answer_tag", 0.0, id="whitespace-answer"),
    pytest.param("<think>a</think><answer>\\boxed{}</answer>", "lenient", "answer_tag_boxed", 0.0, id="empty-box"),
    pytest.param("<think>a<answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 0.0, id="missing-close-think"),
    pytest.param("<think>a</think><answer>\\boxed{5}", "lenient", "answer_tag_boxed", 0.0, id="missing-close-answer"),
    pytest.param(GOOD + " Hope this helps!", "lenient", "answer_tag_boxed", 0.0, id="text-after-answer"),
    pytest.param("Sure! " + GOOD, "lenient", "answer_tag_boxed", 0.0, id="text-before-think"),
    pytest.param("<think>a</think> so <answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 0.0, id="text-between"),
    pytest.param("<answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 0.0, id="no-think"),
    pytest.param("a</think><answer>\\boxed{5}</answer>", "lenient", "answer_tag_boxed", 0.0, id="prefilled-think"),
    pytest.param("<think>a</think><answer>5</answer>", "lenient", "answer_tag_boxed", 0.0, id="no-box-needs-box"),
    pytest.param("<think>a</think><answer>5</answer>", "lenient", "answer_tag", 1.0, id="answer-tag-no-box-ok"),
    pytest.param("<think>a</think><answer>5</answer>", "lmm_r1", "answer_tag", 1.0, id="answer-tag-lmm_r1"),
    pytest.param("<think>a</think><answer>5</answer>", "lmm_r1", "answer_tag_boxed", 1.0, id="lmm_r1-needs-no-box"),
    pytest.param("<think>a</think>\nSo the answer is \\boxed{5}.", "lenient", "boxed", 1.0, id="boxed-format"),
    pytest.param("<think>a</think>\n\\boxed{5}\n", "lmm_r1", "boxed", 0.0, id="boxed-format-lmm_r1-needs-answer-tags"),
    pytest.param("<think>a</think>\\boxed{5} because of X", "lenient", "boxed", 0.0, id="boxed-format-text-after"),
    pytest.param("<think>a</think>The answer is 5.", "lenient", "boxed", 0.0, id="boxed-format-no-box"),
    pytest.param(GOOD, "lenient", "boxed", 0.0, id="boxed-format-rejects-answer-tag"),
]


@pytest.mark.parametrize("completion, mode, answer_format, expected", FORMAT_CASES)
def test_format_table(completion, mode, answer_format, expected):
    assert format_reward(completion, mode=mode, answer_format=answer_format) == expected


REASON_CASES = [
    pytest.param(boxed("5"), "5", "numeric", "", id="correct"),
    pytest.param(boxed("6"), "5", "numeric", "mismatch", id="mismatch"),
    pytest.param(resp(""), "5", "numeric", "no answer", id="no-answer"),
    pytest.param(boxed("\\frac{1}{}"), "\\frac{1}{}", "expression", "unparsable gold", id="unparsable-gold"),
    pytest.param(boxed("5"), "   ", "text", "unparsable gold", id="blank-text-gold"),
    pytest.param(boxed("5"), "5", "unverifiable", "unverifiable", id="unverifiable"),
]


@pytest.mark.parametrize("completion, gold, answer_type, reason", REASON_CASES)
def test_reasons(completion, gold, answer_type, reason):
    assert accuracy_reward(completion, gold, answer_type)[1] == reason


def test_boxed_format_reason():
    assert accuracy_reward("<think>a</think> 5", "5", answer_format="boxed") == (0.0, "no boxed answer")


@pytest.mark.parametrize(
    "completion, answer_format, expected",
    [
        pytest.param(resp("x \\boxed{\\frac{a}{b}} y"), "answer_tag_boxed", "\\frac{a}{b}", id="box-in-answer"),
        pytest.param(resp("\\boxed{\\{1,2\\}}"), "answer_tag_boxed", "\\{1,2\\}", id="escaped-braces"),
        pytest.param(resp("\\boxed{\\boxed{3}}"), "answer_tag_boxed", "\\boxed{3}", id="box-in-box-outer"),
        pytest.param(resp(" 42 "), "answer_tag", "42", id="answer-text"),
        pytest.param("<think>\\boxed{1}</think> \\boxed{2}", "boxed", "2", id="boxed-after-think"),
        pytest.param("<think>\\boxed{1}</think> two", "boxed", "1", id="boxed-anywhere-fallback"),
        pytest.param(resp("$ $"), "answer_tag", None, id="only-dollars"),
        pytest.param("no tags, no box", "answer_tag_boxed", None, id="nothing"),
    ],
)
def test_extract_answer(completion, answer_format, expected):
    assert extract_answer(completion, answer_format) == expected


def test_weights():
    b = score(boxed("5"), "5", "numeric", format_weight=0.25, accuracy_weight=2.0)
    assert b == RewardBreakdown(format=1.0, accuracy=1.0, total=2.25, reason="")


def test_verifier_exception_scores_zero(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("sympy exploded")

    monkeypatch.setitem(symbolic.math_verify(), "verify", boom)
    assert accuracy_reward(boxed("x+1"), "1+x", "expression") == (0.0, "verifier error")


def test_comparator_exception_scores_zero(monkeypatch):
    def boom(pred, gold, choices):
        raise KeyError("bug")

    monkeypatch.setitem(answer_compare.COMPARATORS, "text", boom)
    assert accuracy_reward(boxed("yes"), "yes", "text") == (0.0, "verifier error")


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        score(boxed("5"), "5", "number")
    with pytest.raises(ValueError):
        format_reward(GOOD, mode="loose")
    with pytest.raises(TypeError):
        score_batch([], bogus=1)


def test_score_works_off_main_thread():
    # math-verify's own signal.alarm timeouts raise ValueError off the main thread.
    out = []
    t = threading.Thread(target=lambda: out.append(score(boxed("\\frac{1}{2}"), "0.5", "expression")))
    t.start()
    t.join(30)
    assert out and out[0].accuracy == 1.0


def test_reward_registry():
    assert {"format", "accuracy", "total"} <= set(REWARD_FUNCS)
    c = resp("\\boxed{B}")
    assert REWARD_FUNCS["format"](c, "12", None, OPTS) == 1.0
    assert REWARD_FUNCS["format"](c, "12", None, OPTS, mode="lmm_r1") == 0.0  # newline after </think>
    assert REWARD_FUNCS["accuracy"](c, "12", None, OPTS) == 1.0
    assert REWARD_FUNCS["total"](c, "12", None, OPTS, format_weight=0.5) == 1.5


PATHOLOGICAL = resp("\\boxed{10!^{10!}}")
SLOW = resp("\\boxed{9^{9^{9^{9}}}+1}")  # math-verify grinds on this until interrupted
TOWER = resp("\\boxed{9^{9^{9^{9}}}}")  # the same number alone is known to be too large without math-verify


def test_pathological_in_process():
    t0 = time.monotonic()
    acc, reason = accuracy_reward(PATHOLOGICAL, "1", timeout=2.0)
    assert acc == 0.0 and reason in ("timeout", "mismatch")
    assert time.monotonic() - t0 < 3.0
    t0 = time.monotonic()
    assert accuracy_reward(SLOW, "1", timeout=1.0) == (0.0, "timeout")
    assert time.monotonic() - t0 < 2.0
    assert accuracy_reward(TOWER, "1", timeout=1.0) == (0.0, "answer too large")
    # Written like its gold it still goes to math-verify, which reads both unevaluated and matches them.
    assert accuracy_reward(TOWER, "9^{9^{9^{9}}}", timeout=1.0) == (1.0, "")


def test_pathological_batch_is_bounded(capsys):
    items = [
        ScoreItem(completion=PATHOLOGICAL, gold="1"),
        ScoreItem(completion=SLOW, gold="1"),
        ScoreItem(completion=boxed("7"), gold="7"),
    ]
    t0 = time.monotonic()
    out = score_batch(items, timeout=1.0, workers=2)
    wall = time.monotonic() - t0
    with capsys.disabled():
        print(f"\n[rewards] pathological batch (timeout=1s): {wall:.2f}s wall, reasons={[b.reason for b in out]}")
    assert out[0].accuracy == 0.0 and out[0].reason in ("timeout", "mismatch")
    assert (out[1].format, out[1].accuracy, out[1].reason) == (1.0, 0.0, "timeout")
    assert out[2].accuracy == 1.0
    assert wall < 1.0 + 1.0 + 2.0  # timeout + 1 s, plus pool start-up (which warms math-verify up in the forkserver)


def test_hung_worker_is_killed_and_replaced():
    # Without the in-worker deadline only the parent's kill can stop the item (as for a hang
    # inside C code); the rest of the batch must still be scored.
    items = [ScoreItem(completion=SLOW, gold="1")] + [
        ScoreItem(completion=boxed(str(i)), gold=str(i)) for i in range(6)
    ]
    t0 = time.monotonic()
    out = score_batch(items, timeout=1.0, workers=1, soft_deadline=False)
    assert time.monotonic() - t0 < 1.0 + 0.5 + 2.0
    assert (out[0].format, out[0].accuracy, out[0].reason) == (1.0, 0.0, "timeout")
    assert [b.accuracy for b in out[1:]] == [1.0] * 6


def _batch_items(n_prompts: int, group: int = 8) -> list[ScoreItem]:
    """GRPO-shaped batch: `group` completions per prompt, answers repeating within a group."""
    rng = random.Random(1234)
    items = []
    for p in range(n_prompts):
        k = rng.randint(2, 60)
        kind = p % 6
        if kind == 0:
            gold, atype, choices = f"{k}/{k + 1}", "numeric", None
            answers = [f"\\frac{{{k}}}{{{k + 1}}}", f"{k}/{k + 1}", f"\\frac{{{k + 1}}}{{{k}}}", f"{k}"]
        elif kind == 1:
            gold, atype, choices = f"{k}(x+1)", "expression", None
            answers = [f"{k}(x+1)", f"{k}x+{k}", f"{k}x+1", f"x+{k}"]
        elif kind == 2:
            gold, atype, choices = "ABCD"[k % 4], None, OPTS
            answers = [f"({gold})", gold, OPTS[k % 4], "ABCD"[(k + 1) % 4]]
        elif kind == 3:
            gold, atype, choices = str(k * 1000), None, None
            answers = [f"{k * 1000:,}", f"{k * 1000} cm", str(k * 100), str(k)]
        elif kind == 4:
            gold, atype, choices = f"[{k},\\infty)", "expression", None
            answers = [f"[{k}, \\infty)", f"[{k},\\infty)", f"({k},\\infty)", f"[{k + 1},\\infty)"]
        else:
            gold, atype, choices = "Yes", "text", None
            answers = ["yes", "\\text{Yes}", "no", "maybe"]
        for _ in range(group):
            comp = boxed(rng.choice(answers))
            if rng.random() < 0.1:
                comp += " trailing text"  # format 0
            items.append(ScoreItem(completion=comp, gold=gold, answer_type=atype, choices=choices))
    return items


def test_score_batch_throughput_and_equivalence(capsys):
    items = _batch_items(512)  # 4,096 completions
    assert len(items) == 4096
    t0 = time.monotonic()
    out = score_batch(items, timeout=5.0, workers=2)
    wall = time.monotonic() - t0
    with capsys.disabled():
        print(f"\n[rewards] score_batch: {len(items)} items in {wall:.2f}s = {len(items) / wall:.0f} items/s (2 workers)")
    assert len(out) == len(items)
    assert all(isinstance(b, RewardBreakdown) for b in out)
    accs = {b.accuracy for b in out}
    assert accs == {0.0, 1.0}  # mixed correct / incorrect
    assert not any(b.reason in ("timeout", "verifier error") for b in out)
    sample = random.Random(7).sample(range(len(items)), 96)
    for i in sample:
        it = items[i]
        assert out[i] == score(it.completion, it.gold, it.answer_type, choices=it.choices), i


def test_score_batch_kwargs_and_edge_sizes():
    assert score_batch([]) == []
    items = [ScoreItem(completion="<think>a</think> \\boxed{3}", gold="3")]
    out = score_batch(items, answer_format="boxed", format_weight=1.0)
    assert out == [RewardBreakdown(format=1.0, accuracy=1.0, total=2.0, reason="")]
    assert score_batch(items, workers=0, answer_format="boxed") == [
        score(items[0].completion, "3", answer_format="boxed")
    ]


def test_reward_pool_reuse_and_recovery():
    # Sums, not plain numbers: those are decided in the calling process and would start no worker.
    items = [ScoreItem(completion=boxed(f"x+{i}"), gold=f"{i % 5}+x") for i in range(40)]
    expected = [score(it.completion, it.gold) for it in items]
    with RewardPool(workers=2, timeout=2.0) as pool:
        assert pool.score(items) == expected
        # A worker that died while idle (e.g. OOM-killed) is replaced on the next call (new answers: the pool
        # remembers the verdicts it has given).
        pool._pool[0].proc.kill()
        pool._pool[0].proc.join()
        others = [ScoreItem(completion=boxed(f"y+{i}"), gold=f"{i % 5}+y") for i in range(40)]
        assert pool.score(others) == [score(it.completion, it.gold) for it in others]
        slow = pool.score([ScoreItem(completion=SLOW, gold="1"), items[3]])
        assert [b.reason for b in slow] == ["timeout", ""]
    with pytest.raises(RuntimeError):
        pool.score(items)


# Decided in the calling process (no math-verify): must be exactly what a worker would say. None: a worker's job.
@pytest.mark.parametrize("pred, gold, answer_type, choices, quick", [
    ("42", "42", "numeric", None, (1.0, "")), ("42", "43", None, None, (0.0, "mismatch")),
    ("\\frac{3}{4}", "0.75", None, None, (1.0, "")), ("(C)", "B", None, OPTS, (0.0, "mismatch")),
    ("14", "C", "multiple_choice", OPTS, (1.0, "")), ("Blue", "blue", "text", None, (1.0, "")),
    ("7", "", "numeric", None, (0.0, "unparsable gold")), ("1/3", "0.333333", None, None, None),
    ("x+1", "1+x", None, None, None), ("1" * 500, "1" * 500, None, None, None),
])
def test_quick_accuracy_is_the_workers_verdict(pred, gold, answer_type, choices, quick):
    assert quick_accuracy(pred, gold, answer_type, choices) == quick
    if quick is not None:
        assert answer_accuracy(pred, gold, answer_type, choices, timeout=5.0) == quick


def test_pool_starts_workers_only_for_math_verify():
    items = [ScoreItem(completion=boxed(a), gold=g, choices=c) for a, g, c in [
        ("42", "42", None), ("41", "42", None), ("(B)", "B", OPTS), ("blue", "Blue", None), ("0.5", "1/2", None)]]
    with RewardPool(workers=2, timeout=2.0) as pool:
        assert pool.score(items * 3) == [score(it.completion, it.gold, choices=it.choices) for it in items * 3]
        assert pool._pool == []
        assert pool.score([ScoreItem(completion=boxed("2x"), gold="x+x")])[0].accuracy == 1.0
        assert len(pool._pool) == 1  # one item: one worker

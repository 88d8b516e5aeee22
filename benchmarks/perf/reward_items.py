"""The reward benchmark's completions: GRPO-shaped (prompts x a group of 8), built here from a seed, no data files.

Each prompt has a gold answer of one kind (integer, decimal, fraction, LaTeX fraction, expression, interval, multiple
choice, text, or a pathological one) and its group mixes right and wrong answers, written in the gold's form or an
equivalent one, inside `<answer>` tags with a box, tags only, a box only, or neither. Reasoning text comes before the
answer, as a policy writes it. Every item carries a `category` (gold kind / how it was written / right or wrong) so
disagreements between scorers can be counted by what they are about.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GROUP = 8
OPTIONS = ["12", "\\frac{1}{2}", "north", "x^2+1"]


@dataclass(frozen=True)
class Item:
    completion: str
    gold: str
    answer_type: str | None  # what curation would have recorded (classify_answer)
    choices: list[str] | None
    category: str  # "<gold kind>/<wrapping>/<right|wrong|equiv>"


_FILLER = (
    "Let me set up the problem. ", "We compute step by step. ", "First, note that the area is base times height. ",
    "Substituting the values gives ", "so the total is ", "Checking: 3 + 4 = 7 and 7 \\times 2 = 14. ",
    "By the Pythagorean theorem, $a^2 + b^2 = c^2$. ", "Hence ", "Therefore ", "Simplifying the fraction, ",
)


def _reasoning(rng: random.Random, answer: str) -> str:
    """A few sentences of working, sometimes with an intermediate box (a distractor the extractor must skip)."""
    parts = [rng.choice(_FILLER) for _ in range(rng.randint(3, 12))]
    if rng.random() < 0.3:
        parts.insert(rng.randrange(len(parts)), f"an intermediate value is \\boxed{{{rng.randint(1, 99)}}}. ")
    parts.append(f"we get {answer}.")
    return "".join(parts)


def _wrap(rng: random.Random, answer: str) -> tuple[str, str]:
    """A completion around `answer` and the name of its wrapping."""
    think = f"<think>{_reasoning(rng, answer)}</think>"
    r = rng.random()
    if r < 0.55:
        return f"{think}<answer>\\boxed{{{answer}}}</answer>", "tag_boxed"
    if r < 0.70:
        return f"{think}\n<answer>{answer}</answer>", "tag"
    if r < 0.85:
        return f"{think} The answer is $\\boxed{{{answer}}}$.", "boxed"
    if r < 0.95:
        return f"{think} The final answer is {answer}", "plain"
    return f"{think}<answer>The answer is ${answer}$.</answer>", "tag_sentence"


def _integer(rng: random.Random):
    k = rng.randint(-50, 2000)
    gold = str(k)
    right = [str(k), str(k), f"{k}.0" if rng.random() < 0.2 else str(k)]
    if abs(k) >= 1000:
        right.append(f"{k:,}")
    wrong = [str(k + rng.choice([-2, -1, 1, 2, 10])), str(-k if k else 1), str(k * 2), str(k + 100)]
    return "integer", gold, "numeric", None, right, wrong


def _decimal(rng: random.Random):
    cents = rng.randint(1, 99999)
    value = cents / 100
    gold = f"{value:.2f}"
    num, den = cents, 100
    right = [gold, gold, f"\\frac{{{num}}}{{{den}}}", f"{value:.2f}0"]
    wrong = [f"{value + 0.01:.2f}", f"{value * 10:.2f}", f"{round(value)}", f"{value:.1f}" if cents % 10 else f"{value + 1:.2f}"]
    return "decimal", gold, "numeric", None, right, wrong


def _fraction(rng: random.Random):
    a, b = rng.randint(1, 40), rng.randint(2, 41)
    while a % b == 0:
        b += 1
    gold = f"{a}/{b}"
    right = [f"{a}/{b}", f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"{a * 2}/{b * 2}"]
    wrong = [f"{b}/{a}", f"\\frac{{{a + 1}}}{{{b}}}", f"{a}/{b + 1}", str(a)]
    if b in (2, 4, 5, 8, 10, 20, 25):
        right.append(str(a / b))
    return "fraction", gold, "numeric", None, right, wrong


def _latex_frac(rng: random.Random):
    a, b = rng.randint(1, 30), rng.randint(2, 31)
    while a % b == 0:
        b += 1
    gold = f"\\frac{{{a}}}{{{b}}}"
    right = [gold, gold, f"{a}/{b}", f"\\tfrac{{{a}}}{{{b}}}", f"{a / b:.6f}"]
    wrong = [f"\\frac{{{b}}}{{{a}}}", f"\\frac{{{a}}}{{{b + 1}}}", f"{a / b:.2f}", f"-\\frac{{{a}}}{{{b}}}"]
    return "latex_frac", gold, "numeric", None, right, wrong


def _expression(rng: random.Random):
    k = rng.randint(2, 99)  # wide enough that another prompt rarely has the same gold
    forms = [
        (f"{k}\\sqrt{{2}}", [f"{k}\\sqrt{{2}}", f"\\sqrt{{{2 * k * k}}}", f"{k}\\sqrt2"], [f"{k}\\sqrt{{3}}", f"{k + 1}\\sqrt{{2}}", f"\\sqrt{{{k}}}"]),
        (f"{k}\\pi", [f"{k}\\pi", f"\\pi {k}", f"{k} \\pi"], [f"{k + 1}\\pi", f"{k}", f"\\frac{{\\pi}}{{{k}}}"]),
        (f"x^2+{k}x", [f"x^2+{k}x", f"x({k}+x)", f"{k}x+x^2"], [f"x^2+{k}", f"x^2-{k}x", f"{k}x^2+x"]),
        (f"\\frac{{\\sqrt{{3}}}}{{{k}}}", [f"\\frac{{\\sqrt{{3}}}}{{{k}}}", f"\\frac{{\\sqrt3}}{{{k}}}", f"\\sqrt{{3}}/{k}"], [f"\\frac{{\\sqrt{{2}}}}{{{k}}}", f"\\frac{{{k}}}{{\\sqrt{{3}}}}"]),
        (f"[{k}, \\infty)", [f"[{k}, \\infty)", f"[{k},\\infty)"], [f"({k}, \\infty)", f"[{k + 1}, \\infty)"]),
        (f"({k}, {k + 1})", [f"({k}, {k + 1})", f"({k},{k + 1})"], [f"({k + 1}, {k})", f"({k}, {k + 2})"]),
        (f"{k}^\\circ", [f"{k}^\\circ", f"{k}", f"{k}^{{\\circ}}"], [f"{k + 10}^\\circ", f"{180 - k}^\\circ"]),
    ]
    gold, right, wrong = rng.choice(forms)
    return "expression", gold, "expression" if "^\\circ" not in gold else "numeric", None, right, wrong


def _choice(rng: random.Random):
    i = rng.randrange(4)
    letter = "ABCD"[i]
    gold = letter
    right = [letter, f"({letter})", f"{letter}. {OPTIONS[i]}", f"\\text{{{letter}}}"]
    wrong = ["ABCD"[(i + 1) % 4], f"({'ABCD'[(i + 2) % 4]})", OPTIONS[(i + 1) % 4]]
    return "choice", gold, "multiple_choice", list(OPTIONS), right, wrong


def _text(rng: random.Random):
    gold, right, wrong = rng.choice([
        ("north east", ["north east", "North-East", "\\text{north east}"], ["south", "north west"]),
        ("yes", ["yes", "Yes", "\\text{Yes}"], ["no", "No"]),
        ("isosceles", ["isosceles", "Isosceles"], ["equilateral", "scalene"]),
    ])
    return "text", gold, "text", None, right, wrong


def _pathological(rng: random.Random):
    kind = rng.randrange(4)
    if kind == 0:  # huge numbers, exact big integers and powers
        big = "".join(rng.choice("123456789") for _ in range(300))
        return "patho_huge", big, "numeric", None, [big], [big[:-1] + "0", "10^{300}", "2^{1000}"]
    if kind == 1:  # very long answers
        long_sum = "+".join(["1"] * rng.randint(200, 600))
        return "patho_long", "5", "numeric", None, ["5", "x" * 3000], [long_sum, "1" * 5000]
    if kind == 2:  # unicode digits, signs and fractions
        return "patho_unicode", "-3", "numeric", None, ["\u22123", "\uff0d\uff13", "-3"], ["\u00bd", "\u0663", "3"]
    # a wrong answer that is an identity, a long-polynomial expansion math-verify must simplify
    k = rng.randint(3, 7)
    return "patho_symbolic", f"(x+1)^{{{k}}}", "expression", None, [f"(1+x)^{{{k}}}"], [f"(x+1)^{{{k + 1}}}", f"(x-1)^{{{k}}}"]


# Answers that make math-verify grind until its timeout (5 s for every scorer here): a few per 4,096, placed evenly.
# (category, gold, answer)
_HANGING = (
    ("patho_tower/{}/wrong", "1", "9^{9^{9^{9}}}"),
    ("patho_nested/{}/right", "7", "{" * 80 + "7" + "}" * 80),
    ("patho_nested/{}/wrong", "7", "{" * 80 + "8"),
    ("patho_tower/{}/wrong", "1", "10^{10^{10^{10}}}"),
)


KINDS = (
    (_integer, 0.26), (_decimal, 0.12), (_fraction, 0.10), (_latex_frac, 0.10), (_expression, 0.18),
    (_choice, 0.12), (_text, 0.08), (_pathological, 0.04),
)


def build_items(n: int = 4096, seed: int = 0) -> list[Item]:
    """`n` completions (a multiple of the group size), the same for the same seed."""
    if n % GROUP:
        raise ValueError(f"n must be a multiple of the group size {GROUP}, got {n}")
    rng = random.Random(seed)
    makers, weights = zip(*KINDS)
    items: list[Item] = []
    for _ in range(n // GROUP):
        kind, gold, answer_type, choices, right, wrong = rng.choices(makers, weights)[0](rng)
        p_right = rng.choice([0.1, 0.3, 0.5, 0.7])  # prompts range from hard to easy for the policy
        for _ in range(GROUP):
            correct = rng.random() < p_right
            answer = rng.choice(right if correct else wrong)
            completion, wrapping = _wrap(rng, answer)
            if kind.startswith("patho") and rng.random() < 0.2:
                completion = completion.replace("<think>", "<think>" + "lorem ipsum dolor " * 400, 1)
            items.append(Item(completion, gold, answer_type, choices, f"{kind}/{wrapping}/{'right' if correct else 'wrong'}"))
    count = n // 1024
    for i in range(count):
        category, gold, answer = _HANGING[i % len(_HANGING)]
        completion, wrapping = _wrap(rng, answer)
        items[(2 * i + 1) * n // (2 * count)] = Item(completion, gold, "numeric", None, category.format(wrapping))
    return items

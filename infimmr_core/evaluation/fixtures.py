"""Offline benchmark fixtures: a few rows per benchmark in the hub schema (field names, types and answer formats as
in the dataset cards), generated deterministically, so tests and the smoke recipe run the real adapters and scorers
without the Hub. The answers cover the formats each benchmark really has: option letters vs option text, floats with
precision, units, LaTeX fractions, intervals, several answers."""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageDraw

MATHVERSE_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")


def _image(seed: int, label: str) -> Image.Image:
    """A small diagram-like picture that differs per row (a polygon and a label)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (56, 56), "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(rng.randint(2, 20), rng.randint(30, 54)), (rng.randint(30, 54), rng.randint(30, 54)),
                  (rng.randint(10, 46), rng.randint(2, 20))], outline="black")
    draw.text((2, 2), label[:6], fill="black")
    return img


# Each template: (question, answer, extra fields). Numbers are fixed on purpose: the answers must be right.
_MATHVERSE = [
    ("As shown in the figure, AB is parallel to CD and angle 1 = 50°, then angle 2 is ()\nChoices:\nA:40°\nB:50°\n"
     "C:130°\nD:140°", "C", "multi-choice"),
    ("As shown in the figure, the radius of circle O is 5 and chord AB = 8. Find the distance from O to AB.", "3",
     "free-form"),
    ("As shown in the figure, in triangle ABC, DE is parallel to BC, AD = 2, DB = 4. Then DE:BC is ()\nChoices:\n"
     "A:1:2\nB:1:3\nC:2:3\nD:1:4", "B", "multi-choice"),
    ("The graph shows y = 2^x + c passing through (0, 3). Find c.", "2", "free-form"),
]

_MATHVISION = [
    ("Which number should be written in place of the question mark?\n<image1>", [], "60"),
    ("Which of the following shapes can be folded into a cube?\n<image1>", ["A", "B", "C", "D", "E"], "D"),
    ("On which day did Mary visit the library?\n<image1>", ["Wednesday", "Thursday", "Friday", "Tuesday", "Sunday"],
     "B"),
    ("The shaded region has area $a$. Find $a$.\n<image1>", [], "\\frac{25}{7}"),
    ("Find the length of the arc shown.\n<image1>", [], "$4 \\pi$"),
]

_MATHVISTA: list[dict[str, Any]] = [
    {"question": "What is the measure of angle ABC?", "choices": ["135°", "140°", "145°", "150°"], "answer": "145°",
     "question_type": "multi_choice", "answer_type": "text", "precision": None, "unit": None,
     "hint": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."},
    {"question": "How many people in the image were born after the end of World War II?", "choices": None,
     "answer": "0", "question_type": "free_form", "answer_type": "integer", "precision": None, "unit": None,
     "hint": "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
             "at the end."},
    {"question": "What is the slope of the line?", "choices": None, "answer": "1.2", "question_type": "free_form",
     "answer_type": "float", "precision": 1.0, "unit": None,
     "hint": "Please answer the question requiring a floating-point number with one decimal place and provide the "
             "final value, e.g., 1.2, 1.3, 1.4, at the end."},
    {"question": "What is the age gap between these two people in image?", "choices": None, "answer": "7",
     "question_type": "free_form", "answer_type": "integer", "precision": None, "unit": "years",
     "hint": "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
             "at the end."},
    {"question": "What is the y-intercept of the function?", "choices": None, "answer": "0.25",
     "question_type": "free_form", "answer_type": "float", "precision": 2.0, "unit": None,
     "hint": "Please answer the question requiring a floating-point number with two decimal places and provide the "
             "final value, e.g., 1.23, 1.34, 1.45, at the end."},
    {"question": "Which bar has the largest value?", "choices": ["apple", "pear", "plum"], "answer": "pear",
     "question_type": "multi_choice", "answer_type": "text", "precision": None, "unit": None,
     "hint": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."},
    {"question": "Fill in the blanks of the table with the missing numbers.", "choices": None, "answer": "[2, 3, 5]",
     "question_type": "free_form", "answer_type": "list", "precision": None, "unit": None,
     "hint": "Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
             "[1, 2, 3], [1.2, 1.3, 1.4], at the end."},
]

_OLYMPIAD: list[dict[str, Any]] = [
    {"question": "Let $x$ satisfy $2x = 1$. Find $x$.", "final_answer": ["$\\frac{1}{2}$"], "answer_type": "Numerical",
     "error": None, "unit": None, "is_multiple_answer": False, "subfield": "Algebra"},
    {"question": "Find all real $x$ with $x^2 \\le 1$.", "final_answer": ["$[-1,1]$"], "answer_type": "Interval",
     "error": None, "unit": None, "is_multiple_answer": False, "subfield": "Algebra"},
    {"question": "Find all triples of positive integers $(a,b,c)$ with $a<b<c$, $a+b+c=28$, each a prime or 1, as "
                 "in the figure.", "final_answer": ["$(1,8,19), (2,7,19)$"], "answer_type": "Tuple", "error": None,
     "unit": None, "is_multiple_answer": True, "subfield": "Number Theory"},
    {"question": "A ball falls from rest for 2 s. How far does it fall? Take $g=9.8$.", "final_answer": ["$19.6$"],
     "answer_type": "Numerical", "error": "0.1", "unit": "m", "is_multiple_answer": False, "subfield": "Mechanics"},
    {"question": "Find all $x$ with $x^2 - 5x + 6 = 0$.", "final_answer": ["$2,3$"], "answer_type": "Numerical",
     "error": None, "unit": None, "is_multiple_answer": True, "subfield": "Algebra"},
    {"question": "Express the area of a circle of radius $r$ in terms of $r$.", "final_answer": ["$\\pi r^2$"],
     "answer_type": "Expression", "error": None, "unit": None, "is_multiple_answer": False, "subfield": "Geometry"},
]

_MATH500 = [
    ("Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.", "\\left( 3, \\frac{\\pi}{2} \\right)",
     "Precalculus"),
    ("What is $\\frac{14}{3}$ written as a fraction in lowest terms?", "\\frac{14}{3}", "Prealgebra"),
    ("How many positive divisors does 36 have?", "9", "Number Theory"),
    ("Solve $x + 7 = 17$.", "10", "Algebra"),
    ("Simplify $\\sqrt{50}$.", "5\\sqrt{2}", "Algebra"),
]


def _pick(templates: list, count: int, seed: int) -> list[tuple[int, Any]]:
    start = seed % len(templates)
    return [(i, templates[(start + i) % len(templates)]) for i in range(count)]


def _mathverse(subset: str | None, count: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for i, (question, answer, qtype) in _pick(_MATHVERSE, count, seed):
        problem = str(seed * 1000 + i + 1)
        versions = ("Text Only",) if subset == "testmini_text_only" else MATHVERSE_VERSIONS
        for k, version in enumerate(versions, start=1):
            # Each version shows less of the question in text (Vision Only: none of it).
            text = "" if version == "Vision Only" else question if version == "Text Dominant" else question.replace(
                "As shown in the figure, ", "")
            rows.append({
                "sample_index": str(5 * (int(problem) - 1) + k), "problem_index": problem, "problem_version": version,
                "question": text, "image": None if version == "Text Only" else _image(seed + i * 7 + k, version),
                "answer": answer, "question_type": qtype,
                "metadata": {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Angle"},
                "query_wo": text, "query_cot": text, "question_for_eval": question,
            })
    return rows


def _mathvision(count: int, seed: int) -> list[dict[str, Any]]:
    return [
        {"id": str(seed * 1000 + i + 1), "question": q, "options": opts, "image": f"images/{i + 1}.jpg",
         "decoded_image": _image(seed + i, "MV"), "answer": ans, "solution": None, "level": i % 5 + 1,
         "subject": "arithmetic"}
        for i, (q, opts, ans) in _pick(_MATHVISION, count, seed)
    ]


def _mathvista_query(row: dict[str, Any]) -> str:
    # Built the way MathVista's data/query.json is: hint, question, choices "(A) ...", unit.
    lines = [f"Hint: {row['hint']}", f"Question: {row['question']}"]
    if row["unit"]:
        lines[-1] += f" (Unit: {row['unit']})"
    if row["choices"]:
        lines.append("Choices:\n" + "\n".join(f"({chr(65 + j)}) {c}" for j, c in enumerate(row["choices"])))
    return "\n".join(lines)


def _mathvista(count: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for i, template in _pick(_MATHVISTA, count, seed):
        row = {k: v for k, v in template.items() if k != "hint"}
        rows.append(row | {
            "pid": str(seed * 1000 + i + 1), "image": f"images/{i + 1}.jpg", "decoded_image": _image(seed + i, "MV"),
            "query": _mathvista_query(template),
            "metadata": {"category": "math-targeted-vqa", "language": "english", "split": "testmini"},
        })
    return rows


def _olympiad(subset: str | None, count: int, seed: int) -> list[dict[str, Any]]:
    multimodal = "_MM_" in (subset or "")
    return [
        template | {
            "id": seed * 1000 + i + 1, "solution": ["(omitted)"], "context": None,
            **{f"image_{k}": (_image(seed + i, "OB") if multimodal and k == 1 else None) for k in range(1, 6)},
            "modality": "Multimodal" if multimodal else "Text-only", "difficulty": "Competition",
            "question_type": "Open-ended", "subject": "Math", "language": "English",
        }
        for i, template in _pick(_OLYMPIAD, count, seed)
    ]


def _math500(count: int, seed: int) -> list[dict[str, Any]]:
    return [
        {"problem": q, "solution": f"... $\\boxed{{{a}}}$.", "answer": a, "subject": subject, "level": i % 5 + 1,
         "unique_id": f"test/{subject.lower().replace(' ', '_')}/{seed * 1000 + i}.json"}
        for i, (q, a, subject) in _pick(_MATH500, count, seed)
    ]


def rows(benchmark: str, subset: str | None, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` problems of `benchmark` (MathVerse: each in every version of the subset) in the hub schema."""
    if benchmark == "mathverse":
        return _mathverse(subset, count, seed)
    if benchmark == "mathvision":
        return _mathvision(count, seed)
    if benchmark == "mathvista":
        return _mathvista(count, seed)
    if benchmark == "olympiadbench":
        return _olympiad(subset, count, seed)
    if benchmark == "math500":
        return _math500(count, seed)
    raise ValueError(f"no fixture for benchmark {benchmark!r}")

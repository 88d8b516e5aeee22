"""One evaluation row, whatever benchmark it came from: what the model sees and what its scorer needs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str  # user text shown to the model (options included where the benchmark lists them)
    gold: str  # the gold answer exactly as the benchmark stores it
    images: tuple[bytes, ...] = ()  # encoded images, in order
    multiple_choice: bool = False
    choices: tuple[str, ...] = ()  # option texts, A first
    group: str = ""  # breakdown key: MathVerse problem version, OlympiadBench subset, MathVision level, ...
    answer_type: str | None = None  # the benchmark's own answer type (MathVista integer/float/list; OlympiadBench ...)
    precision: int | None = None  # MathVista: decimals a float answer is rounded to
    unit: str | None = None  # unit the answer is given in (not part of the gold text)
    tolerances: tuple[float, ...] = ()  # OlympiadBench: absolute error allowed, per answer
    multiple_answers: bool = False  # OlympiadBench: the gold holds several comma-separated answers
    judge_question: str = ""  # the full question the judge sees (MathVerse: question_for_eval)
    caption: str | None = None  # shown with the image in an image_caption set (as phase 2 shows it), else None
    extra: dict = field(default_factory=dict)  # JSON-safe details copied into predictions.jsonl for audit

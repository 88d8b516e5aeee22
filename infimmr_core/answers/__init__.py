"""The answer library: every place that reads, normalises or compares an answer uses it.

* `extract`: where the final answer is (``\\boxed{}``, ``<answer>``, "the answer is");
* `latex`: presentation that never changes meaning (delimiters, ``\\text{}``, spacing, labels);
* `numbers`: plain numbers with separators, fractions, percent, degrees, units, other bases;
* `choices`: option letters and option texts;
* `symbolic`: math-verify and latex2sympy;
* `compare`: the typed, mathematically right comparison (training reward, every `semantic` verdict), imported
  as `infimmr_core.answers.compare.compare`;
* `classify`: answer typing for curation;
* `official`: each benchmark's official scoring semantics as named policies (the `official` verdicts).
"""

from infimmr_core.answers.choices import gold_letter, letter_of, letters_in, option_index
from infimmr_core.answers.classify import classify_answer, unwrap_answer
from infimmr_core.answers.compare import ANSWER_TYPES, infer_answer_type
from infimmr_core.answers.extract import AnswerFormat, boxed_contents, extract_answer, extract_final, last_boxed
from infimmr_core.answers.latex import drop_label, norm_text, split_top_level, strip_math_delims
from infimmr_core.answers.numbers import Number, is_plain_number, numbers_match, parse_number, same_quantity

__all__ = [
    "ANSWER_TYPES",
    "AnswerFormat",
    "Number",
    "boxed_contents",
    "classify_answer",
    "drop_label",
    "extract_answer",
    "extract_final",
    "gold_letter",
    "infer_answer_type",
    "is_plain_number",
    "last_boxed",
    "letter_of",
    "letters_in",
    "norm_text",
    "numbers_match",
    "option_index",
    "parse_number",
    "same_quantity",
    "split_top_level",
    "strip_math_delims",
    "unwrap_answer",
]

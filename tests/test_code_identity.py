"""Code identity: a stage's key follows what its code does, not how the code is written, and only the code that the
recipe actually runs. A comment edit must never cost a multi-day recompute of a real recipe."""

from __future__ import annotations

import ast
import gc
import re
import threading
import time
from pathlib import Path

import pytest

from infimmr_core import keys
from infimmr_core.stages import SPECS, stage_code
from test_keys import ROOT, _copies, keys_in_subprocess

# Pairs of sources that must hash alike (same behaviour, other layout) or differently (other behaviour).
SAME = [
    ("x = 1\n", "x = 1  # one\n"),
    ("x = 1\n", "# a comment\n\nx = 1\n\n\n"),
    ('def f():\n    return 1\n', 'def f():\n    """Docstring."""\n    return 1\n'),
    ('"""Module doc."""\nx = 1\n', '"""Another module doc."""\nx = 1\n'),
    ('class A:\n    """Doc."""\n    y = 2\n', 'class A:\n    """Other doc,\n    two lines."""\n\n    y = 2\n'),
    ("f(a, b)\n", "f(\n    a,\n    b\n)\n"),
    ("if x:\n    y = 1\n", "if x:\n  y = 1\n"),  # the width of indentation is not structure
    ("x = f'{a}b'\n", "x = f'{a}b'   # f-string\n"),
    # A field's or a flow's description is documentation, wherever it stands among the arguments.
    ("x: int = Field(1, ge=1)\n", 'x: int = Field(1, ge=1, description="One." " Or more.")\n'),
    ("x: int = Field(1, ge=1)\n", 'x: int = Field(1, description="One.", ge=1)\n'),
    ("x: int = Field(1)\n", 'x: int = Field(\n    1,\n    description="One.",\n)\n'),
]
DIFFERENT = [
    ("x = 1\n", "x = 2\n"),
    ("x = 'a'\n", "x = 'b'\n"),
    ("if x:\n    y = 1\nz = 2\n", "if x:\n    y = 1\n    z = 2\n"),  # indentation that changes the block
    ("x = f'{a}b'\n", "x = f'{a}c'\n"),
    ("def f():\n    return 1\n", "def f():\n    return 1\n    'not a docstring' + g()\n"),
    ("f(description=name)\n", "f(description=other)\n"),  # not a literal: it is computed
    ("x = (1,)\n", "x = (1)\n"),
]


@pytest.mark.parametrize(("one", "other"), SAME)
def test_layout_comments_and_docstrings_are_not_code(one, other):
    assert keys.code_structure(one) == keys.code_structure(other)


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_what_the_code_does_is_code(one, other):
    assert keys.code_structure(one) != keys.code_structure(other)


def _edit_comments_and_docstrings(path: Path) -> None:
    """Reword the module docstring (when there is one) and add comments: what a maintainer does every day."""
    text = path.read_text()
    text = re.sub(r'^(""")', r'\1Reworded. ', text, count=1, flags=re.M) if text.lstrip().startswith('"""') else text
    text = text.replace("\n\n\ndef ", "\n\n\n# a new comment\ndef ", 1)
    text = text.replace('description="', 'description="Reworded. ')
    path.write_text(text + "\n# a trailing comment\n")


def test_comment_and_docstring_edits_in_any_module_change_no_key(tmp_path):
    original, edited = _copies(tmp_path)
    modules = sorted((edited / "infimmr_core").rglob("*.py"))
    for path in modules:
        _edit_comments_and_docstrings(path)
    assert any("Reworded." in path.read_text() for path in modules)
    for recipe in ("infimmr-3b", "smoke"):
        assert keys_in_subprocess(edited, recipe) == keys_in_subprocess(original, recipe), recipe


@pytest.mark.parametrize(
    ("module", "smoke_stages"),
    [
        # The tiny model is the smoke recipe's base model: its builder shapes what the base model is.
        ("tiny_model", {"curate-shard", "curate", "phase1", "evaluate"}),
        # The smoke recipe generates synthetic sources and eval sets, and reads benchmark fixtures.
        ("data/synthetic", {"curate-collect", "curate", "evaluate"}),
        ("evaluation/fixtures", {"evaluate"}),
        # The demo's digit sums: smoke generates none of them.
        ("data/digit_sums", set()),
    ],
)
def test_builders_of_test_data_shape_only_the_recipes_that_use_them(tmp_path, module, smoke_stages):
    original, edited = _copies(tmp_path)
    path = edited / "infimmr_core" / f"{module}.py"
    path.write_text(path.read_text() + "\nA_REAL_CODE_CHANGE = 1\n")
    assert keys_in_subprocess(edited, "infimmr-3b") == keys_in_subprocess(original, "infimmr-3b")
    before, after = keys_in_subprocess(original, "smoke"), keys_in_subprocess(edited, "smoke")
    assert {stage for stage in before if before[stage] != after[stage]} == smoke_stages


def test_no_production_stage_of_a_real_recipe_runs_test_builders():
    from infimmr_core.recipes import load_recipe
    from infimmr_core.stages import CONDITIONAL_CODE

    recipe = load_recipe("infimmr-3b")
    for name, spec in SPECS.items():
        assert not set(CONDITIONAL_CODE) & set(stage_code(spec.module, spec.config(recipe))), name


# ---------------------------------------------------------------------------------------------------------------
# Thread safety: served flow runs compute keys while Prefect's heartbeat thread runs
# ---------------------------------------------------------------------------------------------------------------


class _SwitchesThreads:
    """Cyclic garbage whose finalizer gives up the GIL: the garbage collector, run by any allocation, then hands the
    interpreter to the other thread in the middle of whatever C code allocated. That is how a heartbeat thread gets
    to run inside `ast.parse`'s AST constructor, deterministically instead of one start in four."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def _parse_in_another_thread(stop: threading.Event, errors: list[BaseException]) -> threading.Thread:
    source = Path(ast.__file__).read_text()

    def parse_forever() -> None:
        while not stop.is_set():
            try:
                ast.parse(source)
            except SystemError as err:
                errors.append(err)

    thread = threading.Thread(target=parse_forever, daemon=True)
    thread.start()
    return thread


def test_keys_and_progress_lines_are_computed_safely_while_another_thread_parses():
    from infimmr.tasks.artifacts import training_step
    from infimmr_core.recipes import load_recipe
    from infimmr_core.stages import stage_key

    recipe = load_recipe("smoke")
    digests = {"curate": "a" * 64, "phase1": "b" * 64, "phase2": "c" * 64, "phase3": "d" * 64, "evaluate": "e" * 64,
               "shard": "f" * 64, "base": "0" * 64}
    stop, errors = threading.Event(), []
    thresholds = gc.get_threshold()
    gc.set_threshold(50, 1, 1)
    thread = _parse_in_another_thread(stop, errors)
    try:
        for _ in range(3):
            keys.module_structure_hash.cache_clear()  # recompute from source every round, as a fresh process would
            for _ in range(20):
                _SwitchesThreads()
            for name, spec in SPECS.items():
                stage_key(name, recipe, {u: digests[u] for u in spec.upstream})
            for _ in range(20):
                _SwitchesThreads()
            assert training_step("{'loss': 0.01, 'reward': 0.5, 'epoch': 0.1}")
            assert not training_step("{'loss': 0.01, 'epoch': 0.1}")
    finally:
        stop.set()
        thread.join()
        gc.set_threshold(*thresholds)
    assert errors == []

"""The processor that processes each distinct prompt of a batch once gives, value for value, the batch transformers'
own processor gives, for every way the trainer, the warm-up and the evaluation call it; and it saves the same files."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import transformers

from infimmr_core.data.digit_sums import image_problems
from infimmr_core.data.images import decode_image
from infimmr_core.models import load_processor
from infimmr_core.repeated_prompts import distinct


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


@pytest.fixture(scope="module")
def plain(processor):
    twin = copy.copy(processor)
    twin.__class__ = transformers.Qwen2_5_VLProcessor
    return twin


PICTURES = [decode_image(s.images[0]) for s in image_problems(3, seed=5)]
QUESTIONS = ["What is 3 + 4?", "Evaluate 9 + 0, carefully.", "<|vision_start|><|image_pad|><|vision_end|>Sum?"]


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# (prompt rows as (question, picture indices), processor keyword arguments)
CASES = {
    "text, grouped repeats (GRPO), lists": ([(0, ()), (0, ()), (1, ()), (1, ())], {}),
    "text, scattered repeats, left-padded tensors": ([(1, ()), (0, ()), (1, ()), (0, ())],
                                                     {"padding": True, "padding_side": "left", "return_tensors": "pt"}),
    "pictures, grouped repeats, right-padded tensors": ([(2, (0,)), (2, (0,)), (2, (1,)), (2, (1,)), (2, (1,))],
                                                        {"padding": True, "return_tensors": "pt"}),
    "same text, other picture": ([(2, (0,)), (2, (1,)), (2, (0,))], {"padding": True, "return_tensors": "pt"}),
    "pictures, lists": ([(2, (2,)), (2, (2,)), (2, (0,))], {}),
    "nothing repeats": ([(2, (0,)), (2, (1,)), (2, (2,))], {"padding": True, "return_tensors": "pt"}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_batch_is_the_plain_processors_batch(processor, plain, case):
    rows, kwargs = CASES[case]
    text = [QUESTIONS[q] for q, _ in rows]
    images = [[PICTURES[p] for p in pictures] for _, pictures in rows] if any(p for _, p in rows) else None
    ours, theirs = processor(text=text, images=images, **kwargs), plain(text=text, images=images, **kwargs)
    assert list(ours) == list(theirs)
    for name in theirs:
        assert _same(ours[name], theirs[name]), name


def test_chat_templates_tokenised_in_batches_are_the_plain_processors(processor, plain):
    """TRL's generation path: `apply_chat_template(tokenize=True)` over G copies of each conversation."""
    conversations = [[{"role": "user", "content": [{"type": "image", "image": PICTURES[i]},
                                                   {"type": "text", "text": "What is the sum?"}]}]
                     for i in (0, 0, 0, 1, 1, 1)]
    kwargs = {"add_generation_prompt": True, "tokenize": True, "return_dict": True}
    ours = processor.apply_chat_template(conversations, **kwargs)
    theirs = plain.apply_chat_template(conversations, **kwargs)
    assert list(ours) == list(theirs) and all(_same(ours[k], theirs[k]) for k in theirs)


@pytest.mark.parametrize("text, images, expected", [
    (["a", "a", "b"], None, ([0, 2], [0, 0, 1])),
    (["a", "b"], None, None),  # nothing repeats: the plain call
    ("a", None, None),  # one text, not a batch
    (["a", "a"], [[PICTURES[0]], [PICTURES[1]]], None),  # same text, other pictures
    (["a", "a"], [[PICTURES[0]], [PICTURES[0].copy()]], ([0], [0, 0])),  # equal pixels, other objects
    (["a", "a"], [PICTURES[0], PICTURES[0]], None),  # pictures not given per text
])
def test_distinct(text, images, expected):
    assert distinct(text, images) == expected


def test_it_saves_the_files_the_plain_processor_saves(processor, plain, tmp_path):
    processor.save_pretrained(tmp_path / "ours")
    plain.save_pretrained(tmp_path / "theirs")
    ours = {p.name: p.read_bytes() for p in (tmp_path / "ours").iterdir()}
    assert ours and ours == {p.name: p.read_bytes() for p in (tmp_path / "theirs").iterdir()}


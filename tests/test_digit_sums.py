"""The demo's tasks: held-out items are never trained on, draws are deterministic, captions say what the image shows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from infimmr_core.config import EvalSetConfig, SourceConfig
from infimmr_core.data import digit_sums as d
from infimmr_core.data.images import decode_image
from infimmr_core.data.sources import load_source

WORDS = {word: n for n, word in enumerate(d.DIGIT_WORDS)}


def test_text_universe_splits_every_item_once():
    train, heldout = d.text_universe("train"), d.text_universe(d.HELDOUT_SPLIT)
    assert not set(train) & set(heldout)
    assert len(train) + len(heldout) == 10 * 10 * len(d.TEXT_TEMPLATES)
    assert len(heldout) >= 200  # a held-out set of 200 distinct questions fits
    # Every pair and every phrasing is seen in training: what is held out is the combination.
    assert {(a, b) for a, b, _ in train} == {(a, b) for a in range(10) for b in range(10)}
    assert {t for _, _, t in train} == set(range(len(d.TEXT_TEMPLATES)))


@pytest.mark.parametrize("split", ["train", d.HELDOUT_SPLIT])
def test_text_draws_are_distinct_deterministic_and_correct(split):
    samples = d.text_problems(200, seed=3, split=split)
    assert [s.model_dump() for s in samples] == [s.model_dump() for s in d.text_problems(200, seed=3, split=split)]
    assert len({s.problem for s in samples}) == 200
    for s in samples:
        a, b = s.metadata["operands"]
        assert s.answer == str(a + b) and s.metadata["solution"] == f"{a} + {b} = {a + b}"
        assert s.problem == d.TEXT_TEMPLATES[s.metadata["template"]].format(a=a, b=b)


def test_no_held_out_question_is_ever_a_training_question():
    heldout = {s.problem for s in d.text_problems(len(d.text_universe(d.HELDOUT_SPLIT)), 0, d.HELDOUT_SPLIT)}
    for seed in range(5):
        assert not heldout & {s.problem for s in d.text_problems(500, seed, "train")}


def test_asking_more_than_the_split_holds_is_an_error():
    with pytest.raises(ValueError, match="has only"):
        d.text_problems(len(d.text_universe(d.HELDOUT_SPLIT)) + 1, 0, d.HELDOUT_SPLIT)


def _pixels(sample) -> bytes:
    return np.asarray(decode_image(sample.images[0])).tobytes()


def test_held_out_renderings_are_never_training_renderings():
    heldout = d.image_problems(300, seed=11, split=d.HELDOUT_SPLIT)
    train = [s for seed in (1, 2, 3) for s in d.image_problems(400, seed=seed, split="train")]
    assert not {_pixels(s) for s in heldout} & {_pixels(s) for s in train}
    assert len({_pixels(s) for s in heldout}) == 300  # distinct renderings within a set too
    # The same pairs occur on both sides: what is held out is how they are drawn.
    assert {tuple(s.metadata["operands"]) for s in heldout} <= {tuple(s.metadata["operands"]) for s in train}


def test_image_samples_carry_their_caption_labels_and_solution():
    for s in d.image_problems(50, seed=5):
        a, b = s.metadata["image_labels"]
        assert s.answer == str(a + b) and s.problem == d.IMAGE_QUESTION
        words = s.caption.removeprefix("Two digits: ").removesuffix(".").split(" and ")
        assert [WORDS[w] for w in words] == [a, b]
        assert not any(ch.isdigit() for ch in s.caption)  # the caption spells the digits: no shortcut from phase 1
        # ... and with its caption the picture is solved in words: summing spelled digits is not what phase 1 trains.
        assert s.metadata["solutions"] == {"image_caption": f"{d.DIGIT_WORDS[a]} + {d.DIGIT_WORDS[b]} = {a + b}"}
        assert s.metadata["solution"] == f"{a} + {b} = {a + b}"
        image = decode_image(s.images[0])
        assert image.size == (d.IMAGE_SIDE, d.IMAGE_SIDE)


def test_each_digit_is_drawn_in_its_own_half():
    sample = d.image_problems(1, seed=0)[0]
    a, b = sample.metadata["operands"]
    (_, lx, ly), (_, rx, ry) = sample.metadata["rendering"]["left"], sample.metadata["rendering"]["right"]
    alone_left = np.asarray(d.render(a, b, (d.FONT_SIZE, lx, ly), (d.FONT_SIZE, rx, ry)).convert("L"))
    half = d.IMAGE_SIDE // 2
    assert (alone_left[:, :half] < 128).any() and (alone_left[:, half:] < 128).any()
    assert (alone_left[:, half - 1: half + 1] > 128).all()  # nothing crosses the middle
    assert isinstance(decode_image(sample.images[0]), Image.Image)


def test_sources_draw_training_items_and_eval_sets_held_out_ones():
    source = next(iter(load_source(SourceConfig(kind="synthetic_sum_text", count=1, seed=1))))
    held = next(iter(load_source(EvalSetConfig(name="t", kind="synthetic_sum_text", count=1, seed=1))))
    assert source.split == "train" and held.split == "eval"
    assert (*source.metadata["operands"], source.metadata["template"]) in d.text_universe("train")
    assert (*held.metadata["operands"], held.metadata["template"]) in d.text_universe(d.HELDOUT_SPLIT)
    explicit = next(iter(load_source(EvalSetConfig(name="t", kind="synthetic_sum_text", count=1, seed=1, split="train"))))
    assert explicit.split == "train"

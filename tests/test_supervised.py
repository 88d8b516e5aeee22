"""Supervised batches: chats encoded one by one and collated give exactly the batch the processor gives for the chats
together, so the warm-up can encode each training sample once instead of on every step."""

from __future__ import annotations

import pytest
import torch

from infimmr_core.config import PromptConfig
from infimmr_core.data.digit_sums import image_problems, text_problems
from infimmr_core.data.images import decode_image
from infimmr_core.models import load_processor
from infimmr_core.supervised import collate, encode_chat
from infimmr_core.warmup.targets import training_chat


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


def _examples(inputs: str) -> list[tuple[list[dict], list]]:
    """One chat per letter: t text, c picture with caption, i picture alone (chats of different lengths)."""
    texts, pictures = iter(text_problems(8, seed=3)), iter(image_problems(8, seed=4))
    examples = []
    for kind in inputs:
        sample = next(texts) if kind == "t" else next(pictures)
        phase_input = {"t": "text", "c": "image_caption", "i": "image"}[kind]
        chat = training_chat(sample, phase_input, PromptConfig(), "answer_tag_boxed")
        examples.append((chat, [decode_image(b) for b in sample.images] if kind != "t" else []))
    return examples


@pytest.mark.parametrize("inputs", ["t", "ttt", "i", "cic", "tictc", "itt"])
def test_collated_chats_are_the_processors_batch(processor, inputs):
    examples = _examples(inputs)
    texts = [processor.apply_chat_template(chat, tokenize=False) for chat, _ in examples]
    images = [image for _, chat_images in examples for image in chat_images]
    expected = processor(text=texts, images=images or None, padding=True, padding_side="right", return_tensors="pt")
    batch, labels = collate(processor, [encode_chat(processor, chat, chat_images) for chat, chat_images in examples])
    assert set(batch) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(batch[name], tensor), name
    assert labels.shape == batch["input_ids"].shape and (labels != -100).any(dim=1).all()


def test_a_per_token_field_missing_from_some_chats_is_an_error(processor):
    encoded = [encode_chat(processor, chat, images) for chat, images in _examples("tt")]
    del encoded[1]["attention_mask"]
    with pytest.raises(ValueError, match="attention_mask"):
        collate(processor, encoded)

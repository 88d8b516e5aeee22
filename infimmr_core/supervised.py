"""Supervised next-token training on the assistant turn of chats: the batch and the loss that the tiny model's own
warm start and the `base` stage's warm-up share."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from PIL import Image


def assistant_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer) -> torch.Tensor:
    """Labels that cover only the assistant turn: everything after the last <|im_start|> ("assistant\\n" header
    included: harmless), padding excluded."""
    turn_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    last_start = torch.where(input_ids == turn_start, positions, -1).max(dim=1, keepdim=True).values
    keep = (positions > last_start) & attention_mask.bool()
    return torch.where(keep, input_ids, -100)


def encode_chat(processor, chat: list[dict], images: list[Image.Image]) -> dict[str, torch.Tensor]:
    """One whole chat's model inputs (the assistant turn included), unpadded: a batch of one.

    A training set is encoded once and `collate`d per step, instead of templating, tokenising and preprocessing the
    pictures of every chat again each time it is drawn; the batch is the one the processor gives for the chats
    together, value for value (tests/test_supervised.py)."""
    text = processor.apply_chat_template(chat, tokenize=False)
    return dict(processor(text=[text], images=images or None, return_tensors="pt"))


def collate(processor, encoded: list[dict[str, torch.Tensor]]) -> tuple[dict, torch.Tensor]:
    """Right-padded inputs of encoded chats, and their assistant-turn labels. The image processor's fields (pixel
    patches, grids) are per image: concatenated in chat order. The others are per token: padded on the right,
    input ids with the pad token, the rest with 0 (masked out; the text token type)."""
    tokenizer, per_image = processor.tokenizer, set(processor.image_processor.model_input_names)
    length = max(e["input_ids"].shape[1] for e in encoded)
    batch = {}
    for name in dict.fromkeys(name for e in encoded for name in e):
        if name in per_image:
            batch[name] = torch.cat([e[name] for e in encoded if name in e])
            continue
        if any(name not in e for e in encoded):
            raise ValueError(f"collate: the per-token field {name!r} is missing from some chats")
        pad = tokenizer.pad_token_id if name == "input_ids" else 0
        batch[name] = torch.cat([torch.nn.functional.pad(e[name], (0, length - e[name].shape[1]), value=pad)
                                 for e in encoded])
    return batch, assistant_labels(batch["input_ids"], batch["attention_mask"], tokenizer)


def chat_batch(processor, examples: list[tuple[list[dict], list[Image.Image]]]) -> tuple[dict, torch.Tensor]:
    """Right-padded model inputs for whole chats, each with its images, and their assistant-turn labels."""
    return collate(processor, [encode_chat(processor, chat, images) for chat, images in examples])


def assistant_loss(model, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """Next-token loss on the assistant turn. The vocabulary projection runs only where there is a target (about
    a fifth of the positions): over all positions, it and its softmax took half of each step."""
    hidden = model.model(**inputs).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    has_target = targets != -100
    return torch.nn.functional.cross_entropy(model.lm_head(hidden[has_target]), targets[has_target])


@contextmanager
def torch_threads(count: int | None):
    """`count` intra-op threads inside the block (None = unchanged). One is fastest for tiny tensors: no thread
    hand-off, no spinning when the cores are shared, and float reductions that do not depend on the core count."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

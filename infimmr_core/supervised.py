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


def chat_batch(processor, chats: list[list[dict]], images: list[Image.Image]) -> tuple[dict, torch.Tensor]:
    """Right-padded model inputs for whole chats (the assistant turn included) and their assistant-turn labels."""
    texts = [processor.apply_chat_template(messages, tokenize=False) for messages in chats]
    batch = processor(text=texts, images=images or None, padding=True, padding_side="right", return_tensors="pt")
    return dict(batch), assistant_labels(batch["input_ids"], batch["attention_mask"], processor.tokenizer)


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

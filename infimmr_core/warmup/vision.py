"""Vision pre-warm: before any text training, teach the vision tower to tell apart what images show.

A randomly initialised tiny vision tower gives the language model nothing to read, and supervised text targets alone
do not fix that in minutes: the model answers from the text and ignores the image. So the tower first learns to name
what the image shows (`metadata.image_labels`, read left to right, e.g. its two digits): the token grid is cut into
as many vertical strips as there are labels, each strip's mean token is classified by one throwaway linear head shared
by all strips, so every token comes to carry its class in the same way, wherever it sits. The head is then dropped.
(Scaling the tower's tokens down to the length of the word embeddings afterwards made the language model slower to
read them, not faster: their size is what makes them stand out.)
"""

from __future__ import annotations

import random
from typing import Any, Callable

import torch

from infimmr_core.data.images import decode_image
from infimmr_core.data.schema import Sample


def labelled(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if len(s.images) == 1 and s.metadata.get("image_labels")]


def _pixels(processor, sample: Sample) -> dict[str, torch.Tensor]:
    return processor.image_processor(images=[decode_image(sample.images[0])], return_tensors="pt")


def _token_grids(model, pixels: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """The vision tower's output tokens per image, as (rows, columns, width) grids."""
    device = next(model.parameters()).device
    grid, patches = torch.cat([p["image_grid_thw"] for p in pixels]), torch.cat([p["pixel_values"] for p in pixels])
    out = model.get_image_features(patches.to(device), grid.to(device)).pooler_output
    merge = model.model.visual.spatial_merge_size
    return [tokens.view(int(h) // merge, int(w) // merge, -1) for tokens, (_, h, w) in zip(out, grid.tolist())]


def strips(grid: torch.Tensor, count: int) -> torch.Tensor:
    """The mean token of each of `count` vertical strips of a (rows, columns, width) grid, left to right."""
    columns = grid.shape[1]
    if columns < count:
        raise ValueError(f"vision pre-warm: an image of {columns} token columns cannot show {count} labels side by side")
    bounds = [round(i * columns / count) for i in range(count + 1)]
    return torch.stack([grid[:, lo:hi].mean(dim=(0, 1)) for lo, hi in zip(bounds, bounds[1:])])


def prewarm_vision(
    model, processor, samples: list[Sample], *, steps: int, learning_rate: float, batch_size: int, seed: int,
    log: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Train the vision tower (through a throwaway head) to name each image's labels; returns what it reached."""
    pool = labelled(samples)
    if not pool or steps == 0:
        return {"vision_steps": 0}
    counts = {len(s.metadata["image_labels"]) for s in pool}
    if len(counts) != 1:
        raise ValueError(f"vision pre-warm needs the same number of image_labels per image, got {sorted(counts)}")
    count = counts.pop()
    classes = 1 + max(int(label) for s in pool for label in s.metadata["image_labels"])
    rng = random.Random(seed)
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    head = torch.nn.Linear(model.config.text_config.hidden_size, classes).to(device)
    optimizer = torch.optim.AdamW(list(model.model.visual.parameters()) + list(head.parameters()), lr=learning_rate)
    # Each image preprocessed once, not on every draw (the image processor handles a batch image by image).
    pixels = [_pixels(processor, s) for s in pool]
    model.train()
    accuracy = 0.0
    for step in range(1, steps + 1):
        batch = [rng.randrange(len(pool)) for _ in range(batch_size)]  # the draws rng.choice(pool) made
        labels = torch.tensor([[int(x) for x in pool[i].metadata["image_labels"]] for i in batch], device=device)
        logits = head(torch.stack([strips(g, count) for g in _token_grids(model, [pixels[i] for i in batch])]))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, classes), labels.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        accuracy = (logits.argmax(-1) == labels).float().mean().item()
        if step % 50 == 0 or step == steps:
            log({"stage": "vision", "step": step, "loss": round(loss.item(), 4), "label_accuracy": round(accuracy, 4)})
    return {"vision_steps": steps, "vision_label_accuracy": round(accuracy, 4)}

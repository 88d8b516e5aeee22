"""Model FLOPs of GRPO training passes and the device's peak: model FLOPs utilisation (MFU) of the training part.

Counting follows PaLM's accounting (Chowdhery et al. 2022, appendix B): a trained token costs 6 FLOPs per weight it
meets (forward 2, backward 4) plus 12 * layers * hidden * sequence length for attention; activation recomputation
(gradient checkpointing) is not counted, so MFU says how much of the card the model's own arithmetic uses. Vision
patches cost 6 FLOPs per vision weight (2 when the tower is frozen: no backward through it); the vision tower's
windowed attention is left out (a few percent of its cost at 0.5 MP).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

# Dense bf16 tensor-core peaks from NVIDIA's datasheets (no sparsity), in TFLOP/s; first substring of the device name
# wins, so the more specific names come first.
GPU_PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H800", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.05),
    ("L40", 181.05),
    ("L4", 121.0),
)
PEAK_ENV = "INFIMMR_PEAK_TFLOPS"  # a peak for a card the table does not know (or to compare against another figure)


@dataclass(frozen=True)
class ModelShape:
    text_layers: int
    text_hidden: int
    text_params: int  # weights a text token meets, the output projection included (the input embedding is a lookup)
    vision_params: int
    vision_trainable: bool


def model_shape(model) -> ModelShape:
    """The counts of a Qwen2.5-VL-style model (any wrapper whose parameter names keep `visual` / `embed_tokens`)."""
    config = model.config
    text = getattr(config, "text_config", config)
    text_params = vision_params = 0
    vision_trainable = False
    for name, parameter in model.named_parameters():
        if ".visual." in f".{name}":
            vision_params += parameter.numel()
            vision_trainable |= parameter.requires_grad
        elif "embed_tokens" not in name:
            text_params += parameter.numel()
    if getattr(config, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False):
        text_params += text.vocab_size * text.hidden_size  # the tied head is one tensor, listed once as the embedding
    return ModelShape(text.num_hidden_layers, text.hidden_size, text_params, vision_params, vision_trainable)


def training_flops(shape: ModelShape, sequence_lengths: list[int], image_patches: int) -> float:
    """Model FLOPs of one forward + backward over these sequences (valid tokens each) and image patches."""
    tokens = sum(sequence_lengths)
    attention = 12 * shape.text_layers * shape.text_hidden * sum(n * n for n in sequence_lengths)
    vision = (6 if shape.vision_trainable else 2) * shape.vision_params * image_patches
    return 6.0 * shape.text_params * tokens + attention + vision


def datasheet_peak(device_name: str) -> float | None:
    """FLOP/s of a known card's dense bf16 tensor cores, or None."""
    for fragment, tflops in GPU_PEAK_BF16_TFLOPS:
        if fragment.lower() in device_name.lower():
            return tflops * 1e12
    return None


def measured_peak(device: torch.device, dtype: torch.dtype, seconds: float = 0.25) -> float:
    """FLOP/s of repeated square matmuls: the practical peak of a device no datasheet row covers (a CPU, say)."""
    n = 4096 if device.type == "cuda" else 512
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)  # warm-up: kernels chosen, memory allocated
    _sync(device)
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 3:
        torch.matmul(a, b)
        runs += 1
        _sync(device)
    return 2.0 * n**3 * runs / elapsed


def device_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(FLOP/s, where the figure comes from): the environment's override, the datasheet, or a measurement."""
    if os.environ.get(PEAK_ENV):
        return float(os.environ[PEAK_ENV]) * 1e12, f"${PEAK_ENV}"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if dtype == torch.bfloat16 and (peak := datasheet_peak(name)) is not None:
            return peak, f"datasheet ({name}, dense bf16)"
    return measured_peak(device, dtype), f"measured ({str(dtype).removeprefix('torch.')} matmul)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

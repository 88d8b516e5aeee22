"""The models the GPU check trains: Qwen2.5-VL-3B's architecture at full size with random bf16 weights (its published
config.json, built locally: nothing is downloaded), or the tiny offline model (`--tiny`, CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

# Qwen2.5-VL-3B-Instruct's config.json: text 36 x 2048 (GQA 16/2 heads), vision 32 x 1280, tied embeddings.
QWEN25_VL_3B_TEXT = {
    "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
    "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
QWEN25_VL_3B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "window_size": 112,
}
# The tiny model's processor files: its tokenizer's ids all fall inside the 3B vocabulary, so they serve both.
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja",
                   "generation_config.json")
TOKEN_IDS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def tiny_model(out_dir: Path) -> Path:
    """The tiny Qwen2.5-VL, not warm-started: the check measures speed, not learning."""
    from infimmr_core.tiny_model import build_tiny_model

    return build_tiny_model(out_dir, seed=0, warm_start_steps=0)


def qwen3b_config(tiny_dir: Path):
    """Qwen2.5-VL-3B's config with the tiny tokenizer's special-token ids."""
    from transformers import Qwen2_5_VLConfig

    tiny = json.loads((tiny_dir / "config.json").read_text())
    return Qwen2_5_VLConfig(
        text_config=QWEN25_VL_3B_TEXT | {k: tiny["text_config"][k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
        vision_config=QWEN25_VL_3B_VISION,
        **{k: tiny[k] for k in TOKEN_IDS},
        tie_word_embeddings=True,
    )


def qwen3b_shaped_model(tiny_dir: Path, out_dir: Path, device: str) -> Path:
    """Qwen2.5-VL-3B's architecture with random bf16 weights, saved with the tiny model's processor."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(qwen3b_config(tiny_dir)).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    for name in PROCESSOR_FILES:
        shutil.copy2(tiny_dir / name, out_dir / name)
    return out_dir

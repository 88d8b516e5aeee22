"""One phase on a GPU with a Qwen2.5-VL-3B-shaped model (random weights, bf16): a few real GRPO steps, reporting step
time, tokens/s and peak memory. Runs only where CUDA is available (`make test-slow` on a GPU machine)."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# Qwen2.5-VL-3B-Instruct's published config.json (text 36 x 2048, GQA 16/2, vision 32 x 1280); no weights download.
QWEN25_VL_3B_TEXT = {
    "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
    "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
QWEN25_VL_3B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "window_size": 112,
}


def qwen3b_shaped_model(tiny_model_dir, out_dir):
    """The 3B architecture at full size with random bf16 weights, using the tiny model's tokenizer and processor
    (their ids all fall inside the 3B vocabulary)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tiny = json.loads((tiny_model_dir / "config.json").read_text())
    config = Qwen2_5_VLConfig(
        text_config=QWEN25_VL_3B_TEXT | {k: tiny["text_config"][k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
        vision_config=QWEN25_VL_3B_VISION,
        **{k: tiny[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")},
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja",
                 "generation_config.json"):
        shutil.copy2(tiny_model_dir / name, out_dir / name)
    return out_dir


def test_phase3_steps_on_gpu(tmp_path, tiny_model_dir):
    from test_phase_inputs import phase_run  # pytest puts tests/ on sys.path

    from infimmr_core.grpo_phase import build_trainer, reward_pool, summarise

    model_dir = qwen3b_shaped_model(tiny_model_dir, tmp_path / "qwen3b-random")
    run = phase_run(
        tmp_path, model_dir, 3, max_steps=3, max_completion_length=256, num_generations=4,
        per_device_train_batch_size=4, bf16=True, gradient_checkpointing=True, max_pixels=401408, min_pixels=3136,
    ).model_copy(update={"device": "cuda"})
    torch.cuda.reset_peak_memory_stats()
    with reward_pool(run.recipe.rewards) as pool:
        trainer, _, _ = build_trainer(run, pool)
        trainer.train()
    steps = [h for h in trainer.state.log_history if "loss" in h]
    summary = summarise(trainer.state.log_history)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    print(f"\n[gpu] {torch.cuda.get_device_name()}: step_time={[h['step_time'] for h in steps]} s, "
          f"tokens/s={[h.get('tokens_per_second') for h in steps]}, peak={peak_gib:.1f} GiB, summary={summary}")
    assert len(steps) == 3 and all(h["step_time"] > 0 for h in steps)

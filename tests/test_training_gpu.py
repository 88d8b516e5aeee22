"""One phase on a GPU with a Qwen2.5-VL-3B-shaped model (random weights, bf16): a few real GRPO steps, reporting step
time, tokens/s and peak memory. Runs only where CUDA is available (`make test-slow` on a GPU machine)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_phase3_steps_on_gpu(tmp_path, tiny_model_dir):
    from test_phase_inputs import phase_run  # pytest puts tests/ on sys.path

    from infimmr_core.gpucheck.shapes import qwen3b_shaped_model  # the GPU check's model: one definition
    from infimmr_core.grpo_phase import build_trainer, reward_pool, summarise

    model_dir = qwen3b_shaped_model(tiny_model_dir, tmp_path / "qwen3b-random", "cuda")
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

"""Every logged GRPO step says where its time went (generation / reward / log-probabilities / forward-backward /
optimizer / other) and the model FLOPs utilisation of its training part: the pure accounting as tables, then a real
phase-2 run on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from infimmr_core.flops import ModelShape, datasheet_peak, model_shape, training_flops
from infimmr_core.step_timing import PARTS, split, step_metrics

RAW = {"generation": 2.0, "reward": 1.0, "prepare": 4.0, "training_step": 10.0, "optimizer": 1.0}


def test_nested_timers_split_into_exclusive_parts():
    assert split(RAW) == {"generation": 2.0, "reward": 1.0, "logprobs": 1.0, "forward_backward": 6.0, "optimizer": 1.0}


def test_step_metrics_are_per_step_and_mfu_is_the_training_part_against_the_peak():
    metrics = step_metrics(RAW, flops=7e12, steps=2, wall=14.0, peak=2e12)
    assert metrics == {
        "seconds/generation": 1.0, "seconds/reward": 0.5, "seconds/logprobs": 0.5, "seconds/forward_backward": 3.0,
        "seconds/optimizer": 0.5, "seconds/other": 1.5, "seconds/step": 7.0,  # 14 s - 11 s timed, over 2 steps
        "model_tflops_per_second": 1.0,  # 7e12 FLOPs over 6 + 1 s of training
        "mfu": 0.5,
    }


@pytest.mark.parametrize(
    ("shape", "lengths", "patches", "flops"),
    [
        (ModelShape(2, 4, 100, 0, False), [3], 0, 6 * 100 * 3 + 12 * 2 * 4 * 9),
        (ModelShape(2, 4, 100, 0, False), [1, 2], 0, 6 * 100 * 3 + 12 * 2 * 4 * (1 + 4)),
        (ModelShape(1, 1, 10, 50, True), [1], 4, 60 + 12 + 6 * 50 * 4),
        (ModelShape(1, 1, 10, 50, False), [1], 4, 60 + 12 + 2 * 50 * 4),  # frozen tower: forward only
    ],
)
def test_training_flops(shape, lengths, patches, flops):
    assert training_flops(shape, lengths, patches) == flops


@pytest.mark.parametrize(
    ("name", "tflops"),
    [("NVIDIA H200", 989.4), ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
     ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.05), ("NVIDIA L4", 121.0), ("Tesla T4", None)],
)
def test_datasheet_peaks(name, tflops):
    assert datasheet_peak(name) == (tflops * 1e12 if tflops else None)


def test_model_shape_of_the_tiny_model(tiny_model_dir):
    from infimmr_core.models import load_model

    model = load_model(tiny_model_dir)
    shape = model_shape(model)
    text = model.config.text_config
    visual = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    embedding = model.get_input_embeddings().weight.numel()
    head = 0 if model.config.tie_word_embeddings else model.get_output_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    assert shape.vision_params == visual and shape.vision_trainable
    assert shape.text_params == total - visual - embedding - head + text.vocab_size * text.hidden_size
    assert (shape.text_layers, shape.text_hidden) == (text.num_hidden_layers, text.hidden_size)


def test_every_logged_step_carries_the_split_and_mfu(tmp_path, tiny_model_dir, monkeypatch):
    from test_phase_inputs import phase_run  # pytest puts tests/ on sys.path

    from infimmr_core.grpo_phase import build_trainer, reward_pool, summarise

    monkeypatch.setenv("INFIMMR_PEAK_TFLOPS", "0.05")  # a stated peak, so MFU is exactly achieved / peak
    run = phase_run(tmp_path, tiny_model_dir, 2, max_steps=2, max_completion_length=8, num_generations=2,
                    per_device_train_batch_size=2, logging_steps=1)
    with reward_pool(run.recipe.rewards) as pool:
        trainer, _, _ = build_trainer(run, pool)
        trainer.train()
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for entry in steps:
        parts = {part: entry[f"seconds/{part}"] for part in (*PARTS, "other")}
        assert all(seconds >= 0 for seconds in parts.values())
        assert parts["generation"] > 0 and parts["reward"] > 0 and parts["forward_backward"] > 0
        assert parts["optimizer"] > 0
        assert sum(parts.values()) == pytest.approx(entry["seconds/step"], abs=1e-3)
        assert entry["model_tflops_per_second"] > 0
        assert entry["mfu"] == pytest.approx(entry["model_tflops_per_second"] / 0.05, rel=0.01)  # both rounded
    json.dumps(trainer.state.log_history)  # what metrics.jsonl and the checkpoints keep
    summary = summarise(trainer.state.log_history)
    assert summary["mfu"] > 0 and set(summary["seconds_per_step"]) == {*PARTS, "other", "step"}


def test_cpu_peak_is_measured_when_no_datasheet_applies(monkeypatch):
    from infimmr_core.flops import device_peak

    monkeypatch.delenv("INFIMMR_PEAK_TFLOPS", raising=False)
    peak, source = device_peak(torch.device("cpu"), torch.float32)
    assert peak > 1e8 and source == "measured (float32 matmul)"

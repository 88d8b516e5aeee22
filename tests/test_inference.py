"""The generation interface on the transformers backend, and the warm-started tiny model's rollouts."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil

import pytest
from PIL import Image

from infimmr_core.inference import GenerationRequest, SamplingSpec, TransformersGenerator, make_generator

# LMM-R1's strict format: one think block, then one answer block, nothing around them.
ANSWER_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def _question(text: str, image: Image.Image | None = None) -> GenerationRequest:
    parts = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return GenerationRequest(messages=[{"role": "user", "content": parts}], images=[image] if image else [])


REQUESTS = [
    _question("What is 2 + 5?"),
    _question("What is 1 + 1?", Image.new("RGB", (90, 70), (200, 10, 10))),
    _question("Find the area of the shaded region.", Image.new("RGB", (60, 120), (10, 200, 10))),
]


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    """The tiny model's matmuls are too small to split: with two threads on shared CI cores, waiting for the
    busy core made generation up to 40x slower than one thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    # batch_size 2 over three requests: several batches, text-only and image prompts mixed in one batch.
    return make_generator("transformers", tiny_model_dir, device="cpu", batch_size=2)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_n_texts_per_request(generator, temperature):
    outputs = generator.generate(REQUESTS, SamplingSpec(n=3, temperature=temperature, max_new_tokens=16))
    assert len(outputs) == len(REQUESTS)
    assert all(len(texts) == 3 and all(isinstance(text, str) for text in texts) for texts in outputs)


def test_greedy_is_deterministic(generator):
    spec = SamplingSpec(n=2, temperature=0.0, max_new_tokens=24)
    first = generator.generate(REQUESTS, spec)
    assert generator.generate(REQUESTS, spec) == first
    assert all(texts[0] == texts[1] for texts in first)
    assert not any("<|im_end|>" in text or "<|endoftext|>" in text for texts in first for text in texts)


def test_sampling_is_reproducible_by_seed(generator):
    spec = SamplingSpec(n=4, temperature=1.0, max_new_tokens=24, seed=7)
    first = generator.generate(REQUESTS, spec)
    assert generator.generate(REQUESTS, spec) == first
    assert generator.generate(REQUESTS, SamplingSpec(n=4, temperature=1.0, max_new_tokens=24, seed=8)) != first


def test_image_count_must_match_image_parts(generator):
    request = _question("What is 1 + 1?", Image.new("RGB", (56, 56)))
    with pytest.raises(ValueError, match="1 image part"):
        generator.generate([GenerationRequest(messages=request.messages, images=[])], SamplingSpec())


def test_sampling_ignores_checkpoint_decoding_defaults(tiny_model_dir, tmp_path):
    """Qwen2.5-VL checkpoints ship near-greedy decoding defaults (top_k=1) and a repetition penalty (1.05, made
    large here to be visible on a tiny model); the spec's decoding must win over both."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "generation_config.json").read_text())
    config |= {"do_sample": True, "temperature": 1e-6, "top_k": 1, "top_p": 0.001, "repetition_penalty": 5.0}
    (model_dir / "generation_config.json").write_text(json.dumps(config))
    generator = TransformersGenerator(model_dir, device="cpu")
    texts = generator.generate(REQUESTS[:1], SamplingSpec(n=8, temperature=1.0, max_new_tokens=24))[0]
    assert len(set(texts)) > 1
    reference = TransformersGenerator(tiny_model_dir, device="cpu")
    greedy = SamplingSpec(n=1, temperature=0.0, max_new_tokens=24)
    assert generator.generate(REQUESTS, greedy) == reference.generate(REQUESTS, greedy)  # no repetition penalty


def test_unknown_backend_is_rejected(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown generation backend"):
        make_generator("onnx", tiny_model_dir)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_backend_without_vllm_says_so(tiny_model_dir):
    with pytest.raises(ImportError, match="vllm"):
        make_generator("vllm", tiny_model_dir)


def test_warm_started_rollouts_have_varying_rewards(generator):
    """GRPO learns only from reward differences within a group: the tiny model must produce the answer format
    in some samples but not all, and now and then the right sum."""
    rng = random.Random(0)
    sums = [(rng.randrange(10), rng.randrange(10)) for _ in range(16)]
    requests = [
        _question(f"What is {a} + {b}?", Image.new("RGB", (56, 84), (a * 25, b * 25, 90)) if i % 2 else None)
        for i, (a, b) in enumerate(sums)
    ]
    outputs = generator.generate(requests, SamplingSpec(n=8, temperature=1.0, max_new_tokens=48, seed=0))
    formats = [[bool(ANSWER_FORMAT.fullmatch(text.strip())) for text in texts] for texts in outputs]
    correct = [
        f"\\boxed{{{a + b}}}</answer>" in text for (a, b), texts in zip(sums, outputs) for text in texts
    ]
    format_rate = sum(map(sum, formats)) / (8 * len(requests))
    assert 0.15 <= format_rate <= 0.85, format_rate
    assert sum(len(set(group)) > 1 for group in formats) >= len(requests) // 2  # variance within most groups
    assert any(correct)

"""The offline tiny Qwen2.5-VL, the torchvision-free processor, and model resolution."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from PIL import Image

from infimmr_core import tiny_model
from infimmr_core.models import load_model, load_processor, resolve_model
from infimmr_core.tiny_model import TINY_MAX_PIXELS, build_tiny_model

IMAGE_QUESTION = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is 3 + 4?"}]}]


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_build_is_deterministic(tmp_path):
    # A short warm start exercises the same code (text and image batches) at a fraction of the full build's time.
    first = build_tiny_model(tmp_path / "first", seed=0, warm_start_steps=12)
    second = build_tiny_model(tmp_path / "second", seed=0, warm_start_steps=12)
    assert _sha256(first / "model.safetensors") == _sha256(second / "model.safetensors")
    for name in ("tokenizer.json", "config.json", "processor_config.json", "chat_template.jinja"):
        assert (first / name).read_text() == (second / name).read_text(), name


def test_seed_changes_the_weights(tmp_path):
    first = build_tiny_model(tmp_path / "a", seed=1, warm_start_steps=0)
    second = build_tiny_model(tmp_path / "b", seed=2, warm_start_steps=0)
    assert _sha256(first / "model.safetensors") != _sha256(second / "model.safetensors")


def test_tiny_model_loads_back(tiny_model_dir):
    model = load_model(tiny_model_dir)
    processor = load_processor(tiny_model_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert not model.training
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (64, 2, 4, 2)
    assert sum(text.rope_parameters["mrope_section"]) == text.hidden_size // text.num_attention_heads // 2
    assert model.config.vision_config.out_hidden_size == text.hidden_size
    assert text.vocab_size == len(processor.tokenizer)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert model.config.image_token_id == processor.image_token_id


def test_special_tokens_follow_qwen_order(tiny_model_dir):
    tokenizer = load_processor(tiny_model_dir).tokenizer
    ids = tokenizer.convert_tokens_to_ids(list(tiny_model.QWEN_SPECIAL_TOKENS))
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[-1] == len(tokenizer) - 1
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")


def test_chat_template_renders_qwen_format(tiny_model_dir):
    processor = load_processor(tiny_model_dir)
    rendered = processor.apply_chat_template(IMAGE_QUESTION, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is 3 + 4?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Think first."}, *IMAGE_QUESTION]
    rendered = processor.apply_chat_template(with_system, tokenize=False, add_generation_prompt=False)
    assert rendered.startswith("<|im_start|>system\nThink first.<|im_end|>\n<|im_start|>user\n")
    assert rendered.endswith("<|im_end|>\n")


def test_image_pad_tokens_match_the_vision_grid(tiny_model_dir):
    processor = load_processor(tiny_model_dir)
    prompt = processor.apply_chat_template(IMAGE_QUESTION, tokenize=False, add_generation_prompt=True)
    images = [Image.new("RGB", (100, 60), "red"), Image.new("RGB", (300, 200), "blue")]
    batch = processor(text=[prompt, prompt], images=images, padding=True, return_tensors="pt")
    assert {"pixel_values", "image_grid_thw"} <= set(batch)
    merge = processor.image_processor.merge_size
    pads = (batch["input_ids"] == processor.image_token_id).sum(dim=1)
    expected = batch["image_grid_thw"].prod(dim=1) // merge**2
    assert pads.tolist() == expected.tolist()
    assert batch["pixel_values"].shape[0] == batch["image_grid_thw"].prod(dim=1).sum()
    # The tiny defaults keep images small: at most max_pixels / (28 * 28) vision tokens each.
    assert expected.max() <= TINY_MAX_PIXELS // (28 * 28)


def _image_pad_count(processor, image) -> int:
    prompt = processor.apply_chat_template(IMAGE_QUESTION, tokenize=False, add_generation_prompt=True)
    batch = processor(text=[prompt], images=[image], return_tensors="pt")
    return int((batch["input_ids"] == processor.image_token_id).sum())


def test_pixel_bounds_override_without_touching_class_defaults(tiny_model_dir):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    class_default = dict(Qwen2VLImageProcessorPil.size)
    image = Image.new("RGB", (640, 480))
    capped = load_processor(tiny_model_dir, min_pixels=28 * 28, max_pixels=28 * 28 * 4)
    assert 1 <= _image_pad_count(capped, image) <= 4 < _image_pad_count(load_processor(tiny_model_dir), image)
    assert Qwen2VLImageProcessorPil.size == class_default


def test_load_processor_reads_a_real_checkpoint_layout(tiny_model_dir, tmp_path):
    """Hub snapshots of Qwen2.5-VL keep the image settings in preprocessor_config.json (min/max_pixels) and the
    template in the legacy chat_template.json; recreate that layout from the tiny model."""
    snapshot = tmp_path / "snapshot"
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot / "processor_config.json").unlink()
    template = (snapshot / "chat_template.jinja").read_text()
    (snapshot / "chat_template.jinja").unlink()
    (snapshot / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    (snapshot / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
    }))
    processor = load_processor(snapshot)
    assert (processor.image_processor.size.shortest_edge, processor.image_processor.size.longest_edge) == (3136, 12845056)
    assert "<|image_pad|>" in processor.apply_chat_template(IMAGE_QUESTION, tokenize=False)
    assert load_processor(snapshot, max_pixels=50176).image_processor.size.longest_edge == 50176


def test_resaved_processor_loads_and_names_the_real_video_processor(tiny_model_dir, tmp_path):
    # Training saves the processor it loaded; naming the real video processor lets AutoProcessor load the
    # directory wherever torchvision exists (GPU / vLLM).
    load_processor(tiny_model_dir, max_pixels=28 * 28 * 16).save_pretrained(tmp_path)
    for directory in (tiny_model_dir, tmp_path):
        saved = json.loads((directory / "processor_config.json").read_text())
        assert saved["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    reloaded = load_processor(tmp_path)
    assert reloaded.image_processor.size.longest_edge == 28 * 28 * 16
    assert reloaded.apply_chat_template(IMAGE_QUESTION, tokenize=False) == load_processor(
        tiny_model_dir
    ).apply_chat_template(IMAGE_QUESTION, tokenize=False)


@pytest.fixture
def fake_tiny_build(monkeypatch, tiny_model_dir):
    """Replace the ~10 s build with a copy of the session's tiny model, counting calls."""
    calls = []

    def fake_build(out_dir, seed=0, warm_start_steps=300):
        calls.append(seed)
        shutil.copytree(tiny_model_dir, out_dir, dirs_exist_ok=True)
        return out_dir

    monkeypatch.setattr(tiny_model, "build_tiny_model", fake_build)
    return calls


def test_resolve_tiny_builds_once_and_reuses(fake_tiny_build, tmp_path):
    first = resolve_model("tiny", None, tmp_path, seed=3)
    second = resolve_model("tiny", None, tmp_path, seed=3)
    assert first == second
    assert first.name.startswith("tiny-seed3-")
    assert fake_tiny_build == [3]
    assert sorted(path.name for path in tmp_path.iterdir()) == [first.name]  # no staging leftovers


def test_resolve_tiny_crash_leaves_nothing_behind(monkeypatch, tmp_path):
    def crashing_build(out_dir, seed=0, warm_start_steps=300):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny_model, "build_tiny_model", crashing_build)
    with pytest.raises(RuntimeError, match="boom"):
        resolve_model("tiny", None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_resolve_tiny_rebuilds_a_damaged_entry(fake_tiny_build, tmp_path):
    target = resolve_model("tiny", None, tmp_path)
    (target / "model.safetensors").unlink()
    assert resolve_model("tiny", None, tmp_path) == target
    assert (target / "model.safetensors").is_file()
    assert len(fake_tiny_build) == 2


def test_resolve_local_directory_is_itself(tiny_model_dir, tmp_path):
    assert resolve_model(str(tiny_model_dir), None, tmp_path) == tiny_model_dir


def test_resolve_unknown_model_offline_names_it(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never touch the network from tests
    with pytest.raises(RuntimeError, match="infimmr-test/not-a-model"):
        resolve_model("infimmr-test/not-a-model", "main", tmp_path)

"""Model and processor loading for any Qwen2.5-VL directory (real or tiny), without torchvision, and name
resolution: "tiny" (built offline by `tiny_model`), a local directory, or a Hub id."""

from __future__ import annotations

from pathlib import Path

import torch

# ---------------------------------------------------------------------------------------------------------------
# Processor without torchvision
# ---------------------------------------------------------------------------------------------------------------

# Qwen2-VL's own image-size defaults, spelled out because the PIL image processor's class-level `size` dict is
# mutated in place by any constructor call that passes min_pixels/max_pixels (transformers 5.17).
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280


def _no_video_processor():
    """A video processor that refuses video: the pipeline is image-only and the real one needs torchvision."""
    from transformers.video_processing_utils import BaseVideoProcessor

    class NoVideoProcessor(BaseVideoProcessor):
        merge_size = 2

        def __call__(self, videos=None, **kwargs):
            if videos is not None:
                raise NotImplementedError("video input is not supported without torchvision")
            return {}

        def to_dict(self):
            # Saved processors name the real Qwen2-VL video processor, so wherever torchvision exists (the
            # GPU/vLLM side) plain AutoProcessor loads them instead of looking for this stand-in.
            return super().to_dict() | {"video_processor_type": "Qwen2VLVideoProcessor"}

    return NoVideoProcessor()


def _expose_real_video_base_class() -> None:
    """Let ProcessorMixin's type check accept a BaseVideoProcessor subclass when torchvision is missing.

    Without torchvision, `transformers.BaseVideoProcessor` is a dummy placeholder, so the processor's check
    `isinstance(video_processor, transformers.BaseVideoProcessor)` fails for every real subclass. The check
    resolves the name on two module objects (the package and processing_utils' lazy copy): patch both.
    """
    import transformers
    from transformers import processing_utils
    from transformers.video_processing_utils import BaseVideoProcessor

    for module in (transformers, processing_utils.transformers_module):
        setattr(module, "BaseVideoProcessor", BaseVideoProcessor)


def _first_set(*values):
    return next(value for value in values if value is not None)


def _image_processor_with_fresh_size(config: dict, min_pixels: int | None, max_pixels: int | None):
    """PIL Qwen2-VL image processor from a saved config, pixel bounds resolved explicitly.

    Real checkpoints store bounds as min_pixels/max_pixels, newer saves as size; explicit arguments win. The
    result is always passed as a fresh `size` dict so the constructor never writes to the class default.
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    config = dict(config)
    saved_size = config.pop("size", None) or {}
    saved_min, saved_max = config.pop("min_pixels", None), config.pop("max_pixels", None)
    config["size"] = {
        "shortest_edge": _first_set(min_pixels, saved_min, saved_size.get("shortest_edge"), QWEN_MIN_PIXELS),
        "longest_edge": _first_set(max_pixels, saved_max, saved_size.get("longest_edge"), QWEN_MAX_PIXELS),
    }
    return Qwen2VLImageProcessorPil.from_dict(config)


def make_processor(image_processor, tokenizer, processor_config: dict | None = None):
    # transformers' processor, but a batch of repeated prompts (GRPO's completions) is processed once per prompt.
    from infimmr_core.repeated_prompts import Qwen2_5_VLProcessor

    _expose_real_video_base_class()
    return Qwen2_5_VLProcessor.from_args_and_dict(
        [image_processor, tokenizer, _no_video_processor()], processor_config or {}
    )


def load_processor(model_dir, min_pixels: int | None = None, max_pixels: int | None = None):
    """Qwen2.5-VL processor for any Qwen2.5-VL directory (tiny or real), built without torchvision."""
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    model_dir = str(model_dir)
    image_config, _ = Qwen2VLImageProcessorPil.get_image_processor_dict(model_dir)
    image_processor = _image_processor_with_fresh_size(image_config, min_pixels, max_pixels)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # Carries the chat template (chat_template.jinja or the legacy chat_template.json of real snapshots).
    processor_config, _ = Qwen2_5_VLProcessor.get_processor_dict(model_dir)
    return make_processor(image_processor, tokenizer, processor_config)


def load_model(model_dir, device: str = "cpu", dtype: str = "float32"):
    """Qwen2.5-VL for conditional generation, in eval mode on `device`."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------------------
# Resolving a model name to a local directory
# ---------------------------------------------------------------------------------------------------------------

TINY = "tiny"


def _download(repo_id: str, revision: str | None, cache_dir: Path) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir))
    except (OSError, HfHubHTTPError) as error:
        raise RuntimeError(
            f"Cannot get model {repo_id!r} (revision {revision or 'default'}): it is not a local directory, "
            f"not in the cache at {cache_dir}, and the Hugging Face Hub could not provide it ({error}). "
            f"Offline? Use a local model directory or {TINY!r}."
        ) from error


def resolve_model(
    name_or_path: str, revision: str | None, cache_dir: str | Path, seed: int = 0, tiny: dict | None = None
) -> Path:
    """Local directory for a model: "tiny" (built offline, of shape `tiny`), an existing directory, or a Hub repo id."""
    cache_dir = Path(cache_dir)
    if name_or_path == TINY:
        # Imported only here: the builder is part of a stage's code only for recipes that build the tiny model
        # (see stages.CONDITIONAL_CODE), so editing it never touches the keys of a real recipe.
        from infimmr_core.tiny_model import cached_tiny_model

        return cached_tiny_model(cache_dir, seed, tiny)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return local
    return _download(name_or_path, revision, cache_dir)

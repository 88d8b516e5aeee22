"""One generation interface over two backends: transformers (CPU or GPU) and vLLM (GPU only).

Both render prompts with the model directory's own chat template, so a request means the same thing to each.
torch and the model code are imported where a generator is built or runs, not here: stages that only use the request
types (the curate merge, through curation's modules) or resolve a named device must not pay for them (issue 15).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image


@dataclass
class GenerationRequest:
    # Chat messages; user content is a list of parts {"type": "text", "text": ...} / {"type": "image"}.
    messages: list[dict]
    # One image per {"type": "image"} part, in order of appearance.
    images: list[Image.Image] = field(default_factory=list)


@dataclass
class SamplingSpec:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0


class Generator(Protocol):
    def generate(self, requests: list[GenerationRequest], sampling: SamplingSpec) -> list[list[str]]:
        """`sampling.n` completions per request, in request order."""
        ...


def _count_image_parts(messages: list[dict]) -> int:
    return sum(
        1
        for message in messages
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part.get("type") == "image"
    )


def _check_images_match(request: GenerationRequest) -> None:
    # A mismatch otherwise surfaces deep in the processor as a token/feature count error.
    expected = _count_image_parts(request.messages)
    if expected != len(request.images):
        raise ValueError(f"request has {expected} image part(s) but {len(request.images)} image(s)")


def _render_prompt(processor, request: GenerationRequest) -> str:
    _check_images_match(request)
    return processor.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; any other value as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class TransformersGenerator:
    """Batched `model.generate` with left padding; reproducible for a given seed and batch size."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 8,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ):
        from infimmr_core.models import load_model, load_processor

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.processor = load_processor(model_dir, min_pixels=min_pixels, max_pixels=max_pixels)
        # bf16 halves memory and is what the GPU kernels are fast at; CPU bf16 is slow, so stay in fp32 there.
        dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.model = load_model(model_dir, device=self.device, dtype=dtype)

    @classmethod
    def from_loaded(cls, model, processor, *, device: str, batch_size: int = 8) -> TransformersGenerator:
        """A generator over a model already in memory (e.g. one being trained), sharing its weights."""
        generator = cls.__new__(cls)
        generator.device, generator.batch_size, generator.processor, generator.model = device, batch_size, processor, model
        return generator

    def generate(self, requests: list[GenerationRequest], sampling: SamplingSpec) -> list[list[str]]:
        import torch

        completions: list[list[str]] = []
        for index, start in enumerate(range(0, len(requests), self.batch_size)):
            # Seeding per batch makes a batch's samples independent of how many batches ran before it.
            torch.manual_seed(sampling.seed + index)
            completions += self._generate_batch(requests[start : start + self.batch_size], sampling)
        return completions

    def _generate_batch(self, requests: list[GenerationRequest], sampling: SamplingSpec) -> list[list[str]]:
        import torch

        inputs = self._encode(requests)
        greedy = sampling.temperature == 0
        # Greedy decoding gives n identical texts: compute one and repeat it (generate refuses n > 1 greedy).
        per_request = 1 if greedy else sampling.n
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, **self._decoding_options(sampling), num_return_sequences=per_request
            )
        texts = self.processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        grouped = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
        return [group * sampling.n for group in grouped] if greedy else grouped

    def _encode(self, requests: list[GenerationRequest]):
        prompts = [_render_prompt(self.processor, request) for request in requests]
        images = [image for request in requests for image in request.images]
        inputs = self.processor(
            text=prompts, images=images or None, padding=True, padding_side="left", return_tensors="pt"
        )
        return inputs.to(self.device)

    def _decoding_options(self, sampling: SamplingSpec) -> dict:
        # Everything the spec leaves out is pinned to "off": transformers otherwise fills gaps from the
        # checkpoint's generation_config (Qwen2.5-VL ships top_k=1, repetition_penalty=1.05) or its own
        # defaults (top_k=50), silently changing the distribution the spec (and vLLM) describes.
        options = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": self.processor.tokenizer.pad_token_id,
            "repetition_penalty": 1.0,
        }
        if sampling.temperature == 0:
            return options | {"do_sample": False}
        return options | {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}


class VLLMGenerator:
    """vLLM offline engine (GPU only). vLLM batches internally, so there is no batch size here."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_images_per_prompt: int = 4,
        seed: int = 0,
    ):
        from infimmr_core.models import load_processor

        vllm = _import_vllm()
        # Only renders prompts (the same template as the transformers backend); vLLM resizes images itself,
        # within the bounds passed as mm_processor_kwargs below.
        self.processor = load_processor(model_dir)
        pixel_bounds = {"min_pixels": min_pixels, "max_pixels": max_pixels}
        self.sampling_params_class = vllm.SamplingParams
        self.llm = vllm.LLM(
            model=str(model_dir),
            limit_mm_per_prompt={"image": max_images_per_prompt},
            mm_processor_kwargs={key: value for key, value in pixel_bounds.items() if value is not None} or None,
            seed=seed,
        )

    def generate(self, requests: list[GenerationRequest], sampling: SamplingSpec) -> list[list[str]]:
        prompts = [self._prompt(request) for request in requests]
        greedy = sampling.temperature == 0
        # One seed per request: identical prompts still get different samples, and results do not depend on
        # how vLLM schedules the batch.
        params = [
            self.sampling_params_class(
                n=1 if greedy else sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                seed=sampling.seed + index,
            )
            for index in range(len(requests))
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        texts = [[completion.text for completion in output.outputs] for output in outputs]
        return [group * sampling.n for group in texts] if greedy else texts

    def _prompt(self, request: GenerationRequest) -> dict:
        prompt = {"prompt": _render_prompt(self.processor, request)}
        if request.images:
            prompt["multi_modal_data"] = {"image": list(request.images)}
        return prompt


def _import_vllm():
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
            "the 'vllm' backend needs vLLM, a GPU-only dependency: install the project's 'gpu' extra on a CUDA "
            "machine, or use backend='transformers'"
        ) from error
    return vllm


def make_generator(
    backend: Literal["transformers", "vllm"],
    model_dir: str | Path,
    *,
    device: str = "auto",
    batch_size: int = 8,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    max_images_per_prompt: int = 4,
) -> Generator:
    """A generator for `backend`. vLLM picks its own device and batching, so `device`/`batch_size` apply to
    transformers only; `max_images_per_prompt` sizes vLLM's multimodal budget and is unused by transformers."""
    if backend == "transformers":
        return TransformersGenerator(
            model_dir, device=device, batch_size=batch_size, min_pixels=min_pixels, max_pixels=max_pixels
        )
    if backend == "vllm":
        return VLLMGenerator(
            model_dir, min_pixels=min_pixels, max_pixels=max_pixels, max_images_per_prompt=max_images_per_prompt
        )
    raise ValueError(f"unknown generation backend {backend!r}: expected 'transformers' or 'vllm'")

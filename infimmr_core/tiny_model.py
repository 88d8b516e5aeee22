"""An offline tiny Qwen2.5-VL for tests and CPU smoke runs.

The tiny model is built from scratch (tokenizer, config, weights, processor) so that nothing is ever
downloaded, and is briefly warm-started so that GRPO sees rewards that vary between samples.
"""

from __future__ import annotations

import fcntl
import json
import random
import shutil
import tempfile
from pathlib import Path

import torch
from PIL import Image

from infimmr_core.keys import code_closure, code_hash
from infimmr_core.models import make_processor
from infimmr_core.supervised import assistant_loss, chat_batch, torch_threads

# Qwen's special tokens, in the order (and hence relative ids) the real Qwen2.5 vocab uses.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Same rendering as Qwen2.5-VL's own template: a default system turn, one <|im_start|>/<|im_end|> block per
# message, and each image (or video) part replaced by a vision block whose pad token the processor expands.
# No whitespace control ({%- -%}) anywhere: the only whitespace here is the newlines Qwen's format requires.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# Small images keep the tiny vision tower cheap: 28*28 pixels become one merged vision token.
TINY_MIN_PIXELS = 28 * 28 * 4
TINY_MAX_PIXELS = 28 * 28 * 64

_THINK_WORDS = (
    "add the numbers",
    "count the sides",
    "look at the figure",
    "sum both values",
    "the angle is known",
    "use the formula",
    "compute the area",
    "check the triangle",
)
_WORD_QUESTIONS = (
    "Find the area of the shaded region.",
    "How many sides does the polygon have?",
    "What is the measure of angle ABC?",
    "Solve for x in the figure.",
    "What is the perimeter of the rectangle?",
    "How many circles are in the image?",
)
_MATH_WORDS = (
    "triangle square rectangle circle polygon pentagon hexagon radius diameter chord tangent segment line point",
    "angle degree parallel perpendicular vertex edge face side length width height area volume perimeter",
    "sum difference product quotient ratio fraction percent integer number value equation solution variable",
    "therefore because since given find compute calculate determine measure shown figure image diagram",
    "first second third then next finally so thus hence the a an of in on at to is are and or with by for",
    "one two three four five six seven eight nine ten hundred half quarter total each both all",
    "plus minus times divided equals greater less than equal to probability mean median chart table graph",
    "Question Answer Solution Choices Options (A) (B) (C) (D) A B C D x y z",
    "What Which How Why When Where Who If Let Consider Suppose Note The In As It This That These",
    "red blue green yellow black white gray large small left right top bottom inside outside center",
    "coordinate axis slope intercept function square root power exponent log sine cosine tangent",
    "isosceles equilateral scalene right acute obtuse congruent similar bisector median altitude arc",
    "cube sphere cylinder cone prism pyramid surface base apex diagonal midpoint ray",
    "reasoning step answer final result correct option choose select calculate estimate approximately",
)
# Instruction-style system prompts, so the warm-started model keeps the format under the pipeline's prompts too
# (without them the format rate fell from ~55% to ~17% once an LMM-R1-style system prompt was added).
_SYSTEM_PROMPTS = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively. Put the final answer inside \\boxed{} within the answer tags.",
    "Reason step by step inside <think> </think>, then give the final answer as \\boxed{} inside <answer> </answer>.",
    "You are a math tutor. Solve the problem shown in the image.",
)
_LATEX_SNIPPETS = (
    r"\boxed{12}",
    r"\frac{1}{2}",
    r"\frac{a}{b}",
    r"\sqrt{2}",
    r"x^2 + y^2 = r^2",
    r"\pi r^2",
    r"30^\circ",
    r"\angle ABC",
    r"\triangle ABC",
    r"\times",
    r"\cdot",
    r"\le",
    r"\ge",
    r"50\%",
)


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------------


def _tokenizer_corpus() -> list[str]:
    """A small deterministic corpus covering the text the tiny model will read and write."""
    lines = [*_THINK_WORDS, *_WORD_QUESTIONS, *_MATH_WORDS, *_SYSTEM_PROMPTS, *_LATEX_SNIPPETS]
    lines += [f"What is {a} + {b}?" for a in range(10) for b in range(10)]
    lines += [f"<think> {w} </think><answer>\\boxed{{{n}}}</answer>" for n in range(20) for w in _THINK_WORDS]
    lines += ["You are a helpful assistant.", "system", "user", "assistant", "The answer is", "0123456789"]
    lines += ["Answer with <think> reasoning </think> then <answer> final answer </answer>."]
    return lines


def _build_tokenizer():
    """Train a ~1k byte-level BPE with Qwen2's pre-tokenizer and wrap it as a Qwen2Tokenizer."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    # Must match what Qwen2Tokenizer rebuilds around the vocab, or merges would be learned on other pieces.
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(), trainer)
    trained = json.loads(bpe.to_str())["model"]
    vocab = dict(trained["vocab"])
    # Placing the specials in the vocab ourselves fixes their order; Qwen2Tokenizer would otherwise add
    # eos/pad first and shuffle the relative ids away from Qwen's.
    for token in QWEN_SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[tuple(merge) for merge in trained["merges"]],
        eos_token="<|im_end|>",  # as in the instruct checkpoints: generation stops at the end of the turn
        pad_token="<|endoftext|>",
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Tiny model
# ---------------------------------------------------------------------------------------------------------------


def _tiny_config(tokenizer, layers: int = 2, hidden: int = 64):
    from transformers import Qwen2_5_VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    heads = hidden // 16
    head_dim = hidden // heads
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": max(1, hidden // 32),
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            # Temporal/height/width split of the rotary dims, same 2:3:3 proportions as the real model.
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": _mrope_section(head_dim)},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": hidden,  # the merger projects straight into the text embedding space
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2
    temporal = half // 4
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return GenerationConfig(
        bos_token_id=end_of_text,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), end_of_text],
        pad_token_id=end_of_text,
    )


# ---------------------------------------------------------------------------------------------------------------
# Warm start: teach the random model the answer format, but only loosely
# ---------------------------------------------------------------------------------------------------------------

# Share of warm-start targets in the full format; the rest are near misses, so sampled completions keep
# a mix of rewarded and unrewarded outputs instead of collapsing to always-right or always-wrong.
_WELL_FORMED_SHARE = 0.6
_SUM_QUESTION_SHARE = 0.7
_CORRECT_SUM_SHARE = 0.5
# The vision tower costs as much per step as the whole text model, so only every 4th batch carries images
# (half of its examples): enough for the vision path to see data, cheap enough to keep the build fast.
_IMAGE_BATCH_EVERY = 4
_IMAGE_SHARE_IN_IMAGE_BATCH = 0.5
_SYSTEM_PROMPT_SHARE = 0.5
_WARM_START_BATCH = 8
_WARM_START_LR = 3e-3


def _completion(rng: random.Random, answer: int) -> str:
    words = rng.choice(_THINK_WORDS)
    if rng.random() < _WELL_FORMED_SHARE:
        return f"<think> {words} </think><answer>\\boxed{{{answer}}}</answer>"
    near_misses = (
        f"{words}. The answer is {answer}",
        f"<think> {words} </think> \\boxed{{{answer}}}",
        f"<answer>\\boxed{{{answer}}}</answer>",
        f"<think> {words} <answer>{answer}",
    )
    return rng.choice(near_misses)


def _synthetic_image(rng: random.Random) -> Image.Image:
    from PIL import ImageDraw

    width, height = rng.choice(((56, 56), (84, 56), (56, 84), (112, 84)))
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    box = sorted(rng.sample(range(width), 2)), sorted(rng.sample(range(height), 2))
    ImageDraw.Draw(image).rectangle(
        (box[0][0], box[1][0], box[0][1], box[1][1]), fill=tuple(rng.randrange(256) for _ in range(3))
    )
    return image


def _synthetic_example(rng: random.Random, image_share: float) -> tuple[list[dict], list[Image.Image]]:
    """One chat (user question, assistant completion) and its images."""
    a, b = rng.randrange(10), rng.randrange(10)
    is_sum = rng.random() < _SUM_QUESTION_SHARE
    question = f"What is {a} + {b}?" if is_sum else rng.choice(_WORD_QUESTIONS)
    answer = a + b if is_sum and rng.random() < _CORRECT_SUM_SHARE else rng.randrange(19)
    images = [_synthetic_image(rng)] if rng.random() < image_share else []
    user = [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]
    messages = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": [{"type": "text", "text": _completion(rng, answer)}]},
    ]
    if rng.random() < _SYSTEM_PROMPT_SHARE:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": rng.choice(_SYSTEM_PROMPTS)}]})
    return messages, images


def _warm_start_batch(processor, rng: random.Random, image_share: float) -> tuple[dict, torch.Tensor]:
    """Right-padded model inputs, and labels that cover only the assistant turn."""
    return chat_batch(processor, [_synthetic_example(rng, image_share) for _ in range(_WARM_START_BATCH)])


def _warm_start(model, processor, steps: int, seed: int) -> None:
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_WARM_START_LR, foreach=True)
    model.train()
    for step in range(steps):
        image_share = _IMAGE_SHARE_IN_IMAGE_BATCH if step % _IMAGE_BATCH_EVERY == 0 else 0.0
        assistant_loss(model, *_warm_start_batch(processor, rng, image_share)).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def build_tiny_model(
    out_dir: str | Path, seed: int = 0, warm_start_steps: int = 300, layers: int = 2, hidden_size: int = 64
) -> Path:
    """Build, warm-start and save a complete tiny Qwen2.5-VL directory, offline and deterministic in its arguments."""
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out_dir = Path(out_dir)
    tokenizer = _build_tokenizer()
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS}
    )
    processor = make_processor(image_processor, tokenizer, {"chat_template": CHAT_TEMPLATE})
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(_tiny_config(tokenizer, layers, hidden_size))
    model.generation_config = _generation_config(tokenizer)
    # One thread: faster for these tiny tensors, and the result does not depend on the machine's core count.
    with torch_threads(1):
        _warm_start(model, processor, warm_start_steps, seed)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir



# ---------------------------------------------------------------------------------------------------------------
# The build cache
# ---------------------------------------------------------------------------------------------------------------

_TINY_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "processor_config.json",
                     "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def _source_hash() -> str:
    # Any change to how the tiny model is built gives it a new cache entry instead of a stale one.
    return code_hash(code_closure(__name__))[:12]


def _is_complete_tiny_model(model_dir: Path) -> bool:
    return all((model_dir / name).is_file() for name in _TINY_MODEL_FILES)


def cached_tiny_model(cache_dir: Path, seed: int, shape: dict | None = None) -> Path:
    """Build the tiny model once per (seed, shape, source) and reuse it; the directory appears only when complete.
    `shape` holds build_tiny_model's layers / hidden_size / warm_start_steps (None = their defaults)."""
    shape = shape or {}
    label = "".join(f"-{k}{v}" for k, v in sorted(shape.items()))
    target = cache_dir / f"tiny-seed{seed}{label}-{_source_hash()}"
    if _is_complete_tiny_model(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One build at a time per model: a stage that needs it while the run's background fetch (infimmr_core.prefetch)
    # builds it waits here, then finds it complete, instead of building it a second time beside it.
    lock_path = cache_dir / f".{target.name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _is_complete_tiny_model(target):
                _build_into(target, cache_dir, seed, shape)
        finally:
            # Removed while held, so the cache keeps only models. A waiter that then gets this (unlinked) lock finds
            # the model complete; if the build failed it builds itself, and two such builds stay safe (see below).
            lock_path.unlink(missing_ok=True)
    return target


def _build_into(target: Path, cache_dir: Path, seed: int, shape: dict) -> None:
    if target.exists():  # damaged by hand: rebuilding beats failing later with a missing file
        shutil.rmtree(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        build_tiny_model(staging, seed=seed, **shape)
        staging.chmod(0o755)  # mkdtemp makes it private; a shared cache must stay readable
        staging.rename(target)
    except OSError:
        # Another process finished the same build first: theirs is identical (deterministic), keep it.
        if not _is_complete_tiny_model(target):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

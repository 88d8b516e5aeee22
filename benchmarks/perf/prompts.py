"""Preparing a step's batch on the CPU: what the two bit-for-bit shortcuts of the training loops save.

- A GRPO step of the demo's image phases hands the processor 16 prompts, each 8 times in a row (one per completion):
  transformers' processor against infimmr's (`infimmr_core.repeated_prompts`), which processes each distinct prompt
  once and repeats its rows.
- A warm-up step of 24 chats (8 per task: text, picture with caption, picture): the processor on the whole batch, as
  every step did, against `supervised.collate` of chats encoded once (`supervised.encode_chat`, done before timing:
  the warm-up encodes each of its samples once, however often it draws it).

Both sides give the same tensors (checked here too). One torch thread, the tiny Qwen2.5-VL's processor.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from benchmarks.perf.common import median, one_thread_scratch, print_rows, ratio_row, side_by_side

BENCH = "prompts"
PROMPTS, GENERATIONS, WARMUP_PER_TASK = 16, 8, 8


def _same(a: dict, b: dict) -> bool:
    import torch

    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def run(quick: bool = False) -> list[dict[str, Any]]:
    import transformers

    from infimmr_core.config import PromptConfig
    from infimmr_core.data.digit_sums import image_problems, text_problems
    from infimmr_core.data.images import decode_image
    from infimmr_core.data.prompts import build_messages
    from infimmr_core.models import load_processor
    from infimmr_core.supervised import collate, encode_chat
    from infimmr_core.tiny_model import build_tiny_model
    from infimmr_core.warmup.targets import training_chat

    repeats = 3 if quick else 10
    rows = []
    with one_thread_scratch(BENCH) as scratch:
        processor = load_processor(build_tiny_model(scratch / "model", seed=0))
        plain = copy.copy(processor)
        plain.__class__ = transformers.Qwen2_5_VLProcessor
        prompts = PromptConfig(system_prompt="")

        pictures = image_problems(PROMPTS, seed=5)
        texts = [processor.apply_chat_template(build_messages(s, "image", system_prompt=""), tokenize=False,
                                               add_generation_prompt=True) for s in pictures for _ in range(GENERATIONS)]
        images = [[decode_image(s.images[0])] for s in pictures for _ in range(GENERATIONS)]
        out = {}

        def grpo(name: str, proc: Any):
            def call() -> None:
                out[name] = proc(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
            return call

        theirs, ours = side_by_side(grpo("plain", plain), grpo("ours", processor), repeats=repeats)
        same = "same tensors" if _same(dict(out["plain"]), dict(out["ours"])) else "tensors DIFFER"
        rows.append(ratio_row(
            BENCH, "GRPO image step's prompts: transformers' processor seconds / repeat-aware seconds",
            "every completion's prompt processed", "each distinct prompt once", median(theirs), median(ours), "s",
            note=f"{PROMPTS} prompts x {GENERATIONS} completions, 56x56 pictures; {same}; no target"))

        chats = [(training_chat(s, kind, prompts, "answer_tag_boxed"),
                  [decode_image(b) for b in s.images] if kind != "text" else [])
                 for kind, samples in (("text", text_problems(WARMUP_PER_TASK, seed=3)),
                                       ("image_caption", image_problems(WARMUP_PER_TASK, seed=4)),
                                       ("image", image_problems(WARMUP_PER_TASK, seed=6)))
                 for s in samples]
        encoded = [encode_chat(processor, chat, chat_images) for chat, chat_images in chats]

        def whole_batch() -> None:
            batch_texts = [plain.apply_chat_template(chat, tokenize=False) for chat, _ in chats]
            batch_images = [image for _, chat_images in chats for image in chat_images]
            out["processor"] = plain(text=batch_texts, images=batch_images, padding=True, padding_side="right",
                                     return_tensors="pt")

        def collated() -> None:
            out["collate"] = collate(processor, encoded)[0]

        each_step, once = side_by_side(whole_batch, collated, repeats=repeats)
        same = "same tensors" if _same(dict(out["processor"]), out["collate"]) else "tensors DIFFER"
        rows.append(ratio_row(
            BENCH, "warm-up step's batch: processor seconds / collate-of-encoded seconds",
            "template, tokenise, preprocess every step", "encoded once, collated", median(each_step), median(once),
            "s", note=f"{len(chats)} chats (text, caption, picture); {same}; no target"))
    return rows


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))

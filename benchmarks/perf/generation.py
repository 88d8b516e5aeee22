"""Generation on the CPU backend: 8 prompts in one batch vs the same 8 one by one, text prompts and image prompts.

The model is the warm-started tiny Qwen2.5-VL (infimmr_core.tiny_model), built once into a temp dir. Both sides
use one TransformersGenerator per batch size over the same weights, greedy decoding and the same max_new_tokens, at
one torch thread (the demo recipe's `runtime.torch_threads`; the tiny model's matmuls are too small to split). The
ratio is one-by-one time / batched time; both give the same texts.

A last row shows why stages set their threads: the batched text prompts at the threads a stage process gets by
default (infimmr_core.threads: this process's cores) against one thread, on whatever else the machine is running.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.perf.common import median, one_thread_scratch, print_rows, ratio_row, side_by_side

BENCH = "generation"
BATCH = 8


def _requests(kind: str) -> list[Any]:
    from PIL import Image

    from infimmr_core.inference import GenerationRequest

    questions = ["What is 2 + 5?", "What is 17 - 9?", "What is 3 * 4?", "Find x if x + 4 = 11.",
                 "What is 81 / 9?", "What is 6 + 7 + 8?", "Is 91 prime?", "What is 12 squared?"]
    requests = []
    for i, text in enumerate(questions[:BATCH]):
        if kind == "image":
            image = Image.new("RGB", (56 + 14 * (i % 3), 56 + 14 * (i % 2)), (30 * i % 255, 90, 200 - 20 * i))
            parts = [{"type": "image"}, {"type": "text", "text": text}]
            requests.append(GenerationRequest(messages=[{"role": "user", "content": parts}], images=[image]))
        else:
            requests.append(GenerationRequest(messages=[{"role": "user", "content": [{"type": "text", "text": text}]}]))
    return requests


def run(quick: bool = False) -> list[dict[str, Any]]:
    import torch

    from infimmr_core.inference import SamplingSpec, TransformersGenerator
    from infimmr_core.threads import intra_op_threads
    from infimmr_core.tiny_model import build_tiny_model

    default_threads = intra_op_threads(None)
    rows = []
    with one_thread_scratch(BENCH) as scratch:
        model_dir = build_tiny_model(scratch / "model", seed=0)
        batched = TransformersGenerator(model_dir, device="cpu", batch_size=BATCH)
        single = TransformersGenerator.from_loaded(batched.model, batched.processor, device="cpu", batch_size=1)
        spec = SamplingSpec(n=1, temperature=0.0, max_new_tokens=16 if quick else 48)
        repeats = 2 if quick else 3
        for kind in ("text", "image"):
            requests = _requests(kind)
            batched.generate(requests, spec)  # warm-up: first-call allocations and lazy imports
            single.generate(requests[:1], spec)
            texts = {}

            def one_by_one_call() -> None:
                texts["single"] = single.generate(requests, spec)

            def batched_call() -> None:
                texts["batched"] = batched.generate(requests, spec)

            one_by_one, together = side_by_side(one_by_one_call, batched_call, repeats=repeats)
            a, b = median(one_by_one), median(together)
            same = "same texts" if texts["single"] == texts["batched"] else "texts DIFFER between the two"
            rows.append(ratio_row(
                BENCH, f"{kind} prompts: one-by-one seconds / batched seconds", "batch 1, 8 calls",
                f"batch {BATCH}, 1 call", a, b, "s", target=">= 3.0",
                note=f"{BATCH} prompts x {spec.max_new_tokens} new tokens (greedy), {same}; {BATCH / a:.1f} vs "
                     f"{BATCH / b:.1f} prompts/s; tiny Qwen2.5-VL on CPU, 1 torch thread"))
        if default_threads > 1:
            requests = _requests("text")

            def at(threads: int) -> Any:
                def call() -> None:
                    torch.set_num_threads(threads)
                    batched.generate(requests, spec)
                return call

            many, one = side_by_side(at(default_threads), at(1), repeats=repeats)
            rows.append(ratio_row(
                BENCH, f"batched text prompts: seconds at {default_threads} threads / at 1 thread",
                f"{default_threads} torch threads (this process's cores)", "1 torch thread", median(many), median(one),
                "s", note="no target: what the thread count costs the tiny model on this machine as loaded now"))
    return rows


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))

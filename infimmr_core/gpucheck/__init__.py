"""One prepared check of the GPU path, for short, offline GPU loans: `python -m infimmr_core.gpucheck [--tiny]`.

On a CUDA machine it trains a Qwen2.5-VL-3B-shaped model (random bf16 weights, built locally) for a few phase-2 GRPO
steps with images, restores the checkpoint it wrote, and measures batched generation; with `--tiny` it runs the same
code on CPU with the tiny model. Either way it prints one JSON object with the same fields (`run.run_check`).
`wheels` collects what a stock PyTorch CUDA image lacks. README, Performance, says how to run it.
"""

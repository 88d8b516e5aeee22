"""What changed in TRL under this project's recipes, and which TRL behaviours a recipe must not reach.

Two kinds of facts, each read from TRL's own code (trl/trainer/grpo_config.py at the v1.9.0 tag against the installed
1.16.0 release; trl/generation/vllm_generation.py of 1.16.0):

- GRPOConfig defaults that moved between trl 1.9 and 1.16. The recipe sets every one that changes the math itself, so
  a TRL upgrade can change a training run only through a diff of the recipe (`tests/test_trl_defaults.py`).
- Colocated vLLM with images. TRL's colocate mode hands vLLM the prompt ids that the trainer's processor has already
  expanded (one `<|image_pad|>` per visual token, at the phase's `max_pixels`) together with the raw images, and vLLM
  expands them again with its own processor settings (`LLM(...)` gets no `mm_processor_kwargs`): prompts and images
  misalign, which crashes in the M-RoPE index or, worse, trains on corrupted prompts (trl issues #6294 and #6401; the
  fix, PR #6718, is in no release up to 1.16.0). Colocated vLLM's multimodal encoder cache also grows by about
  0.25 GB per step until out of memory. Server mode computes image features on the server and places them on the
  trainer's own image-token runs, so it is the mode for image phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from packaging.version import Version

TRL_TESTED = "1.16.0"  # the version pinned in pyproject.toml, whose code the facts below were read from


@dataclass(frozen=True)
class DefaultChange:
    before: Any  # trl 1.9.0
    after: Any  # trl 1.16.0
    math: bool  # whether the value changes what is trained
    why: str


CHANGED_DEFAULTS: dict[str, DefaultChange] = {
    "max_completion_length": DefaultChange(256, 512, True, "completions are cut at this many tokens"),
    "use_bias_correction_kl": DefaultChange(
        False, True, True, "multiplies the KL term by the importance ratio: a different KL gradient whenever beta > 0"
    ),
    "pad_to_multiple_of": DefaultChange(
        None, "auto", False, "'auto' pads only on AWS Neuron, and padding is masked out of every loss"
    ),
    "router_aux_loss_coef": DefaultChange(
        0.001, None, False, "Mixture-of-Experts only; Qwen2.5-VL is dense, and 1.16 refuses any value for a dense model"
    ),
}
MATH_DEFAULTS = tuple(name for name, change in CHANGED_DEFAULTS.items() if change.math)

# The first TRL release that feeds colocated vLLM unexpanded image placeholders (PR #6718); None while none does.
COLOCATE_IMAGES_FIXED_IN: str | None = None


def installed_trl() -> str | None:
    try:
        return metadata.version("trl")
    except metadata.PackageNotFoundError:
        return None


def colocate_misaligns_images(trl_version: str | None, fixed_in: str | None = COLOCATE_IMAGES_FIXED_IN) -> bool:
    """Whether colocated vLLM misaligns image prompts with this TRL version (None = not installed: assume the worst,
    since the machine that trains may have any release without the fix)."""
    if trl_version is None or fixed_in is None:
        return True
    return Version(trl_version) < Version(fixed_in)


def colocate_image_problem(phase_input: str, use_vllm: bool, vllm_mode: str, trl_version: str | None) -> str | None:
    """Why a phase must not roll out this way, or None when it may."""
    if not use_vllm or vllm_mode != "colocate" or phase_input == "text" or not colocate_misaligns_images(trl_version):
        return None
    return (
        f"vllm_mode 'colocate' with a {phase_input!r} phase: TRL {trl_version or '(not installed)'} hands colocated "
        "vLLM processor-expanded image tokens plus the raw images, which misaligns prompts and images (a crash, or "
        "silent training on corrupted prompts: trl issues #6294, #6401; fix PR #6718 is not released), and its "
        "encoder cache grows each step until out of memory. Use vllm_mode 'server' (or 'auto') with "
        "vllm_server_base_url, or use_vllm false"
    )

"""The GPU check (`python -m infimmr_core.gpucheck`): its `--tiny` run on CPU prints every field the GPU run prints,
imports nothing a stock PyTorch CUDA image plus the carried wheels lacks, and the carried-wheel list is computed
(and fits the transfer limit's shape: pinned by the 3.12 lock, no torch stack, no vLLM)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infimmr_core.gpucheck import wheels
from infimmr_core.gpucheck.run import FIELDS

ROOT = Path(__file__).resolve().parents[1]
# Runs the check as `python -m` would, then reports which distributions the process imported.
AUDITED_RUN = """
import contextlib, json, runpy, sys
from importlib import metadata
sys.argv = ["gpucheck", "--tiny", "--out", sys.argv[1]]
runpy.run_module("infimmr_core.gpucheck", run_name="__main__")
owners = metadata.packages_distributions()
tops = {name.split(".")[0] for name, module in list(sys.modules.items()) if module is not None}
used = sorted({dist for top in tops for dist in owners.get(top, [])})
print("IMPORTED " + json.dumps(used), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "report.json"
    proc = subprocess.run([sys.executable, "-c", AUDITED_RUN, str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stderr.rsplit("IMPORTED ", 1)[1])
    return json.loads(proc.stdout), json.loads(out.read_text()), imported


def test_tiny_run_prints_every_field_of_the_gpu_run(tiny_run):
    printed, written, _ = tiny_run
    assert printed == written  # stdout holds the report alone (Trainer's log lines went to stderr)
    assert list(printed) == list(FIELDS)
    for section, keys in FIELDS.items():
        if keys is not None:
            assert list(printed[section]) == list(keys), section
    assert printed["mode"] == "tiny" and printed["machine"]["device"] == "cpu"


def test_tiny_run_measures_what_the_gpu_run_measures(tiny_run):
    report, _, _ = tiny_run
    grpo = report["grpo"]
    assert grpo["steps"] == 3 and grpo["input"] == "image_caption" and grpo["generation_backend"] == "transformers"
    assert set(grpo["seconds_per_step"]) == {"generation", "reward", "logprobs", "forward_backward", "optimizer",
                                             "other", "step"}
    assert grpo["seconds_per_step"]["generation"] > 0 and grpo["seconds_per_step"]["forward_backward"] > 0
    assert 0 < grpo["mfu"] and grpo["tokens_per_second"] > 0 and grpo["peak_memory_gib"] > 0
    assert report["checkpoint"]["exact"] is True and report["checkpoint"]["size_gib"] > 0
    assert report["checkpoint"]["save_seconds"] > 0
    assert report["generation"]["new_tokens"] > 0 and report["generation"]["tokens_per_second"] > 0
    assert report["model"]["parameters"] > 0


def test_the_check_imports_only_the_image_and_the_carried_wheels(tiny_run):
    """Every project dependency the check's process imported is in the image or carried. (Libraries also import
    packages of this venv that nothing requires, such as requests or protobuf, only when present: those are not
    dependencies, and a stock-like 3.12 environment without them ran the check, README, Performance.)"""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    _, _, imported = tiny_run
    imported = {canonicalize_name(d) for d in imported}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    direct = {canonicalize_name(Requirement(r).name) for r in project}
    available = wheels.closure(wheels.IMAGE_PROVIDES) | set(wheels.carried())
    assert sorted((imported & direct) - available) == []
    assert not {"prefect", "vllm", "tensorboard"} & imported


GRAPH = {
    "app": ["lib-a", "lib-b[fast]"], "lib-a": ["six"], "lib-b": ["pure-dep"], "lib-b[fast]": ["speedup"],
    "torch": ["sympy"], "transformers": ["numpy", "tqdm", "typer"], "typer": ["pydantic"],
    "six": [], "pure-dep": [], "speedup": [], "sympy": [], "numpy": [], "tqdm": [], "pydantic": [],
}


def fake_requires(name, extras):
    from packaging.requirements import Requirement

    found = [Requirement(r) for r in GRAPH[name]]
    for extra in extras:
        found += [Requirement(r) for r in GRAPH.get(f"{name}[{extra}]", [])]
    return found


@pytest.mark.parametrize(
    ("roots", "carried"),
    [
        (("app",), ["app", "lib-a", "lib-b", "pure-dep", "six", "speedup"]),
        # the image's direct pure dependency (tqdm) is carried in case its version does not fit; its compiled one
        # (numpy) and torch's closure (sympy) never; a deeper one (pydantic, via typer) is not assumed present
        (("tqdm", "numpy", "sympy", "pydantic"), ["pydantic", "tqdm"]),
        (("transformers",), ["pydantic", "tqdm", "typer"]),  # a root the image has: only what may not fit
    ],
)
def test_carried_wheels(roots, carried):
    pure = lambda name: name != "numpy"  # noqa: E731
    assert wheels.carried(roots, ("torch", "transformers"), fake_requires, pure) == carried


def test_the_real_list_is_pinned_and_leaves_the_image_alone():
    names = wheels.carried()
    pins = wheels.lock_pins(wheels.LOCK.read_text())
    assert {"trl", "datasets", "pydantic", "pydantic-core", "math-verify", "boto3"} <= set(names)
    assert not {"torch", "transformers", "accelerate", "peft", "pyarrow", "pillow", "numpy", "vllm", "prefect"} & set(names)
    assert not [n for n in names if n.startswith(("nvidia-", "triton"))]
    assert [n for n in names if n not in pins] == []
    lines = wheels.install_lines(names, pins)
    assert lines == ["trl==1.16.0", f"datasets=={pins['datasets']}", f"pydantic=={pins['pydantic']}", "pyyaml",
                     "math-verify==0.9.0", f"boto3=={pins['boto3']}"]


def test_the_3b_shape_is_qwen25_vl_3b(tiny_model_dir):
    """Built on the meta device: the architecture's parameter count without allocating 7.5 GB."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from infimmr_core.flops import model_shape
    from infimmr_core.gpucheck.shapes import qwen3b_config

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(qwen3b_config(tiny_model_dir))
    parameters = sum(p.numel() for p in model.parameters())
    assert 3.7e9 < parameters < 3.8e9  # Qwen2.5-VL-3B-Instruct: 3.75 B
    shape = model_shape(model)
    assert (shape.text_layers, shape.text_hidden) == (36, 2048) and 6.6e8 < shape.vision_params < 6.8e8

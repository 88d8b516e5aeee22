"""The wheels the GPU check carries to a stock PyTorch CUDA image, collected by one command into one folder.

The image has Python 3.12, torch with CUDA, transformers, accelerate, peft, pyarrow and pillow, and no network. The
check runs the project's own training code (GRPOTrainer through `infimmr_core.grpo_phase`, the rewards, the recipe
models), so what that code imports beyond the image travels as wheels: ROOTS and everything they depend on, pinned
by the 3.12 lock, minus what the image surely has: torch with everything it depends on, the named packages, and the
compiled packages they require directly (numpy, tokenizers, safetensors, pyyaml, regex, psutil: transformers and
accelerate do not import without them). Pure-Python packages they require are carried anyway: the image's version
may not satisfy a carried package's range (datasets caps fsspec, say), and pip then takes the lock's from the
folder; a package deeper in their closure is not assumed present (the image has no pydantic, though some typer
releases require it). vLLM (hundreds of MB) is never carried: the check generates with the transformers backend.

    python -m infimmr_core.gpucheck.wheels --out build/gpu-wheels     # `make gpu-wheels`

writes the wheels and `requirements.txt` (the roots to install, no network: `pip install --no-index --find-links
build/gpu-wheels -r build/gpu-wheels/requirements.txt`), and fails when the folder exceeds LIMIT_BYTES.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "constraints" / "py312.txt"
LIMIT_BYTES = 64 * 2**20  # what one device call carries

# What the stock image provides (and the check must use as it is: torch is the image's CUDA build).
IMAGE_PROVIDES = ("torch", "transformers", "accelerate", "peft", "pyarrow", "pillow")
# What the check imports beyond the image, and who imports it.
ROOTS = (
    "trl",  # GRPOTrainer, GRPOConfig
    "datasets",  # the dataset type GRPOTrainer takes
    "pydantic",  # recipes (infimmr_core.config)
    "pyyaml",  # recipe files
    "math-verify",  # the accuracy reward (its antlr4 runtime comes with latex2sympy2-extended)
    "boto3",  # infimmr_core.store, imported by grpo_phase for checkpoint sync
)
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "os_name": "posix"}


def requirements_of(name: str, extras: frozenset[str]) -> list[Requirement]:
    """A distribution's requirements that apply on the target (Python 3.12, Linux x86_64) with these extras."""
    found = []
    for line in metadata.requires(name) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate(TARGET | {"extra": extra}) for extra in (extras or {""})):
            found.append(requirement)
    return found


def closure(roots: tuple[str, ...], requires=requirements_of) -> set[str]:
    """Canonical names of the roots and everything they depend on (extras followed where named)."""
    seen: set[str] = set()
    stack = [Requirement(root) for root in roots]
    visited: set[tuple[str, frozenset[str]]] = set()
    while stack:
        requirement = stack.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        seen.add(name)
        stack.extend(requires(name, extras))
    return seen


def lock_pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def is_pure_python(name: str) -> bool:
    """Whether the installed distribution ships no compiled extension (its wheel then fits every interpreter)."""
    files = metadata.distribution(name).files or []
    return not any(str(f).endswith((".so", ".pyd")) for f in files)


def carried(roots=ROOTS, image=IMAGE_PROVIDES, requires=requirements_of, pure=is_pure_python) -> list[str]:
    """Sorted canonical names of the distributions to carry."""
    named = {canonicalize_name(n) for n in image}
    never = closure(("torch",), requires) | named
    direct = {canonicalize_name(r.name) for n in named for r in requires(n, frozenset())}
    return sorted(
        name for name in closure(roots, requires) if name not in never and (name not in direct or pure(name))
    )


def download(names: list[str], pins: dict[str, str], out: Path) -> None:
    missing = [n for n in names if n not in pins]
    if missing:
        raise SystemExit(f"not in {LOCK.name}: {', '.join(missing)}; regenerate it with `make lock-py312`")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.whl"):
        stale.unlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(out),
         "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
         "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
         *[f"{name}=={pins[name]}" for name in names]],
        check=True,
    )
    (out / "requirements.txt").write_text("".join(f"{line}\n" for line in install_lines(names, pins)))


def install_lines(names: list[str], pins: dict[str, str], roots: tuple[str, ...] = ROOTS) -> list[str]:
    """What to install: the roots, pinned where carried, bare where the image has them. The other wheels are only
    candidates: pip takes one from the folder where the image's version does not satisfy a carried package."""
    lines = []
    for root in roots:
        name = canonicalize_name(Requirement(root).name)
        lines.append(f"{root}=={pins[name]}" if name in names else Requirement(root).name)
    return lines


def folder_bytes(out: Path) -> int:
    return sum(f.stat().st_size for f in out.iterdir() if f.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-wheels")
    parser.add_argument("--list", action="store_true", help="print the pinned list only, download nothing")
    args = parser.parse_args(argv)
    names, pins = carried(), lock_pins(LOCK.read_text())
    if args.list:
        print("\n".join(f"{name}=={pins.get(name, '?')}" for name in names))
        return
    download(names, pins, args.out)
    size = folder_bytes(args.out)
    print(f"{len(names)} wheels, {size / 2**20:.1f} MiB in {args.out}")
    if size > LIMIT_BYTES:
        raise SystemExit(f"{args.out} holds {size / 2**20:.1f} MiB, over the {LIMIT_BYTES / 2**20:.0f} MiB a device call carries")


if __name__ == "__main__":
    main()

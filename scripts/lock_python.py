"""Lock the project's dependencies for another Python version: `python scripts/lock_python.py PYTHON OUT`.

pip resolves the project (with its test extra) in a throwaway virtual environment of that interpreter, constrained by
the 3.11 CPU lock (`constraints/cpu.txt`), so every version that can stay the same does, and only what the other
interpreter needs differently moves. Nothing is installed: `pip install --dry-run --report` reads the wheels' metadata,
and the report's `install` list, pinned, is the lock.

torch is pinned without the `+cpu` label: a CPU build of torch exists for 3.11 only on the machines this project is
developed on, and `torch==2.13.0` matches the CPU build (from a PyTorch CPU index) and the CUDA build alike.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_LOCK = ROOT / "constraints" / "cpu.txt"
LOCAL_LABEL = re.compile(r"^(torch==[^+\s]+)\+\S+$", re.MULTILINE)


def unlabelled_constraints(cpu_lock: str) -> str:
    """The 3.11 lock with torch's local label (`+cpu`) dropped, so another interpreter may take its own build."""
    return LOCAL_LABEL.sub(r"\1", cpu_lock)


def pins(report: dict) -> list[str]:
    """`name==version` for every distribution the resolver would install, the project itself left out."""
    found = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in report["install"]
    }
    found.pop("infimmr", None)
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def header(python_version: str) -> str:
    return (
        f"# Python {python_version} lock: every package of the project's install with its test extra, resolved together\n"
        "# by pip under the 3.11 CPU lock (constraints/cpu.txt), so versions differ from it only where this interpreter\n"
        "# needs it. torch has no local label: on GPU machines it is the registry's CUDA build, on CPU machines pass\n"
        "# PyTorch's CPU wheel index (PIP_EXTRA_INDEX_URL) and the same pin takes the CPU build.\n"
        f"# Regenerate: make lock-py{python_version.replace('.', '')}\n"
    )


def lock(python: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="infimmr-lock-") as tmp:
        venv, constraints, report = Path(tmp) / "venv", Path(tmp) / "constraints.txt", Path(tmp) / "report.json"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        constraints.write_text(unlabelled_constraints(CPU_LOCK.read_text()))
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run(
            [*pip, "install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report),
             "-c", str(constraints), f"{ROOT}[test]"],
            check=True,
        )
        version = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        out.write_text(header(version) + "\n".join(pins(json.loads(report.read_text()))) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/lock_python.py PYTHON OUT")
    lock(sys.argv[1], Path(sys.argv[2]))

"""Python 3.11-3.13: the package metadata admits each, each has a lock that pins every dependency within its range,
and where the interpreter exists here, the modules that need no torch import and validate every built-in recipe on
it. (CI runs on 3.11; a full 3.12 install needs the multi-GB CUDA torch, shown once in the README.)"""

from __future__ import annotations

import glob
import importlib.util
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKS = {"3.11": "cpu.txt", "3.12": "py312.txt", "3.13": "py313.txt"}
# What `infimmr_core.config` and `infimmr_core.recipes` import besides the standard library (no torch, no TRL).
NON_TORCH_PACKAGES = ("pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection",
                      "pyyaml", "packaging")


def lock_pins(name: str) -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints" / name).read_text().splitlines():
        if line and not line.startswith("#"):
            package, _, version = line.partition("==")
            pins[canonicalize_name(package)] = Version(version)
    return pins


def test_requires_python_admits_exactly_the_locked_versions():
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert [v for v in ("3.10", "3.11", "3.12", "3.13", "3.14") if Version(v) in spec] == list(LOCKS)


@pytest.mark.parametrize("python", list(LOCKS))
def test_each_lock_pins_every_dependency_within_its_range(python):
    pins = lock_pins(LOCKS[python])
    requirements = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    requirements += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
    for requirement in requirements:
        if requirement.marker and not requirement.marker.evaluate({"python_version": python}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints/{LOCKS[python]} does not pin {name}"
        # torch==2.13.0 admits 2.13.0+cpu: a specifier without a local label ignores the pin's.
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, str(pins[name]))


def test_locks_agree_where_they_can():
    """Every package two locks share has one version: the other interpreters are resolved under the 3.11 lock."""
    base = {name: Version(v.public) for name, v in lock_pins("cpu.txt").items()}
    for python in ("3.12", "3.13"):
        other = lock_pins(LOCKS[python])
        differ = {n: (str(base[n]), str(other[n])) for n in base.keys() & other.keys() if base[n] != other[n]}
        assert differ == {}, python


def _lock_script():
    spec = importlib.util.spec_from_file_location("lock_python", ROOT / "scripts" / "lock_python.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("line", "expected"),
    [("torch==2.13.0+cpu", "torch==2.13.0"), ("torch==2.13.0", "torch==2.13.0"), ("torchaudio==2.11.0+cpu", "torchaudio==2.11.0+cpu"),
     ("trl==1.16.0", "trl==1.16.0")],
)
def test_other_interpreters_take_any_build_of_the_locked_torch(line, expected):
    assert _lock_script().unlabelled_constraints(line) == expected


def test_a_resolver_report_becomes_sorted_pins_without_the_project():
    report = {"install": [{"metadata": {"name": n, "version": v}} for n, v in
                          [("Jinja2", "3.1.6"), ("infimmr", "0.1.0"), ("typing_extensions", "4.16.0"), ("absl-py", "2.5.1")]]}
    assert _lock_script().pins(report) == ["absl-py==2.5.1", "jinja2==3.1.6", "typing-extensions==4.16.0"]


def _interpreter(python: str) -> str | None:
    found = sorted(glob.glob(f"/root/.pyenv/versions/{python}.*/bin/python{python}"))
    for candidate in [*found, f"/usr/bin/python{python}", f"/usr/local/bin/python{python}"]:
        if Path(candidate).exists():
            return candidate
    return None


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_recipes_validate_on_the_other_interpreters(python, tmp_path):
    interpreter = _interpreter(python)
    if interpreter is None:
        pytest.skip(f"no Python {python} on this machine")
    venv = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    pins = lock_pins(LOCKS[python])
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps",
         *[f"{name}=={pins[name]}" for name in NON_TORCH_PACKAGES]],
        capture_output=True, text=True, timeout=300,
    )
    if install.returncode:
        pytest.skip(f"the locked pydantic/pyyaml could not be installed for {python} (offline?): {install.stderr[-300:]}")
    # The source tree on sys.path, as `pip install -e .` would put it; torch and TRL are not installed at all.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from infimmr_core.recipes import builtin_recipes, load_recipe\n"
        "import infimmr_core.trl_compat, infimmr_core.keys\n"
        "print(sys.version_info[:2], [load_recipe(n).name for n in builtin_recipes()])\n"
    )
    run = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(ROOT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"({python.replace('.', ', ')})" in run.stdout and "infimmr-3b" in run.stdout
    # Every source file parses on that interpreter (compiled in memory: no __pycache__ written into the tree).
    parse = ("import sys, pathlib\n"
             "files = [f for d in ('infimmr_core', 'flows', 'tasks', 'scripts') for f in pathlib.Path(sys.argv[1], d).rglob('*.py')]\n"
             "[compile(f.read_text(), str(f), 'exec') for f in files]; print(len(files))\n")
    run = subprocess.run([str(venv / "bin" / "python"), "-c", parse, str(ROOT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and int(run.stdout) > 50, run.stderr

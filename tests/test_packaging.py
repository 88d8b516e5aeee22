"""A non-editable install (the Docker images, `pip install .`) must ship every module and data file the source tree has."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_module_and_data_file(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "infimmr_core", "flows", "tasks"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("infimmr-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "infimmr_core").rglob("*") if p.suffix in {".py", ".yaml"}}
    expected |= {f"infimmr/{p.relative_to(ROOT)}" for d in ("flows", "tasks") for p in (ROOT / d).rglob("*.py")}
    expected = {e for e in expected if "__pycache__" not in e}
    assert expected - shipped == set()

"""The package installs whole: every data file the code and the shipped suites read is in the wheel."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "crossroads"
# the files that were missing from the wheel before package-data listed data/** (issue 9)
ONCE_MISSING = ["crossroads/data/tools/self_healing_router_scenarios_19.json", "crossroads/data/twinrouterbench/bfcl.json",
                "crossroads/data/twinrouterbench/LICENSE"]


def _data_files() -> set[str]:
    """Every non-Python file of the source package, as wheel paths."""
    out = set()
    for p in PKG.rglob("*"):
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts:
            out.add(p.relative_to(ROOT).as_posix())
    return out


def test_package_data_globs_cover_every_data_file():
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["crossroads"]
    covered = {p.relative_to(ROOT).as_posix() for g in globs for p in PKG.glob(g) if p.is_file()}
    files = _data_files()
    assert set(ONCE_MISSING) <= files
    assert sorted(files - covered) == []


@pytest.mark.slow
def test_built_wheel_contains_every_data_file(tmp_path):
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (pip install -e '.[dev]')")
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(PKG, src / "crossroads", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("crossroads-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(ONCE_MISSING) <= names
    assert sorted(_data_files() - names) == []
    suites = {n for n in names if n.startswith("crossroads/evals/suites/")}
    assert len(suites) == len(list((PKG / "evals" / "suites").glob("*.yaml"))) > 0

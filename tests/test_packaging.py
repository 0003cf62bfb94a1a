"""Packaging: the wheel holds one import package, ``actmax``, and works beside an unrelated ``core``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                 "demo_out", ".pytest_cache", "output")


def IGNORE(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: build outputs, and run outputs in the root's runs/ (not the core/runs package)."""
    out = set(_IGNORE(folder, names))
    if Path(folder).resolve() == REPO.resolve() and "runs" in names:
        out.add("runs")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps .`` of a copy of the repository (the build leaves no files in the checkout)."""
    root = tmp_path_factory.mktemp("pkg")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(root / "dist"), str(src)], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    wheels = list((root / "dist").glob("actmax-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_has_one_top_level_package_and_its_data(wheel):
    from actmax.core import __version__

    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"actmax", f"actmax-{__version__}.dist-info"}, top
    assert wheel.name.startswith(f"actmax-{__version__}-")
    for package in ("core", "core/apps", "core/cli", "generators", "optimizers", "scorers", "scorers/twin"):
        assert f"actmax/{package}/__init__.py" in names, package
    assert any(n.startswith("actmax/generators/data/") and n.endswith(".npz") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(f"actmax-{__version__}.dist-info/entry_points.txt").decode()
    assert "actmax = actmax.core.cli:main" in entry_points


def test_installed_wheel_works_beside_an_unrelated_core_package(wheel, tmp_path):
    target, lab = tmp_path / "site", tmp_path / "lab"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                          "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert not (target / "core").exists() and not (target / "generators").exists()
    (lab / "core").mkdir(parents=True)
    (lab / "core" / "__init__.py").write_text("NAME = 'the lab core package'\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    # the lab's folder first, as when lab code runs from its own root; never the repository
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=os.pathsep.join([str(lab), str(target)]), OMP_NUM_THREADS="1")
    code = ("import core, actmax, os; assert core.NAME == 'the lab core package'; "
            f"assert os.path.realpath(actmax.__file__).startswith(os.path.realpath({str(target)!r})), actmax.__file__; "
            "g = actmax.create('generator', 'fourier', size=16); "
            "print(g(g.init_codes(2)).shape, sorted(actmax.list_parts()['generators']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=work,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "torch.Size([2, 1, 16, 16])" in res.stdout and "'fourier'" in res.stdout
    res = subprocess.run([sys.executable, "-m", "actmax.core.cli", "list", "-v"], capture_output=True,
                         text=True, env=env, cwd=work, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "cholesky_cma" in res.stdout and str(target) not in res.stdout
    from actmax.core import __version__
    assert f"actmax {__version__}" in res.stdout
    script = target / "bin" / "actmax"                     # the console entry point pip wrote
    assert script.is_file()
    res = subprocess.run([sys.executable, str(script), "list", "optimizers"], capture_output=True, text=True,
                         env=env, cwd=work, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "sphere_cma" in res.stdout

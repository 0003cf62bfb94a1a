"""A third-party plugin package, installed into a temporary environment, joins the registry."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli

GOOD = '''
import torch
from actmax.generators.base import Generator, seeded_normal


class Stripes(Generator):
    """Vertical stripes whose per-column intensity is the code (tiny plugin space)."""

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        self.image_size, self.channels, self.dim, self.default_sigma = size, 1, size, 0.5

    def render(self, codes):
        return torch.sigmoid(codes)[:, None, None, :].expand(-1, 1, self.image_size, -1).contiguous()

    def init_codes(self, n, seed=0):
        return seeded_normal(n, self.dim, seed, std=0.1)
'''


def _package(root: Path, name: str, module_src: str, entry: str) -> Path:
    src = root / name
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(textwrap.dedent(module_src))
    (src / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "0.1"
        [project.entry-points."actmax.generators"]
        {entry}
        [tool.setuptools]
        packages = ["{name}"]
    '''))
    return src


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """pip-install a good and a broken plugin into a temporary site directory."""
    root = tmp_path_factory.mktemp("plugins")
    good = _package(root, "actmax_stripes", GOOD, 'stripes = "actmax_stripes:Stripes"')
    broken = _package(root, "actmax_broken", "raise ImportError('this plugin is broken on purpose')\n",
                      'broken = "actmax_broken:Thing"')
    site = root / "site"
    for pkg in (good, broken):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(pkg)], check=True, capture_output=True)
    return site


def _env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_plugin_listed_and_broken_one_only_warns(plugin_site):
    res = run_cli("list", "generators", env=_env(plugin_site))
    assert res.returncode == 0, res.stderr
    assert "stripes" in res.stdout and "Vertical stripes" in res.stdout
    assert "pixel" in res.stdout  # the built-ins still work
    assert "broken" in res.stderr and "broken on purpose" in res.stderr
    assert "broken" not in res.stdout


def test_plugin_disabled_by_env(plugin_site):
    res = run_cli("list", "generators", env={**_env(plugin_site), "ACTMAX_NO_PLUGINS": "1"})
    assert res.returncode == 0
    assert "stripes" not in res.stdout and "broken" not in res.stderr


def test_evolution_runs_with_plugin_space(plugin_site, tmp_path):
    res = run_cli("evolve", "-g", "stripes:size=16", "-s", "model:kind=simple,n=1,size=16", "-o", "cma:popsize=8",
                  "--generations", "4", "--out", str(tmp_path / "run"), "--no-progress", "--json",
                  env=_env(plugin_site))
    assert res.returncode == 0, res.stderr
    import json
    out = json.loads(res.stdout)
    assert out["spaces"] == ["stripes"] and out["evaluations"] == 32
    import pandas as pd
    scores = pd.read_parquet(tmp_path / "run" / "scores.parquet")
    assert set(scores["space"]) == {"stripes"} and len(scores) == 32

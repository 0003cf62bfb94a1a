"""A third-party plugin package, installed into a temporary environment, joins the registry."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.conftest import run_cli_subprocess as run_cli   # plugins come from PYTHONPATH: a fresh interpreter

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


def _package(root: Path, name: str, module_src: str, entry: str, group: str = "actmax.generators",
             files: dict[str, str] | None = None) -> Path:
    """A source tree of a one-package distribution ``name`` with entry points ``entry`` in ``group``
    (``entry`` may also hold whole ``[project.entry-points...]`` sections)."""
    src = root / name
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(textwrap.dedent(module_src))
    for filename, text in (files or {}).items():
        (src / name / filename).write_text(text)
    entries = entry if entry.lstrip().startswith("[") else f'[project.entry-points."{group}"]\n{entry}'
    (src / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "0.1"
        [tool.setuptools]
        packages = ["{name}"]
    ''') + textwrap.dedent(entries) + "\n")
    return src


def _install(packages: list[Path], site: Path) -> None:
    for pkg in packages:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(pkg)], check=True, capture_output=True)


CLASH = '''
from actmax_stripes import Stripes


class OtherPixel(Stripes):
    """A plugin that also calls itself pixel."""


class OtherStripes(Stripes):
    """A second plugin that also calls itself stripes."""
'''

EXAMPLES = REPO / "docs" / "examples"
EXAMPLE_ENTRIES = '''
[project.entry-points."actmax.generators"]
example_grating = "actmax_examples.example_generator:GratingGenerator"
[project.entry-points."actmax.optimizers"]
example_hill = "actmax_examples.example_optimizer:HillClimber"
[project.entry-points."actmax.scorers"]
example_halves = "actmax_examples.example_scorer:HalvesScorer"
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """pip-install a good plugin, a broken one, a clashing one and the docs' examples into a temporary site."""
    root = tmp_path_factory.mktemp("plugins")
    good = _package(root, "actmax_stripes", GOOD, 'stripes = "actmax_stripes:Stripes"')
    broken = _package(root, "actmax_broken", "raise ImportError('this plugin is broken on purpose')\n",
                      'broken = "actmax_broken:Thing"')
    clash = _package(root, "actmax_clash", CLASH,
                     'pixel = "actmax_clash:OtherPixel"\nstripes = "actmax_clash:OtherStripes"')
    examples = _package(root, "actmax_examples", '"""The plugin examples of docs/PLUGINS.md."""\n', EXAMPLE_ENTRIES,
                        files={p.name: p.read_text() for p in EXAMPLES.glob("example_*.py")})
    site = root / "site"
    _install([good, broken, clash, examples], site)
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


def _list_json(env: dict[str, str], *extra: str) -> dict:
    import json
    res = run_cli("list", "--json", *extra, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_clashing_and_broken_plugins_leave_builtins_and_good_plugins_working(plugin_site):
    res = run_cli("list", env=_env(plugin_site))
    assert res.returncode == 0, res.stderr
    builtin = _list_json({"ACTMAX_NO_PLUGINS": "1"})
    listed = _list_json(_env(plugin_site), "-v")
    for kind, parts in builtin.items():
        assert set(parts) <= set(listed[kind]), kind                       # every built-in still listed
        for name in parts:
            assert name in res.stdout
    assert {"stripes", "example_grating"} <= set(listed["generators"])     # the good plugins too
    assert "example_hill" in listed["optimizers"] and "example_halves" in listed["scorers"]
    pixel, stripes = listed["generators"]["pixel"], listed["generators"]["stripes"]
    assert pixel["origin"] == "built-in" and pixel["source"] == "actmax.generators.pixel.PixelGenerator"
    assert "actmax_clash" not in stripes["source"]                        # first plugin keeps its name
    assert stripes["distribution"] == "actmax_stripes 0.1"
    # the warnings say which distribution clashed and how to resolve it
    assert "skipping generator plugin 'pixel'" in res.stderr and "actmax_clash" in res.stderr
    assert "pip uninstall actmax_clash" in res.stderr and "renamed" in res.stderr
    assert "skipping generator plugin 'stripes'" in res.stderr and "already taken by the plugin" in res.stderr
    assert "broken on purpose" in res.stderr
    # the built-in pixel space is the one created
    ok = run_cli("evolve", "-g", "pixel:size=8", "-s", "model:kind=simple,n=1,size=8", "-o", "cma:popsize=4",
                 "--generations", "1", "--out", str(plugin_site.parent / "pixel_run"), "--no-progress",
                 env=_env(plugin_site))
    assert ok.returncode == 0, ok.stderr


def test_list_verbose_shows_source_and_distribution(plugin_site):
    res = run_cli("list", "-v", "generators", env=_env(plugin_site))
    assert res.returncode == 0, res.stderr
    from actmax.core import __version__
    assert f"actmax.generators.fourier.FourierGenerator [actmax {__version__}]" in res.stdout
    assert "entry point 'actmax_stripes:Stripes' of distribution actmax_stripes 0.1" in res.stdout


def test_example_plugins_from_the_docs_run_an_evolution(plugin_site, tmp_path):
    import json
    res = run_cli("evolve", "-g", "example_grating:size=16", "-s", "example_halves", "-o", "example_hill:popsize=6",
                  "--unit", "1", "--generations", "5", "--out", str(tmp_path / "run"), "--no-progress", "--json",
                  env=_env(plugin_site))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["spaces"] == ["example_grating"] and out["evaluations"] == 30
    import pandas as pd
    scores = pd.read_parquet(tmp_path / "run" / "scores.parquet")
    first = scores.loc[scores["generation"] == 0, "score"].max()
    assert out["best_score"] == pytest.approx(scores["score"].max())
    assert out["best_score"] > first + 0.01     # the hill climber found a grating brighter on the right


def test_installed_plugins_get_the_registry_driven_contract_tests(plugin_site):
    env = {**os.environ, **_env(plugin_site), "OMP_NUM_THREADS": "1"}
    # one pytest run: -v lists every test it ran (collected for the plugins) with its outcome
    res = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/test_contracts.py",
                          "-k", "example or stripes"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("example_grating", "example_hill", "example_halves", "stripes"):
        assert f"[{name}]" in res.stdout, name
    assert "9 passed" in res.stdout, res.stdout

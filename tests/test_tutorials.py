"""The documentation's tutorials (docs/tutorials/*.py) run, on small budgets, and say what they promise."""
from __future__ import annotations

import runpy
import sys

import pytest

from tests.conftest import REPO

TUTORIALS = REPO / "docs" / "tutorials"


def _run(script: str, *args: str, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(TUTORIALS / script), run_name="__main__")


def test_compare_spaces_tutorial(tmp_path, monkeypatch, capsys):
    _run("compare_spaces.py", str(tmp_path / "cmp"), "6", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "images shown per space: {'gabor': 120, 'fourier': 120}" in out
    assert (tmp_path / "cmp" / "trajectory.png").is_file()


def test_twin_meis_tutorial(tmp_path, monkeypatch, capsys):
    _run("twin_meis.py", str(tmp_path / "twin"), "6", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "held-out correlation per neuron" in out
    for line in (line for line in out.splitlines() if line.startswith("neuron ")):
        mei, lei = (float(w.rstrip(",")) for w in line.split() if w.replace(".", "").rstrip(",").isdigit())
        assert mei > lei, line                 # the twin's MEI drives the true neuron above its LEI
    assert (tmp_path / "twin" / "mei" / "images" / "montage.png").is_file()


@pytest.mark.parametrize("script", sorted(p.name for p in TUTORIALS.glob("*.py")))
def test_every_tutorial_is_tested(script):
    assert script in {"compare_spaces.py", "twin_meis.py"}, f"add a test for docs/tutorials/{script}"

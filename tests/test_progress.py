"""Progress bars: auto (terminal or notebook) by default, never carriage-return noise in logs."""
from __future__ import annotations

import io
import sys

import pytest

from actmax.core.progress import progress_bar, show_progress
from tests.conftest import run_cli


def test_auto_progress_follows_the_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert show_progress(None) is False and show_progress(True) is True
    monkeypatch.setattr(sys, "stderr", Tty())
    assert show_progress(None) is True and show_progress(False) is False
    assert not progress_bar(None, total=3).disable


def test_cli_writes_no_bar_into_a_log(tmp_path):
    res = run_cli("evolve", "-s", "model:kind=simple,n=1,size=32", "-o", "cma:popsize=6", "--generations", "4",
                  "--out", str(tmp_path / "ev"))
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr and "evolve:" not in res.stderr
    forced = run_cli("evolve", "-s", "model:kind=simple,n=1,size=32", "-o", "cma:popsize=6", "--generations", "4",
                     "--out", str(tmp_path / "ev2"), "--progress")
    assert forced.returncode == 0 and "evolve:" in forced.stderr


@pytest.mark.parametrize("what", ["evolve", "synthesize", "screen"])
def test_results_have_a_readable_repr(what, tmp_path):
    import actmax

    if what == "evolve":
        r = actmax.evolve("gabor:size=32", "model:kind=simple,n=1,size=32", "cma:popsize=6", unit=0,
                          generations=3, out_dir=tmp_path / "r")
        text = repr(r)
        assert text.startswith("EvolutionResult(unit=0, spaces=['gabor'], evaluations=18, best_score=")
    elif what == "screen":
        import numpy as np

        np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20, 1, 16, 16)).astype(np.float32))
        r = actmax.screen("model:kind=simple,n=2,size=16", tmp_path / "x.npy", k=3, out_dir=tmp_path / "r",
                          max_montages=0)
        text = repr(r)
        assert text.startswith("ScreenResult(20 images x 2 units, k=3, best response per unit ")
    else:
        r = actmax.synthesize("pixel:size=32", "model:kind=simple,n=2,size=32", ascent="ascent:steps=3",
                              out_dir=tmp_path / "r")
        text = repr(r)
        assert text.startswith("SynthesisResult(4 targets, units=[0, 1], responses: MEI ")
    assert str(tmp_path / "r") in text and len(text) < 300

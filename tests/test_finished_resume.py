"""Resuming a finished run verifies it and returns the stored result without building or replaying anything."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core.errors import RecordError
from actmax.core.evolve import evolve, resume_evolution
from actmax.core.runs.evolve import EvolveRun
from actmax.core.runs.synthesize import SynthesizeRun


def test_finished_resume_returns_the_stored_result_without_building_parts(tmp_path, monkeypatch):
    run = evolve("gabor:size=16", "model:kind=mixed,n=3,size=16", "cma:popsize=4", unit=1, pole="low",
                 generations=3, seed=1, out_dir=tmp_path / "r", image_every=0, plots=False)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished resume must not build the run")

    monkeypatch.setattr(EvolveRun, "__init__", refuse)
    again = resume_evolution(tmp_path / "r")
    pd.testing.assert_frame_equal(again.scores, run.scores)
    pd.testing.assert_frame_equal(again.trajectory, run.trajectory)
    assert again.best_score == run.best_score and again.best_space == run.best_space
    assert torch.equal(again.best_image, run.best_image) and np.array_equal(again.best_code, run.best_code)
    # still verified: a damaged file is an error (repair rebuilds, which does build the run)
    data = bytearray((tmp_path / "r" / "scores.parquet").read_bytes())
    data[-40] ^= 1
    (tmp_path / "r" / "scores.parquet").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="scores.parquet"):
        resume_evolution(tmp_path / "r")


def test_finished_synthesis_resume_returns_the_stored_result_without_building_parts(tmp_path, monkeypatch):
    from actmax.core.synthesize import resume_synthesis, synthesize

    run = synthesize("pixel:size=8", "model:kind=mixed,n=2,size=8", units=[0, 1], poles=("high", "low"),
                     ascent="ascent:steps=2", out_dir=tmp_path / "s", checkpoint_every=2)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished resume must not build the run")

    monkeypatch.setattr(SynthesizeRun, "__init__", refuse)
    again = resume_synthesis(tmp_path / "s")
    pd.testing.assert_frame_equal(again.table, run.table)
    assert again.targets == run.targets and torch.equal(again.responses, run.responses)
    assert torch.equal(again.images, run.images) and torch.equal(again.codes, run.codes)


def test_finished_screen_resume_returns_the_stored_result_without_building_the_scorer(tmp_path, monkeypatch):
    from actmax.core.apps.screen import ScreenRun, resume_screen, screen
    from actmax.core.registry import scorers

    images = np.random.default_rng(0).random((20, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    run = screen("model:kind=mixed,n=3,size=8", tmp_path / "x.npy", k=3, batch_size=8, checkpoint_every=1, bins=32,
                 out_dir=tmp_path / "s", max_montages=1)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished resume must not build the run or its scorer")

    with monkeypatch.context() as m:
        m.setattr(ScreenRun, "__init__", refuse)
        m.setattr(scorers, "create", refuse)
        again = resume_screen(tmp_path / "s")
    pd.testing.assert_frame_equal(again.table, run.table)
    pd.testing.assert_frame_equal(again.stats, run.stats)
    for name in ("top_values", "top_indices", "bottom_values", "bottom_indices"):
        np.testing.assert_array_equal(getattr(again, name), getattr(run, name))
    assert again.unit_names == run.unit_names and again.state.n == run.state.n == 20
    assert torch.equal(again.mais(1), run.mais(1)) and torch.equal(again.lais(2), run.lais(2))
    # still verified: a damaged table is an error naming it
    data = bytearray((tmp_path / "s" / "unit_stats.parquet").read_bytes())
    data[-40] ^= 1
    (tmp_path / "s" / "unit_stats.parquet").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="unit_stats.parquet"):
        resume_screen(tmp_path / "s")

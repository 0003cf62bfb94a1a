"""Resuming a finished run verifies it and returns the stored result without building or replaying anything."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core import evolve as evolve_module
from actmax.core.errors import RecordError
from actmax.core.evolve import evolve, resume_evolution


def test_finished_resume_returns_the_stored_result_without_building_parts(tmp_path, monkeypatch):
    run = evolve("gabor:size=16", "model:kind=mixed,n=3,size=16", "cma:popsize=4", unit=1, pole="low",
                 generations=3, seed=1, out_dir=tmp_path / "r", image_every=0, plots=False)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished resume must not build the run")

    monkeypatch.setattr(evolve_module, "_Evolution", refuse)
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
    from actmax.core import synthesize as synthesize_module
    from actmax.core.synthesize import resume_synthesis, synthesize

    run = synthesize("pixel:size=8", "model:kind=mixed,n=2,size=8", units=[0, 1], poles=("high", "low"),
                     ascent="ascent:steps=2", out_dir=tmp_path / "s", checkpoint_every=2)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished resume must not build the run")

    monkeypatch.setattr(synthesize_module, "_Synthesis", refuse)
    again = resume_synthesis(tmp_path / "s")
    pd.testing.assert_frame_equal(again.table, run.table)
    assert again.targets == run.targets and torch.equal(again.responses, run.responses)
    assert torch.equal(again.images, run.images) and torch.equal(again.codes, run.codes)

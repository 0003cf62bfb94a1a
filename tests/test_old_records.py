"""Records written by actmax before the run-kind kernel (issue 19) still load and resume.

``tests/fixtures/old_records`` was written by the code of commit 2669552 (tiny runs: a finished
and a killed evolution, synthesis and screen; the killed ones were interrupted inside a step).
Resuming a finished one re-verifies it and changes nothing; resuming a killed one ends where an
uninterrupted run of today's code ends.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import actmax
from actmax.core.records import RunRecord
from actmax.core.runs import resume

OLD = Path(__file__).parent / "fixtures" / "old_records"


@pytest.fixture()
def old(tmp_path, monkeypatch):
    shutil.copytree(OLD, tmp_path / "old")
    monkeypatch.chdir(tmp_path / "old")   # the screens name their image array relative to here
    return tmp_path / "old"


@pytest.mark.parametrize("kind", ["evolve", "synthesize", "screen"])
def test_finished_old_record_loads_and_resumes_unchanged(kind, old):
    rec = old / f"{kind}_finished"
    run = actmax.load_run(rec)
    assert run.kind == kind and run.manifest["status"] == "finished"
    files = {p: p.read_bytes() for p in rec.rglob("*") if p.is_file() and p.name != ".actmax.lock"}
    result = resume(rec)
    assert result.out_dir == rec
    assert {p: p.read_bytes() for p in rec.rglob("*") if p.is_file() and p.name != ".actmax.lock"} == files


def _fresh(kind, out):
    if kind == "evolve":
        return actmax.evolve("gabor:size=16", "model:n=2,size=16", "cma:popsize=4", unit=1, generations=4,
                             out_dir=out, image_every=0, plots=False)
    if kind == "synthesize":
        return actmax.synthesize("pixel:size=8", "model:n=2,size=8", units=[0, 1], poles=("high",),
                                 # the old code's mean luminance was free: a killed old record resumes as written
                                 ascent="ascent:steps=6,luminance=free", out_dir=out, checkpoint_every=2)
    return actmax.screen("model:n=2,size=8", "x.npy", k=2, batch_size=8, checkpoint_every=1, bins=32, out_dir=out,
                         max_montages=0)


@pytest.mark.parametrize("kind", ["evolve", "synthesize", "screen"])
def test_killed_old_record_resumes_to_what_an_uninterrupted_run_gives(kind, old):
    rec = old / f"{kind}_killed"
    assert RunRecord(rec).manifest()["status"] == "running"
    resumed = resume(rec)
    fresh = _fresh(kind, old / f"{kind}_fresh")
    m = RunRecord(rec).manifest(verify=True)
    assert m["status"] == "finished" and m["resumed"] == 1
    if kind == "screen":
        pd.testing.assert_frame_equal(resumed.stats, fresh.stats)
        pd.testing.assert_frame_equal(resumed.table, fresh.table)
    else:
        pd.testing.assert_frame_equal(RunRecord(rec).scores(), RunRecord(old / f"{kind}_fresh").scores())
        if kind == "evolve":
            assert resumed.best_score == fresh.best_score
        else:
            pd.testing.assert_frame_equal(resumed.table, fresh.table)

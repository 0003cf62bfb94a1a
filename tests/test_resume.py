"""A killed run resumes and ends exactly where an uninterrupted run ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core.records import RunRecord
from tests.conftest import REPO, run_cli

EVOLVE = ["evolve", "-g", "gabor:size=32", "-s", "callable:fn=tests.helpers.slow_neurons:slow,units=3",
          "-o", "cma:popsize=12", "--unit", "2", "--generations", "14", "--seed", "3", "--no-progress"]


def _start(out, delay="0.15"):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_NEURONS_DELAY": delay}
    return subprocess.Popen([sys.executable, "-m", "actmax.core.cli", *EVOLVE, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _generations_done(out) -> int:
    """Generations committed: the running record's parts index, or the finished table."""
    from actmax.core.records.parts import steps_done
    if steps_done(out):
        return steps_done(out)
    try:
        return int(pd.read_parquet(out / "scores.parquet")["generation"].max()) + 1
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def _assert_same_record(a, b):
    ra, rb = RunRecord(a), RunRecord(b)
    pd.testing.assert_frame_equal(ra.scores(), rb.scores())
    ca, cb = ra.codes(), rb.codes()
    assert ca.keys() == cb.keys()
    for k in ca:
        assert torch.equal(ca[k], cb[k]), k
    assert (a / "best.png").read_bytes() == (b / "best.png").read_bytes()
    ma, mb = ra.manifest(), rb.manifest()
    assert ma["status"] == mb["status"] == "finished"
    assert ma["best_score"] == mb["best_score"] and ma["evaluations"] == mb["evaluations"]
    ia = {p.relative_to(a).as_posix(): p.read_bytes() for p in (a / "images").rglob("*.png")}
    ib = {p.relative_to(b).as_posix(): p.read_bytes() for p in (b / "images").rglob("*.png")}
    assert ia.keys() == ib.keys() and ia == ib       # montages too (generations 0 and 10)
    assert "images/gen010_gabor.png" in ia
    assert not list(a.rglob(".*.tmp"))                # no temporary file left behind


def test_killed_evolution_resumes_to_identical_record(tmp_path):
    full = tmp_path / "full"   # the uninterrupted run and the resumes need no process of their own
    res = run_cli(*EVOLVE, "--out", str(full), env={"SLOW_NEURONS_DELAY": "0"})
    assert res.returncode == 0, res.stderr

    killed = tmp_path / "killed"
    proc = _start(killed)
    deadline = time.time() + 240
    while _generations_done(killed) < 5 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = _generations_done(killed)
    assert 5 <= done < 14, f"kill landed at generation {done}, not mid-run"
    assert RunRecord(killed).manifest()["status"] == "running"

    env = {"SLOW_NEURONS_DELAY": "0"}
    res = run_cli("resume", str(killed), "--no-progress", env=env)
    assert res.returncode == 2 and "--trust" in res.stderr   # the spec imports a test module: a record is data
    res = run_cli("resume", "--trust", str(killed), "--no-progress", env=env)
    assert res.returncode == 0, res.stderr
    _assert_same_record(killed, full)
    m = RunRecord(killed).manifest()
    assert m["resumed"] == 1
    assert m["elapsed_s"] > 5 * 0.15   # summed over the killed part and the resume

def test_interrupted_synthesis_resumes_to_identical_result(tmp_path, monkeypatch):
    from actmax.core.synthesize import resume_synthesis, synthesize
    import tests.helpers.slow_neurons as sn

    kwargs = dict(units=[0, 2], poles=("high", "low"), seeds=(0, 1), ascent="ascent:steps=40,lr=0.05,jitter=1",
                  checkpoint_every=5)
    scorer = "callable:fn=tests.helpers.slow_neurons:crashing,units=3,differentiable=True"
    full = synthesize("pixel:size=32", scorer, out_dir=tmp_path / "full", **kwargs)

    monkeypatch.setenv("CRASH_AT", str(sn._CALLS["n"] + 23))  # dies during step 23
    with pytest.raises(KeyboardInterrupt):
        synthesize("pixel:size=32", scorer, out_dir=tmp_path / "killed", **kwargs)
    monkeypatch.delenv("CRASH_AT")
    assert RunRecord(tmp_path / "killed").load_checkpoint()["state"]["ascent"]["step"] == 20
    resumed = resume_synthesis(tmp_path / "killed", trust=True)
    assert torch.equal(resumed.codes, full.codes)
    assert torch.equal(resumed.responses, full.responses)
    pd.testing.assert_frame_equal(RunRecord(tmp_path / "killed").scores(), RunRecord(tmp_path / "full").scores())


def test_pycma_state_roundtrip_through_checkpoint(tmp_path):
    from actmax.core.records import load_checkpoint_file
    from actmax.core.registry import optimizers

    f = lambda x: -np.sum((x - 1.0) ** 2, axis=1)  # noqa: E731
    a = optimizers.create("cma:popsize=8", dim=5, seed=4)
    for _ in range(6):
        x = a.ask()
        a.tell(x, f(x))
    rec = RunRecord(tmp_path)
    rec.save_checkpoint({"opt": a.state_dict()})
    b = optimizers.create("cma:popsize=8", dim=5, seed=4)
    b.load_state_dict(load_checkpoint_file(tmp_path / "checkpoint.pt")["opt"])
    for _ in range(4):
        xa, xb = a.ask(), b.ask()
        assert np.array_equal(xa, xb)
        a.tell(xa, f(xa))
        b.tell(xb, f(xb))


def _finished_run(kind, out):
    """A small finished record of each kind, and the function that resumes it."""
    if kind == "evolve":
        from actmax.core.evolve import evolve, resume_evolution
        res = evolve("gabor:size=16", "model:n=2,size=16", "cma:popsize=4", unit=1, generations=3, out_dir=out,
                     image_every=1, plots=False)
        return res.scores, resume_evolution, lambda r: r.scores
    if kind == "synthesize":
        from actmax.core.synthesize import resume_synthesis, synthesize
        res = synthesize("pixel:size=16", "model:n=2,size=16", units=[0, 1], ascent="ascent:steps=4", out_dir=out,
                         checkpoint_every=3)
        return res.table, resume_synthesis, lambda r: r.table
    from actmax.core.apps.natural_images import sample_patches
    from actmax.core.apps.screen import resume_screen, screen
    np.save(out.parent / "x.npy", (sample_patches(40, 16, seed=1) * 255).astype(np.uint8))
    res = screen("model:n=2,size=16", out.parent / "x.npy", k=3, batch_size=8, checkpoint_every=2, out_dir=out,
                 max_montages=1)
    return res.stats, resume_screen, lambda r: r.stats


@pytest.mark.parametrize("kind", ["evolve", "synthesize", "screen"])
def test_one_lifecycle_for_every_kind(kind, tmp_path):
    """Every kind: a finish time, the final checkpoint kept, summed elapsed time, and resuming a
    finished run re-verifies it and returns the same result without writing anything."""
    out = tmp_path / "run"
    table, resume, table_of = _finished_run(kind, out)
    m = RunRecord(out).manifest(verify=True)
    assert m["status"] == "finished" and m["finished"] and m["elapsed_s"] > 0 and m["run_id"]
    assert (out / "checkpoint.pt").exists() and set(m["files"]) >= {"checkpoint.pt"}
    files = lambda: {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".actmax.lock"}  # noqa: E731
    before = files()
    again = resume(out)
    pd.testing.assert_frame_equal(table_of(again), table)
    assert files() == before
    assert not list(out.rglob(".*.tmp"))

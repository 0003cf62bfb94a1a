"""Fault injection: runs killed at random points resume to exactly the uninterrupted record."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from actmax.core.evolve import evolve, resume_evolution
from actmax.core.records import RunRecord
from tests.conftest import REPO

GENS = 12
IMAGE_EVERY = 2   # montages on: every other generation writes one
SPEC = dict(generator="gabor:size=16", scorer="callable:fn=tests.helpers.slow_neurons:slow,units=3",
            optimizer="cma:popsize=6", unit=2, seed=11)


def _evolve(out):
    return evolve(SPEC["generator"], SPEC["scorer"], SPEC["optimizer"], unit=SPEC["unit"], seed=SPEC["seed"],
                  generations=GENS, out_dir=out, image_every=IMAGE_EVERY)


def _same(a, b):
    ra, rb = RunRecord(a), RunRecord(b)
    pd.testing.assert_frame_equal(ra.scores(), rb.scores())
    ca, cb = ra.codes(), rb.codes()
    assert all(torch.equal(ca[k], cb[k]) for k in ca) and ca.keys() == cb.keys()
    assert ra.manifest()["best_score"] == rb.manifest()["best_score"]
    files = lambda r: {p.relative_to(r).as_posix(): p.read_bytes() for p in r.rglob("*.png")}  # noqa: E731
    fa, fb = files(a), files(b)
    assert fa.keys() == fb.keys() and fa == fb, sorted(set(fa) ^ set(fb))   # images/ montages and best.png
    assert not list(a.rglob(".*.tmp")), list(a.rglob(".*.tmp"))            # temporary files cleaned


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    os.environ["SLOW_NEURONS_DELAY"] = "0"
    out = tmp_path_factory.mktemp("ref") / "run"
    _evolve(out)
    return out


def _done(out) -> int:
    """Generations committed: the running record's parts index, or the finished table."""
    from actmax.core.records.parts import steps_done
    if steps_done(out):
        return steps_done(out)
    try:
        return int(pd.read_parquet(out / "scores.parquet")["generation"].max()) + 1
    except Exception:  # noqa: BLE001 - not there yet, or being replaced
        return 0


@pytest.mark.slow
def test_sigkill_at_random_points_20_trials(reference, tmp_path):
    """A real SIGKILL at a random moment (mid-generation, mid-write) loses at most one generation."""
    rng = random.Random(2024)
    args = ["evolve", "-g", SPEC["generator"], "-s", SPEC["scorer"], "-o", SPEC["optimizer"], "--unit",
            str(SPEC["unit"]), "--seed", str(SPEC["seed"]), "--generations", str(GENS), "--no-progress",
            "--image-every", str(IMAGE_EVERY)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_NEURONS_DELAY": "0.05"}
    kill_points = []
    for trial in range(20):
        out = tmp_path / f"t{trial}"
        target = rng.randint(1, GENS - 2)
        proc = subprocess.Popen([sys.executable, "-m", "actmax.core.cli", *args, "--out", str(out)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while _done(out) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.08))  # land anywhere inside the next generation or its writes
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        before = _done(out)
        kill_points.append(before)
        if RunRecord(out).manifest().get("status") == "finished":
            continue  # finished before the kill landed: nothing to resume, still must match
        resume_evolution(out, trust=True)
        _same(out, reference)
    assert len(set(kill_points)) >= 5, kill_points  # the kills really landed at different generations


@pytest.mark.parametrize("trial", range(20))
def test_crash_at_random_write_is_atomic(reference, tmp_path, monkeypatch, trial):
    """Crash inside any file write (after a partial temp file) and resume: the record still matches."""
    import actmax.core.files as records   # every record write goes through files.atomic_write_bytes

    rng = random.Random(trial)
    real = records.atomic_write_bytes
    calls = {"n": 0}
    crash_at = rng.randint(2, 37)  # any of the run's 37 writes: manifest, per-generation (scores, montage, checkpoint), final

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == crash_at:
            part = path.parent / f".{path.name}.partial.tmp"
            part.write_bytes(data[: len(data) // 2])  # a torn temporary file is left behind
            raise KeyboardInterrupt(f"killed while writing {path.name}")
        real(path, data)

    monkeypatch.setattr(records, "atomic_write_bytes", flaky)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _evolve(out)
    monkeypatch.setattr(records, "atomic_write_bytes", real)
    resume_evolution(out, trust=True)
    _same(out, reference)

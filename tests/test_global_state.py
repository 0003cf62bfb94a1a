"""No hidden global state: runs leave the caller's matplotlib backend, torch threads, torch RNG and
the modules passed in as they found them."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch

from tests.conftest import REPO


def test_evolve_and_plots_keep_the_callers_matplotlib_backend(tmp_path):
    code = f"""
import matplotlib, sys
matplotlib.use("svg")                                   # the caller's choice (a notebook's would be inline)
import actmax
import actmax.core.apps.plots, actmax.core.apps.benchmark, actmax.core.apps.closed_loop
for plots in (False, True):
    actmax.evolve("pixel:size=8", "model:kind=simple,n=1,size=8", "cma:popsize=4", generations=2,
                  out_dir={str(tmp_path)!r} + f"/run{{plots}}", plots=plots)
import matplotlib.pyplot as plt
print(matplotlib.get_backend(), len(plt.get_fignums()))    # and no figure left open in the caller's pyplot
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["svg", "0"]
    assert (tmp_path / "runTrue" / "trajectory.png").stat().st_size > 1000      # the plot was still written
    assert not (tmp_path / "runFalse" / "trajectory.png").exists()


def test_campaign_cell_restores_torch_threads(tmp_path):
    from actmax.core.apps.campaign import run_cell

    cell = {"kind": "evolve", "scorer": "model:kind=simple,n=1,size=8", "spaces": ["pixel:size=8"],
            "optimizer": "cma:popsize=4", "seed": 0, "units": [0], "poles": ["high"], "generations": 2,
            "plots": False}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        row = run_cell(cell, tmp_path, threads=1)
        assert row["action"] == "ran", row
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_twin_training_leaves_the_global_rng_alone():
    from actmax.scorers.twin.train import TrainOptions, train_twin
    from tests.test_twin import SMALL

    rng = np.random.default_rng(0)
    images = rng.random((40, 1, 16, 16)).astype(np.float32)
    responses = rng.poisson(3.0, size=(2, 40, 2)).astype(float)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = train_twin(images, responses, architecture=SMALL, options=TrainOptions(max_epochs=1, members=1))
    assert torch.equal(torch.get_rng_state(), state)
    b = train_twin(images, responses, architecture=SMALL, options=TrainOptions(max_epochs=1, members=1))
    x = torch.as_tensor(images[:4])
    with torch.no_grad():
        assert torch.equal(a.ensemble(x), b.ensemble(x))          # still seeded: same twin twice


def test_synthesize_gives_the_modules_their_requires_grad_back():
    import actmax
    from actmax.scorers.callable import CallableScorer

    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Sigmoid())
    conv[0].bias.requires_grad_(False)                  # a flag the caller chose is kept too
    scorer = CallableScorer(conv, units=2, differentiable=True)
    res = actmax.synthesize("pixel:size=8", scorer, units=[1], poles=["high"], ascent="ascent:steps=3")
    assert res.images.shape == (1, 1, 8, 8)
    assert conv[0].weight.requires_grad and not conv[0].bias.requires_grad

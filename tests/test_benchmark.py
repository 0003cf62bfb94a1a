"""The optimizer benchmark: noise model, tidy tables, normalisation, files and the CLI command."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core.apps.benchmark import NoisyResponses, run_benchmark
from actmax.core.registry import RegistryError
from actmax.scorers.callable import CallableScorer

SMALL = dict(spaces=["gabor:size=24"], scorer="model:kind=simple,n=2,size=24", budget=200, popsize=20)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    res = run_benchmark(optimizer_specs=["cholesky_cma", "random"], noise=[0.0, 0.5], out_dir=out, **SMALL)
    return res, out


def test_noise_is_multiplicative_rectified_and_clean_is_kept():
    ones = CallableScorer(lambda x: torch.full((x.shape[0], 2), 3.0), units=2)
    noisy = NoisyResponses(ones, sigma=0.5, seed=0)
    out = noisy(torch.full((20000, 1, 4, 4), 0.5))
    assert out.shape == (20000, 2) and float(out.min()) >= 0.0
    # E[max(0, 1 + s N)] = Phi(1/s) + s phi(1/s)
    phi = math.exp(-2.0) / math.sqrt(2 * math.pi)
    expected = 3.0 * (0.5 * (1 + math.erf(2 / math.sqrt(2))) + 0.5 * phi)
    assert float(out.mean()) == pytest.approx(expected, rel=0.01)
    assert float((out == 0).float().mean()) == pytest.approx(0.0228, abs=0.004)   # P(1 + 0.5 N < 0)
    np.testing.assert_array_equal(noisy.clean[0], np.full((20000, 2), 3.0))
    clean = NoisyResponses(ones, sigma=0.0, seed=0)
    assert torch.equal(clean(torch.full((3, 1, 4, 4), 0.5)), torch.full((3, 2), 3.0))


def test_runs_table_is_tidy_and_normalised(small):
    res, _ = small
    runs = res.runs
    assert len(runs) == 2 * 2 * 1 * 2                      # optimizers x noise x space x units
    assert set(runs["evaluations"]) == {200}
    assert np.all((runs["norm_score"] > 0) & (runs["norm_score"] <= 1))
    np.testing.assert_allclose(runs.groupby(["space", "unit"])["norm_score"].max(), 1.0)
    quiet, loud = runs[runs["noise"] == 0], runs[runs["noise"] == 0.5]
    np.testing.assert_allclose(quiet["best_noisy"], quiet["best_clean"])       # no noise: same numbers
    assert not np.allclose(loud["best_noisy"], loud["best_clean"])             # the optimizer saw noise
    assert np.all(runs["clean_at_best_noisy"] <= runs["best_clean"] + 1e-12)
    assert np.all(runs["fraction_of_optimum"] <= 1 + 1e-6)                     # nothing beats the known optimum
    assert set(res.summary["space"]) == {"gabor:size=24"} and set(res.summary["dim"]) == {8}


def test_trajectory_is_monotone_and_ends_at_the_run_best(small):
    res, _ = small
    traj = res.trajectory
    for _, run in traj.groupby(["optimizer", "space", "unit", "noise", "seed"]):
        best = run.sort_values("generation")["best_clean_so_far"].to_numpy()
        assert np.all(np.diff(best) >= 0)
    last = traj.sort_values("generation").groupby(["optimizer", "unit", "noise"]).tail(1)
    merged = last.merge(res.runs, on=["optimizer", "space", "unit", "noise", "seed"])
    np.testing.assert_allclose(merged["best_clean_so_far"], merged["best_clean"])
    assert set(traj["evaluations"]) == set(range(20, 201, 20))


def test_outputs_written(small):
    _, out = small
    for name in ("runs.parquet", "runs.csv", "trajectory.parquet", "summary.csv", "benchmark.png"):
        assert (out / name).stat().st_size > 0
    assert len(pd.read_parquet(out / "runs.parquet")) == 8
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_is_reproducible():
    kw = dict(optimizer_specs=["genetic:popsize=10,n_conserve=2"], noise=[0.2], units=[1], **SMALL)
    a, b = run_benchmark(**kw), run_benchmark(**kw)
    pd.testing.assert_frame_equal(a.runs.drop(columns="time_s"), b.runs.drop(columns="time_s"))
    assert set(a.runs["evaluations"]) == {200}                  # budget // the optimizer's own popsize


def test_bad_benchmark_input():
    with pytest.raises(ValueError, match="noise"):
        run_benchmark(optimizer_specs=["random"], noise=[-0.1], **SMALL)
    with pytest.raises(RegistryError, match="unknown optimizer"):
        run_benchmark(optimizer_specs=["nope"], noise=[0.0], **SMALL)
    with pytest.raises(IndexError, match="unit"):
        run_benchmark(optimizer_specs=["random"], noise=[0.0], units=[5], **SMALL)


def test_cma_beats_random_search_on_a_model_neuron():
    res = run_benchmark(optimizer_specs=["cholesky_cma", "random"], spaces=["fourier:size=16"],
                        scorer="model:kind=simple,n=2,size=32", budget=800, noise=[0.0])
    table = res.table()
    assert table.loc["cholesky_cma", 0.0] > table.loc["random", 0.0] + 0.2


def test_cli_benchmark(tmp_path):
    from typer.testing import CliRunner
    from actmax.core.cli import app

    result = CliRunner().invoke(app, ["benchmark", "-o", "cholesky_cma", "-o", "genetic:popsize=20,n_conserve=5",
                                      "-g", "gabor:size=24", "-s", "model:kind=simple,n=1,size=24",
                                      "--budget", "100", "--popsize", "20", "--noise", "0", "--noise", "0.2",
                                      "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "cholesky_cma" in result.output and "genetic:n_conserve=5,popsize=20" in result.output  # canonical text
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 4


def test_default_space_is_gecco_4096_d_deepsim_or_a_stated_stand_in(tmp_path, monkeypatch):
    from actmax.core.apps.benchmark import default_spaces
    from actmax.core.registry import generators
    import os
    for var in [v for v in os.environ if v.startswith("ACTMAX_") and v != "ACTMAX_NO_PLUGINS"]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_spaces() == ("pixel:size=64",)
    assert generators.create("pixel:size=64").dim == 4096 == generators.create("deepsim:pretrained=False").dim
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save({"x": torch.zeros(1)}, ckpt / "upconvGAN_fc6.pt")
    assert default_spaces() == ("deepsim",)


def test_results_are_per_space_never_pooled_across_dimensions():
    res = run_benchmark(optimizer_specs=["cholesky_cma", "random"], spaces=["gabor:size=16", "pixel:size=8"],
                        scorer="model:kind=simple,n=1,size=16", budget=40, popsize=10, noise=[0.0])
    assert set(res.summary["space"]) == {"gabor:size=16", "pixel:size=8"}              # no pooled "all" row
    assert dict(zip(res.summary["space"], res.summary["dim"])) == {"gabor:size=16": 8, "pixel:size=8": 64}
    with pytest.raises(ValueError, match="per space"):
        res.table()
    tables = res.tables()
    assert list(tables) == ["gabor:size=16", "pixel:size=8"]
    for space, table in tables.items():
        runs = res.runs[res.runs["space"] == space]
        assert table.loc["random", 0.0] == pytest.approx(runs.loc[runs["optimizer"] == "random", "norm_score"].mean())
    np.testing.assert_allclose(res.runs.groupby("space")["norm_score"].max(), 1.0)


def test_every_default_optimizer_runs_at_a_small_popsize():
    from actmax.core.apps.benchmark import DEFAULT_OPTIMIZERS
    res = run_benchmark(optimizer_specs=list(DEFAULT_OPTIMIZERS), spaces=["gabor:size=16"],
                        scorer="model:kind=simple,n=1,size=16", budget=36, popsize=12, noise=[0.0])
    assert len(res.runs) == len(DEFAULT_OPTIMIZERS)
    assert set(res.runs.loc[res.runs["optimizer"].isin(["sphere_cma", "genetic"]), "evaluations"]) == {36}

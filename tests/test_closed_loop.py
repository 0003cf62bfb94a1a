"""In-silico closed loop: simulated recordings, a twin trained on them, its MEIs shown to the truth."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actmax.core.apps.closed_loop import ClosedLoopConfig, natural_stimuli, run_closed_loop, simulate_trials

SMALL_LOOP = ClosedLoopConfig(
    neurons="model:kind=mixed,n=3,size=32,seed=0", n_train=600, n_test=60, repeats=5, window=20.0, norm=3.0,
    architecture={"hidden_channels": 8, "layers": 2, "input_kernel": 7, "hidden_kernel": 5},
    train={"max_epochs": 15, "lr": 0.01, "batch_size": 16},
    generator="pixel:size=32", ascent="ascent:steps=100,lr=0.05,jitter=1,blur_sigma=1.0")


def test_natural_stimuli_have_grey_mean_aperture_and_fixed_contrast():
    x = natural_stimuli(50, 32, seed=3, aperture=0.2, norm=2.5)
    assert x.shape == (50, 1, 32, 32) and x.min() >= 0 and x.max() <= 1
    norms = (x - 0.5).flatten(1).norm(dim=1)
    assert norms.max() <= 2.5 + 1e-4                    # clipping to [0, 1] can only lower the contrast
    assert (norms > 2.5 - 1e-3).float().mean() >= 0.8
    corner, centre = (x[:, 0, :4, :4] - 0.5).abs().mean(), (x[:, 0, 12:20, 12:20] - 0.5).abs().mean()
    assert corner < 0.1 * centre                        # the aperture fades to grey


def test_simulated_trials_are_poisson_counts_with_nan_padding():
    rates = np.array([[2.0, 0.5], [4.0, 0.0]])
    out = simulate_trials(np.tile(rates, (2000, 1)), np.tile([1, 3], 2000), window=5.0, seed=0)
    assert out.shape == (3, 4000, 2)
    assert np.isnan(out[1:, 0::2]).all() and np.isfinite(out[:, 1::2]).all()
    counts = out[:, 1::2].reshape(-1, 2)                # images with rates (4.0, 0.0), 3 trials each
    assert counts.mean(0) == pytest.approx([20.0, 0.0], abs=0.3)
    assert counts.var(0)[0] == pytest.approx(20.0, rel=0.1)   # Poisson: variance = mean
    assert np.all(counts == np.round(counts))


def test_small_closed_loop_twin_mei_beats_best_natural_patch(tmp_path):
    torch.manual_seed(0)
    rep = run_closed_loop(SMALL_LOOP, out_dir=tmp_path)
    twin = rep["twin"]
    assert twin["median_test_correlation"] >= 0.6, twin["test_correlation"]
    assert twin["median_correlation_to_noise_free_rates"] >= 0.6
    rows = rep["neurons"]
    # the twin's MEI drives the ground truth above its best natural patch for most neurons
    assert rep["fraction_mei_beats_best_natural"] >= 2 / 3, rows
    assert rep["fraction_mei_beats_best_natural"] == np.mean([r["mei_response"] > r["best_natural_response"]
                                                              for r in rows])
    # ...and never above the known optimum (sanity of the ground truth)
    assert all(r["mei_response"] <= r["optimum_response"] * 1.0001 for r in rows)
    # every neuron reports its grey screen, LEI vs grey, twin over-prediction and the MEI's luminance/contrast
    for r in rows:
        assert r["lei_below_grey"] == (r["lei_response"] <= r["grey_response"])
        assert r["twin_over_prediction"] is None or r["twin_over_prediction"] > 0
        assert 0 <= r["mei_mean_luminance"] <= 1 and r["mei_rms_contrast"] > 0
    for row in rep["per_kind"]:
        lo, hi = row["median_all_mei_fraction_of_optimum_ci95"]
        assert lo <= row["median_all_mei_fraction_of_optimum"] <= hi
    # fair contrast: natural patches and MEIs/LEIs are [0, 1] images with the same L2 contrast
    c = rep["contrast"]
    assert c["natural_l2_norm"]["max"] <= 3.0 + 1e-3 and c["synthesised_l2_norm"]["max"] <= 3.0 + 1e-3
    assert c["synthesised_l2_norm"]["median"] >= 0.95 * c["natural_l2_norm"]["median"]
    saved = torch.load(tmp_path / "images.pt", weights_only=True)
    assert saved["mei_lei"].min() >= 0 and saved["mei_lei"].max() <= 1
    assert json.loads((tmp_path / "closed_loop.json").read_text())["fraction_mei_beats_best_natural"] == \
        rep["fraction_mei_beats_best_natural"]
    for f in ("closed_loop.png", "twin/twin.json", "twin/member_0.safetensors", "twin/report.png"):
        assert (tmp_path / f).stat().st_size > 100, f


@pytest.mark.slow   # six families, 800 images, a twin and MEIs each: ~30 CPU-s (the small loop above stays fast)
def test_closed_loop_on_every_family_reports_a_per_kind_table(tmp_path):
    """All six families (RGB patches for the colour cell): per-kind rows, readout errors, fractions."""
    from dataclasses import replace

    from actmax.core.apps.closed_loop import format_per_kind

    torch.manual_seed(0)
    cfg = replace(SMALL_LOOP, neurons="model:kind=all,n=6,size=32,seed=0", n_train=800)
    rep = run_closed_loop(cfg, out_dir=tmp_path)
    kinds = [r["kind"] for r in rep["per_kind"]]
    assert kinds == ["simple", "complex", "dual", "endstop", "colour", "cnn"]
    assert all(r["n"] == 1 for r in rep["per_kind"])
    assert all(n["readout_error_px"] is not None for n in rep["neurons"])
    assert rep["contrast"]["natural_l2_norm"]["max"] <= 3.0 + 1e-3
    text = format_per_kind(rep["per_kind"])
    assert text.count("\n") == 6 and "endstop" in text
    for row in rep["per_kind"]:    # the table agrees with the per-neuron rows
        n = next(r for r in rep["neurons"] if r["kind"] == row["kind"])
        if row["reliable"]:
            assert row["mei_beats_best_natural"] == float(n["mei_beats_best_natural"])
            assert row["readout_within_2px"] == float(n["readout_within_2px"])
    saved = json.loads((tmp_path / "closed_loop.json").read_text())
    assert saved["per_kind"] == rep["per_kind"]


def test_bootstrap_median_interval_brackets_the_median():
    from actmax.core.apps.closed_loop import bootstrap_median
    med, ci = bootstrap_median(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    assert med == 3.0 and ci[0] <= 3.0 <= ci[1] and ci[0] >= 1.0 and ci[1] <= 100.0
    assert bootstrap_median(np.array([np.nan])) == (None, None)

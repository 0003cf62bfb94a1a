"""Closed-loop controls (best RF Gabor, RF-masked natural patch, grey) on neurons whose answers are known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actmax.core.apps.controls import (at_contrast, best_rf_gabor, best_rf_masked_natural, grey_response,
                                       worst_rf_gabor)
from actmax.core.errors import InputError
from actmax.core.registry import scorers


def _rf(neurons) -> np.ndarray:
    return np.array([r[:2] for r in neurons.receptive_fields])


def _optimum_at(neurons, norm: float) -> torch.Tensor:
    """Each unit's known optimum scaled to contrast ``norm`` (below its limit R: the best image at that contrast)."""
    opt = neurons.optimal_stimulus("high") - 0.5
    scale = torch.clamp(norm / opt.flatten(1).norm(dim=1), max=1.0).view(-1, 1, 1, 1)
    with torch.no_grad():
        return neurons(0.5 + opt * scale)[torch.arange(neurons.units), torch.arange(neurons.units)]


@pytest.fixture(scope="module")
def simple():
    return scorers.create("model:kind=simple,n=6,size=32,seed=3").eval()


def test_best_rf_gabor_reaches_a_simple_cells_optimum_and_orientation(simple):
    """A simple cell's optimum is a Gabor at its RF: the search reaches >= 0.95 of it and its orientation."""
    norm = float(simple.limit.min())
    images, resp, params = best_rf_gabor(simple, _rf(simple), norm=norm, size=32, seed=0)
    assert (resp >= 0.95 * _optimum_at(simple, norm).double().numpy()).all()
    for u, p in enumerate(params):
        err = abs(p["theta"] - simple.receptive_fields[u][3]) % math.pi
        assert math.degrees(min(err, math.pi - err)) < 10
        assert (p["x"], p["y"]) == pytest.approx(tuple(simple.receptive_fields[u][:2]))
    with torch.no_grad():   # the responses are the images' own
        assert np.allclose(resp, simple(images)[torch.arange(6), torch.arange(6)].double().numpy(), rtol=1e-5)


def test_controls_keep_the_contrast_range_and_grey_mean(simple):
    rf = _rf(simple)
    for images in (best_rf_gabor(simple, rf, norm=3.0, size=32, evaluations=600)[0],
                   worst_rf_gabor(simple, rf, norm=3.0, size=32, evaluations=600)[0]):
        assert images.shape == (6, 1, 32, 32)
        assert images.min() >= 0 and images.max() <= 1
        assert torch.allclose((images - 0.5).flatten(1).norm(dim=1), torch.tensor(3.0), rtol=0.02)
        assert torch.allclose(images.mean(dim=(1, 2, 3)), torch.tensor(0.5), atol=0.01)
    # at_contrast: the same contract for arbitrary patterns, clipping compensated
    out = at_contrast(torch.randn(4, 3, 16, 16) * torch.tensor([1.0, 5.0, 0.1, 20.0]).view(-1, 1, 1, 1), 2.0)
    assert torch.allclose((out - 0.5).flatten(1).norm(dim=1), torch.tensor(2.0), rtol=0.02)
    assert torch.allclose(out.mean(dim=(2, 3)), torch.tensor(0.5), atol=0.01)


def test_worst_rf_gabor_drives_a_simple_cell_to_its_floor(simple):
    norm = float(simple.limit.min())
    _, low, _ = worst_rf_gabor(simple, _rf(simple), norm=norm, size=32, evaluations=800)
    grey = grey_response(simple, 32, 1)
    assert grey.shape == (6,) and (grey > 0).all()
    assert (low < 0.05 * grey).all()     # the floor of a simple cell is ~0, its baseline gain * ln2 / softplus(8)


def test_colour_directions_beat_luminance_gabors_on_a_colour_cell():
    cells = scorers.create("model:kind=colour,n=2,size=24,seed=1").eval()
    rf, norm = _rf(cells), float(cells.limit.min())
    _, grey_only, _ = best_rf_gabor(cells, rf, norm=norm, size=24, channels=1, evaluations=480)
    images, colour, params = best_rf_gabor(cells, rf, norm=norm, size=24, channels=3, evaluations=2048)
    assert images.shape == (2, 3, 24, 24)
    assert (colour > 2.0 * grey_only).all()
    assert (colour >= 0.9 * _optimum_at(cells, norm).double().numpy()).all()
    assert all(abs(np.linalg.norm(p["colour"]) - 1) < 1e-3 for p in params)


def test_best_rf_masked_natural_is_the_best_windowed_stimulus(simple):
    from actmax.core.apps.controls import rf_masked, rf_window

    rf = _rf(simple)[:2]
    stimuli = torch.rand(40, 1, 32, 32)
    images, resp = best_rf_masked_natural(simple, stimuli, rf, norm=2.0, sigma=5.0)
    assert images.shape == (2, 1, 32, 32) and resp.shape == (2,)
    assert torch.allclose((images - 0.5).flatten(1).norm(dim=1), torch.tensor(2.0), rtol=0.02)
    assert torch.allclose(images.mean(dim=(1, 2, 3)), torch.tensor(0.5), atol=0.01)
    windows = rf_window(32, rf, 5.0)
    with torch.no_grad():
        for u in range(2):     # exhaustive: no windowed stimulus beats the chosen one
            assert simple(rf_masked(stimuli, windows[u], 2.0))[:, u].max() <= resp[u] + 1e-5
    # the window is centred on the RF: contrast far from it is ~0
    far = (windows[0, 0] < 1e-3)
    assert (images[0, 0][far] - 0.5).abs().max() < 0.01


def test_controls_reject_bad_input(simple):
    with pytest.raises(InputError, match="rf_xy"):
        best_rf_gabor(simple, np.zeros(3), norm=1.0, size=32)
    with pytest.raises(InputError, match="evaluations"):
        best_rf_gabor(simple, _rf(simple), norm=1.0, size=32, evaluations=10)
    with pytest.raises(InputError, match="norm"):
        best_rf_gabor(simple, _rf(simple), norm=0.0, size=32)
    with pytest.raises(InputError, match="units"):
        best_rf_gabor(simple, np.full((8, 2), 16.0), norm=1.0, size=32, evaluations=480)

"""Round 0 of the closed loop: mapping stimuli, RF centres from responses, the twin readout started there."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actmax.core.apps.closed_loop import natural_stimuli, noise_free_rates
from actmax.core.apps.rf_mapping import (DEFAULT_MAPPING, MAPPING_KINDS, estimate_receptive_fields,
                                         mapping_stimuli, pixels_to_grid)
from actmax.core.errors import InputError
from actmax.core.registry import scorers
from actmax.scorers.model_neurons import gabor_filter

SIZE, NORM, WINDOW = 32, 3.0, 30.0


def poisson_rates(rates: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(np.clip(rates, 0, None) * WINDOW) / WINDOW


@pytest.mark.parametrize("kind", MAPPING_KINDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_mapping_stimuli_are_grey_images_at_the_contrast_budget(kind, channels):
    x = mapping_stimuli(64, SIZE, channels=channels, norm=NORM, seed=3, kind=kind)
    assert x.shape == (64, channels, SIZE, SIZE) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.full((64,), 0.5), atol=0.02)
    assert torch.allclose((x - 0.5).flatten(1).norm(dim=1), torch.full((64,), NORM), rtol=0.02)
    assert torch.equal(x, mapping_stimuli(64, SIZE, channels=channels, norm=NORM, seed=3, kind=kind))
    if channels == 3:                                # colour directions, not grey
        assert float((x - x.mean(1, keepdim=True)).abs().mean()) > 1e-3


def test_bad_mapping_requests_fail_clearly():
    with pytest.raises(InputError, match="mapping kind"):
        mapping_stimuli(4, SIZE, norm=NORM, kind="bars")
    with pytest.raises(InputError, match="norm > 0"):
        mapping_stimuli(4, SIZE, norm=0.0)
    with pytest.raises(InputError, match="responses"):
        estimate_receptive_fields(torch.rand(5, 1, 8, 8), np.zeros((4, 2)))


def ln_neurons(centres: list[tuple[float, float]], seed: int = 0) -> tuple[torch.Tensor, callable]:
    """Linear-nonlinear neurons: a Gabor filter at each centre, sharply rectified, 10 spikes/s peak."""
    rng = np.random.default_rng(seed)
    filters = torch.tensor(np.stack([gabor_filter(SIZE, x, y, 0.08 * SIZE, rng.uniform(0, math.pi), 0.55,
                                                  rng.uniform(-math.pi, math.pi)) for x, y in centres]),
                           dtype=torch.float32).flatten(1)

    def rates(images: torch.Tensor) -> np.ndarray:
        p = (images.mean(1).flatten(1) - 0.5) @ filters.T / 0.45
        return (10 * F.softplus(8 * p) / math.log1p(math.exp(8))).double().numpy()
    return filters, rates


def test_round0_recovers_linear_nonlinear_receptive_fields_within_1px_with_poisson_noise():
    centres = [(6.5, 9.2), (25.3, 7.7), (16.0, 16.0), (9.8, 25.1), (24.2, 23.6)]   # incl. near the borders
    _, rates = ln_neurons(centres)
    x = mapping_stimuli(1500, SIZE, norm=NORM, seed=1, kind=DEFAULT_MAPPING)
    est = estimate_receptive_fields(x, poisson_rates(rates(x)))
    err = np.hypot(*(est - np.array(centres)).T)
    assert err.max() <= 1.0, err
    # and on the repository's own simple cells (model:kind=simple)
    neurons = scorers.create(f"model:kind=simple,n=4,size={SIZE},seed=2").eval()
    true = np.array([rf[:2] for rf in neurons.receptive_fields])
    est = estimate_receptive_fields(x, poisson_rates(noise_free_rates(neurons, x), seed=1))
    assert np.hypot(*(est - true).T).max() <= 1.0


def test_round0_locates_complex_energy_cells_within_2px():
    neurons = scorers.create(f"model:kind=complex,n=4,size={SIZE},seed=3").eval()
    true = np.array([rf[:2] for rf in neurons.receptive_fields])
    x = mapping_stimuli(1500, SIZE, norm=NORM, seed=2, kind=DEFAULT_MAPPING)
    est = estimate_receptive_fields(x, poisson_rates(noise_free_rates(neurons, x)))
    assert np.hypot(*(est - true).T).max() <= 2.0


def test_missing_trials_are_no_evidence_and_a_silent_neuron_does_not_crash():
    centres = [(12.0, 20.0)]
    _, rates = ln_neurons(centres)
    x = mapping_stimuli(1500, SIZE, norm=NORM, seed=4, kind=DEFAULT_MAPPING)
    r = np.c_[poisson_rates(rates(x)), np.zeros(len(x))]
    r[::3, 0] = np.nan                                   # a third of the images without a trial
    est = estimate_receptive_fields(x, r)
    assert np.hypot(*(est[0] - centres[0])) <= 1.0
    assert est.shape == (2, 2)


def test_pixels_to_grid_follows_the_readouts_align_corners_convention():
    # twin at half the data resolution: data pixels [0, 2) are twin pixel 0 (grid -1), the last
    # twin pixel centre (grid 1) sits at data x = 31 (pixels 30-31)
    g = pixels_to_grid(np.array([[1.0, 31.0], [16.0, 16.0]]), 32, 16)
    assert torch.allclose(g, torch.tensor([[-1.0, 1.0], [0.0, 0.0]]), atol=1e-6)


def test_twin_readout_starts_at_the_given_pixel_positions():
    from actmax.scorers.twin.train import TrainOptions, readout_report, train_twin

    neurons = scorers.create(f"model:kind=simple,n=3,size={SIZE},seed=0").eval()
    x = mapping_stimuli(120, SIZE, norm=NORM, seed=5)
    y = poisson_rates(noise_free_rates(neurons, x))
    start = [[6.0, 26.0], [float("nan"), float("nan")], [20.5, 11.0]]     # NaN: the data estimate
    arch = {"hidden_channels": 4, "layers": 1, "input_kernel": 5, "image_size": 16}
    opts = TrainOptions(max_epochs=1, lr=1e-9, initial_positions=start)
    trained = train_twin(x.numpy(), y, architecture=arch, options=opts)
    rows = readout_report(trained.ensemble)["neurons"]
    back = np.array([[(r["x_px"] + 0.5) * 2, (r["y_px"] + 0.5) * 2] for r in rows])   # as _readout_errors
    assert np.hypot(*(back[[0, 2]] - np.array(start)[[0, 2]]).T).max() <= 0.5       # start jitter only
    assert np.isfinite(back[1]).all()
    assert trained.report["options"]["initial_positions"][0] == [6.0, 26.0]
    with pytest.raises(InputError, match="initial_positions"):
        TrainOptions(initial_positions=[1.0, 2.0])
    with pytest.raises(InputError, match="3 neurons"):
        train_twin(x.numpy(), y, architecture=arch, options=TrainOptions(max_epochs=1, initial_positions=[[1, 2]]))


def test_natural_stimuli_centre_moves_the_aperture_and_the_default_is_unchanged():
    base = natural_stimuli(8, SIZE, seed=0, aperture=0.2, norm=NORM)
    assert torch.equal(base, natural_stimuli(8, SIZE, seed=0, aperture=0.2, norm=NORM, centre=(16.0, 16.0)))
    moved = natural_stimuli(64, SIZE, seed=0, aperture=0.12, norm=NORM, centre=(10.0, 22.0))
    energy = ((moved - 0.5) ** 2).sum((0, 1))
    pos = torch.arange(SIZE, dtype=torch.float32) + 0.5
    cx, cy = float((energy.sum(0) * pos).sum() / energy.sum()), float((energy.sum(1) * pos).sum() / energy.sum())
    assert abs(cx - 10.0) < 1.0 and abs(cy - 22.0) < 1.0
    with pytest.raises(InputError, match="aperture"):
        natural_stimuli(2, SIZE, aperture=None, centre=(3.0, 3.0))

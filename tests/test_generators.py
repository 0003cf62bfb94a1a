"""Every registered generator honours the contract: (n, dim) codes -> (n, C, H, W) in [0, 1]."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actmax.core.registry import generators



@pytest.mark.parametrize("spec", ["pixel:size=16", "pixel:size=16,channels=3,squash='clip'", "fourier:size=16",
                                  "fourier:size=24,channels=3", "fourier:size=16,mode='phase'",
                                  "gabor:size=16,patches=3", "gabor:size=16,channels=3"])
@pytest.mark.parametrize("n", [1, 5])
def test_batched_shapes_range_and_gradients(spec, n):
    g = generators.create(spec)
    codes = g.init_codes(n, seed=0).requires_grad_(True)
    assert codes.shape == (n, g.dim)
    img = g(codes)
    assert img.shape == (n, g.channels, g.image_size, g.image_size)
    assert img.dtype == torch.float32 and img.min() >= 0 and img.max() <= 1
    img[:, :, 3:6, 3:6].sum().backward()
    assert codes.grad is not None and codes.grad.abs().sum() > 0
    # far-out codes still give valid images
    assert g(codes.detach() * 50).isfinite().all()


@pytest.mark.parametrize("name", ["pixel", "fourier", "gabor"])
def test_init_codes_are_seeded(name):
    g = generators.create(f"{name}:size=16")
    assert torch.equal(g.init_codes(3, seed=7), g.init_codes(3, seed=7))
    assert not torch.equal(g.init_codes(3, seed=7), g.init_codes(3, seed=8))


def test_batch_elements_are_independent():
    g = generators.create("fourier:size=16,channels=3")
    codes = g.init_codes(4, seed=1)
    together = g(codes)
    alone = torch.cat([g(codes[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_fourier_prior_is_natural_image_like():
    """The stored prior falls off with spatial frequency roughly as 1/f^a, a in (0.8, 2.2)."""
    from actmax.generators.fourier import magnitude_prior

    for channels in (1, 3):
        m = magnitude_prior(64, channels)[0]
        fy = np.fft.fftfreq(64)[:, None]
        fx = (np.arange(33) / 64)[None, :]
        f = np.sqrt(fy ** 2 + fx ** 2)
        sel = (f > 0.03) & (f < 0.4)
        slope = np.polyfit(np.log(f[sel]), np.log(m[sel]), 1)[0]
        assert -2.2 < slope < -0.8, slope
        assert m[0, 0] == 0  # no DC: mean luminance stays grey


def test_fourier_prior_resamples_consistently_across_sizes():
    """A 32-px and a 128-px prior agree at the frequencies they share (the prior is resampled in frequency)."""
    from actmax.generators.fourier import magnitude_prior

    small, big = magnitude_prior(32, 1)[0], magnitude_prior(128, 1)[0]
    shared_small = small[1:8, 1:8] / small[1:8, 1:8].mean()
    shared_big = big[4:32:4, 4:32:4] / big[4:32:4, 4:32:4].mean()
    assert np.corrcoef(shared_small.ravel(), shared_big.ravel())[0, 1] > 0.95


def test_gabor_parameters_are_bounded():
    g = generators.create("gabor:size=32,patches=2")
    p = g.parameters_of(torch.randn(64, g.dim) * 10)
    assert ((p["x"] >= 0) & (p["x"] <= 1)).all() and ((p["contrast"] >= -1) & (p["contrast"] <= 1)).all()
    assert (p["frequency"] >= 1.5 - 1e-4).all() and (p["frequency"] <= 16 + 1e-3).all()
    assert ((p["aspect"] >= 0.5 - 1e-6) & (p["aspect"] <= 2 + 1e-6)).all()

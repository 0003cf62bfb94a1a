"""Round 0 of the closed loop: an RF-mapping block and a per-neuron receptive-field estimate.

V1 experiments map every neuron's receptive field before they show it anything else, and centre
what follows on it. This module does both halves in silico and on recordings:

* :func:`mapping_stimuli` draws the mapping block, [0, 1] images on a grey (0.5) background at one
  L2 contrast ``norm`` = ||image - 0.5|| (the same budget as
  :func:`actmax.core.apps.closed_loop.natural_stimuli`): ``sparse_noise`` (dark and bright
  squares) or ``gabor`` (small Gabors at random positions, orientations, phases and spatial
  frequencies; each in a random colour direction for RGB).
* :func:`estimate_receptive_fields` turns the responses to any stimulus set (mapping block,
  natural patches or both; trial-averaged counts, NaN where an image has no trial) into one RF
  centre (x, y) per neuron, in the pixel convention of ``ModelNeurons.receptive_fields``
  (pixel i spans [i, i + 1), its centre is i + 0.5). Two per-pixel correlation maps are summed:
  the squared correlation of the response with the pixel contrast (a spike-triggered average:
  finds linear and colour-opponent fields) and with the local contrast energy (finds
  phase-invariant, energy-model fields). Correlations, not covariances: an aperture makes the
  central pixels the high-variance ones, and a covariance map then pulls every estimate there
  (the end-stopped readouts of issue 20). The centre is the centroid of the map above its
  median within ``window`` px of its peak (sub-pixel; an odd-phase Gabor's zero at the centre
  does not move it).
* :func:`pixels_to_grid` (defined beside the readout, in :mod:`scorers.twin.train`) converts such centres to a twin readout's grid coordinates; pass the
  centres as ``TrainOptions(initial_positions=...)`` and the readout starts there.

DEFAULT_MAPPING was chosen by measurement (``benchmarks/bench_rf_mapping.py``; table in the
README, "Round 0: RF mapping").
"""
from __future__ import annotations

import math

import numpy as np
import torch

from actmax.core.errors import InputError
from actmax.scorers.twin.train import pixels_to_grid  # noqa: F401  (re-exported: RF centres -> readout grid)

MAPPING_KINDS = ("sparse_noise", "gabor", "mixed")
DEFAULT_MAPPING = "sparse_noise"
#: contrast amplitude the mapping elements aim at (below the [0, 1] clip); sets how many fill the budget
SPARSE_AMPLITUDE = 0.4
#: a score-map peak (in units of chance, n r^2) at least this high is a receptive field: the largest
#: chance peak of the smoothed maps over 1,000 images of any stimulus kind here is 10-15 (28 for the
#: linear map of RGB natural patches)
SIGNIFICANT = 20.0
#: centroid iterations (mean shift) of the window around the map's peak
MEAN_SHIFT_STEPS = 5


def mapping_stimuli(n: int, size: int, *, channels: int = 1, norm: float, seed: int = 0,
                    kind: str = DEFAULT_MAPPING) -> torch.Tensor:
    """``n`` RF-mapping images (n, channels, size, size) in [0, 1], grey mean 0.5, L2 contrast ``norm``.

    ``sparse_noise``: squares of side ~size/12 px, each dark or bright (in RGB each in a random
    colour direction), as many as the contrast budget needs at amplitude ~0.4. ``gabor``: Gabors
    of sigma 0.04-0.10 x size, as many as the budget needs at amplitude ~0.4 (about 4 at size 32
    and norm 3), at uniform random positions, orientations and phases,
    0.3-0.8 cycles per sigma; in RGB each has a random unit colour direction (luminance and
    opponent components alike).
    """
    if kind not in MAPPING_KINDS:
        raise InputError(f"mapping kind must be one of {MAPPING_KINDS}, got {kind!r}")
    if n < 1 or size < 4 or channels not in (1, 3) or not norm > 0:
        raise InputError(f"mapping stimuli need n >= 1, size >= 4, channels 1 or 3 and norm > 0; "
                         f"got n={n}, size={size}, channels={channels}, norm={norm}")
    if kind == "mixed":                                # every other image sparse noise, the rest Gabors
        out = torch.empty(n, channels, size, size)
        out[0::2] = mapping_stimuli((n + 1) // 2, size, channels=channels, norm=norm, seed=seed, kind="sparse_noise")
        if n > 1:
            out[1::2] = mapping_stimuli(n // 2, size, channels=channels, norm=norm, seed=seed + 1, kind="gabor")
        return out
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    out = np.zeros((n, channels, size, size))
    if kind == "sparse_noise":
        side = max(1, int(round(size / 12)))
        count = max(1, int(math.ceil(norm ** 2 / (SPARSE_AMPLITUDE ** 2 * side * side))))
        for i in range(n):
            for _ in range(count):
                r, c = rng.integers(0, size - side + 1, size=2)
                out[i, :, r:r + side, c:c + side] += _colour(rng, channels)[:, None, None] * rng.choice((-1.0, 1.0))
    else:
        for i in range(n):
            energy = 0.0                            # Gabors until their energy at amplitude ~0.4 fills the budget
            while energy < norm ** 2:
                sigma = size * rng.uniform(0.04, 0.10)
                energy += math.pi / 2 * sigma ** 2 * SPARSE_AMPLITUDE ** 2
                x, y = rng.uniform(0, size, size=2)
                theta, phase = rng.uniform(0, math.pi), rng.uniform(-math.pi, math.pi)
                freq = rng.uniform(0.3, 0.8) / sigma
                u = (xx - x) * math.cos(theta) + (yy - y) * math.sin(theta)
                g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)) * np.cos(2 * math.pi * freq * u + phase)
                out[i] += _colour(rng, channels)[:, None, None] * g / max(np.linalg.norm(g), 1e-9)
    return _at_contrast(torch.tensor(out, dtype=torch.float32), norm)


def _colour(rng: np.random.Generator, channels: int) -> np.ndarray:
    if channels == 1:
        return np.ones(1)
    v = rng.normal(size=3)
    return v / np.linalg.norm(v) * math.sqrt(3)     # same energy as a grey element


def _at_contrast(c: torch.Tensor, norm: float) -> torch.Tensor:
    """Grey + contrast scaled to L2 norm ``norm``, restoring what clipping to [0, 1] takes away."""
    c = c - c.mean(dim=(1, 2, 3), keepdim=True)
    for _ in range(5):
        c = c * (norm / c.flatten(1).norm(dim=1).clamp_min(1e-6)).view(-1, 1, 1, 1)
        c = (c + 0.5).clamp(0, 1) - 0.5
    return (0.5 + c).clamp(0, 1)


def correlation_maps(stimuli: torch.Tensor, responses: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron maps in units of their chance level (n r^2, ~1 without a receptive field):
    ``linear`` (units, H, W), the squared correlation of the response with the pixel contrast
    (summed over channels), and ``energy`` (units, H, W), the signed correlation with the local
    contrast energy times its magnitude (n r |r|: positive where contrast excites, negative where
    it suppresses). NaN responses count as the neuron's mean (no evidence)."""
    x = torch.as_tensor(stimuli, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(responses, dtype=np.float64), dtype=torch.float32)
    if x.ndim != 4 or y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise InputError(f"estimate_receptive_fields: stimuli (n, C, H, W) and responses (n, units) needed, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    from actmax.core.transforms import gaussian_blur

    ok = torch.isfinite(y)
    mean = torch.where(ok, y, 0).sum(0) / ok.sum(0).clamp_min(1)
    y = torch.where(ok, y, mean)
    yz = (y - y.mean(0)) / y.std(0).clamp_min(1e-8)
    c = x - 0.5
    size = x.shape[-1]
    energy = gaussian_blur((c ** 2).sum(1, keepdim=True), max(size / 64, 0.5))[:, 0]
    n_eff = ok.sum(0).float().clamp_min(1)              # (units,)

    def corr(a: torch.Tensor) -> torch.Tensor:          # (n, ...) -> (units, ...)
        a = a - a.mean(0)
        a = a / a.std(0).clamp_min(1e-8)
        return torch.einsum("n...,nk->k...", a, yz) / a.shape[0]

    r_lin, r_en = corr(c), corr(energy)
    scale = n_eff.view(-1, 1, 1)
    return (r_lin ** 2).sum(1) * scale, r_en * r_en.abs() * scale


def estimate_receptive_fields(stimuli: torch.Tensor, responses: np.ndarray, *, window: float | None = None,
                              return_found: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """RF centres (units, 2) as (x, y) in pixels (pixel i's centre is i + 0.5); with ``return_found`` also,
    per neuron, whether a linear or excitatory field reached SIGNIFICANT (False: located by the fallback).

    The score map is linear + excitatory energy (:func:`correlation_maps`, smoothed) where that
    reaches SIGNIFICANT somewhere: a linear or excitatory field decides where the RF is, and a
    suppressive zone (an end-stopped cell's end zones) does not pull it away. A cell with neither
    (a dual-feature cell: excitatory and suppressive quadratic features at the same place, so
    pixel energy suppresses on average) is located by linear + |energy|. The centre is the
    centroid of the map above its median in a ``window`` (default size / 10) px radius that starts
    at the map's peak and follows its own centroid (mean shift).
    """
    from actmax.core.transforms import gaussian_blur

    linear, energy = correlation_maps(stimuli, responses)
    size = linear.shape[-1]
    blur = lambda m: gaussian_blur(m[:, None], max(size / 32, 0.5))[:, 0]  # noqa: E731
    excitatory = blur(linear + energy.clamp_min(0))
    either = blur(linear + energy.abs())
    found = excitatory.flatten(1).amax(1) >= SIGNIFICANT
    score = torch.where(found[:, None, None], excitatory, either)
    radius = size / 10 if window is None else float(window)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32) + 0.5,
                            torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij")
    out = np.full((linear.shape[0], 2), np.nan)
    for u in range(linear.shape[0]):
        m = score[u]
        peak = int(m.flatten().argmax())
        px, py = float(xx.flatten()[peak]), float(yy.flatten()[peak])
        above = (m - m.median()).clamp_min(0)
        for _ in range(MEAN_SHIFT_STEPS):             # the window follows its centroid: a window at the
            w = above * (((xx - px) ** 2 + (yy - py) ** 2) <= radius ** 2)   # peak alone favours the peak lobe
            if float(w.sum()) <= 0:
                break
            px, py = float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())
            out[u] = [px, py]
    return (out, found.numpy()) if return_found else out

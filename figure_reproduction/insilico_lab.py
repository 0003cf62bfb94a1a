"""The in-silico stand-ins behind ``make_source_data.py`` (what replaces the monkeys, areas and GANs).

* **Areas.** Ground-truth model neurons (``scorers.model_neurons``) stand in for recorded
  channels: simple and complex cells for **V1**, dual-feature neurons (elevated baseline, an
  excitatory and a different suppressive feature) for **V4**. Nothing here is IT-like: a
  random-weight deep network is not an honest IT stand-in and pretrained weights cannot be
  shipped, so every IT column stays empty.
* **Recording.** ``poisson`` spiking (``scorers.noisy``) turns model rates into spike counts in a
  150 ms window (the paper's 50-200 ms response window); ``rate_scale`` sets Hz per model unit.
* **Generators.** Two spaces evolve in parallel threads on every neuron, as DeePSim and BigGAN
  do in the paper: thread 0 ``fourier`` (1,088-d spectra on a natural magnitude prior: a
  high-dimensional, weakly constrained space like DeePSim's 4,096-d fc6 code) stands in for
  **DeePSim** and thread 1 ``gabor`` (one parametric Gabor patch, 8-d: a low-dimensional space
  with a strong image prior, like BigGAN's 256-d code) stands in for **BigGAN**. The real
  GANs with random weights would be neither faster nor more honest stand-ins.
* **Time.** Model neurons are static. For the PSTH panels a *declared* temporal model is
  added: each feature's drive rises after a latency with an onset transient,
  ``k(t) = (1 - exp(-s/rise)) (1 + overshoot exp(-s/decay))``, ``s = t - latency``; the
  excitatory drive starts at 50 ms and the dual neurons' suppressive drive at 70 ms (delayed
  suppression). Every time course therefore follows from these assumptions, not from data;
  at long times it equals the static model exactly (checked by :func:`check_projections`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actmax.scorers.base import Scorer, to_channels, to_size
from actmax.scorers.model_neurons import (DUAL_BASELINE, DUAL_EXCITATION, DUAL_SUPPRESSION, SIMPLE_SHARPNESS,
                                   ModelNeurons)

AREA_OF_KIND = {"simple": "V1", "complex": "V1", "dual": "V4"}
AREAS = ("V1", "V4", "IT")
#: thread index -> (space, the paper's label it stands in for, the paper's column prefix)
THREADS = ((0, "fourier", "DeePSim", "FC"), (1, "gabor", "BigGAN", "BG"))
TIME_MS = np.arange(200, dtype=np.float64)        # PSTH bins: 0..199 ms after image onset
EXC_LATENCY, SUP_LATENCY = 50.0, 70.0
RISE, DECAY, OVERSHOOT = 8.0, 30.0, 1.0
BASELINE_WINDOW_S = 0.045                          # the paper's 0-45 ms baseline window


# ============================================================================================
# Model-neuron internals: feature projections and the declared temporal model
# ============================================================================================
def projections(neurons: ModelNeurons, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two feature projections p1, p2 (B, units) of every image, after contrast gain control."""
    with torch.no_grad():
        c = to_size(to_channels(images.float(), 1), neurons.size).flatten(1) - 0.5
        norm = c.norm(dim=1, keepdim=True)
        gain_control = neurons.limit / torch.maximum(norm, neurons.limit)
        p1 = (c @ neurons.filter1.T) * gain_control / neurons.limit
        p2 = (c @ neurons.filter2.T) * gain_control / neurons.limit
    return p1, p2


def _rates(neurons: ModelNeurons, p1: torch.Tensor, p2: torch.Tensor, k_exc: torch.Tensor,
           k_sup: torch.Tensor) -> torch.Tensor:
    """Model rates with the excitatory / suppressive drives scaled by k_exc / k_sup (broadcast)."""
    k = SIMPLE_SHARPNESS
    simple = F.softplus(k * p1 * k_exc) / math.log1p(math.exp(k))
    complex_ = torch.sqrt(p1 ** 2 + p2 ** 2 + 1e-12) * k_exc
    dual = F.softplus(DUAL_BASELINE + DUAL_EXCITATION * p1 ** 2 * k_exc - DUAL_SUPPRESSION * p2 ** 2 * k_sup)
    code = neurons.kind_code
    return torch.where(code == 0, simple, torch.where(code == 1, complex_, dual)) * neurons.gain


def check_projections(neurons: ModelNeurons, images: torch.Tensor) -> None:
    """Raise if the re-implemented static model (all drives at 1) differs from the scorer's own."""
    p1, p2 = projections(neurons, images)
    one = torch.ones(())
    ours = _rates(neurons, p1, p2, one, one)
    with torch.no_grad():
        theirs = neurons(images)
    if not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4):
        raise RuntimeError("insilico_lab: the temporal model no longer matches scorers.model_neurons; "
                           f"max difference {float((ours - theirs).abs().max()):.3g}")


def drive_kernel(t_ms: np.ndarray, latency: float) -> np.ndarray:
    """Time course of a feature's drive (0 before ``latency``, -> 1 when sustained)."""
    s = np.asarray(t_ms, dtype=np.float64) - latency
    out = (1.0 - np.exp(-np.clip(s, 0, None) / RISE)) * (1.0 + OVERSHOOT * np.exp(-np.clip(s, 0, None) / DECAY))
    return np.where(s > 0, out, 0.0)


def temporal_rates(neurons: ModelNeurons, images: torch.Tensor, unit: int, *, rate_scale: float,
                   t_ms: np.ndarray = TIME_MS) -> np.ndarray:
    """Firing rate (Hz) of ``unit`` over time for every image: (B, T), noise-free."""
    p1, p2 = projections(neurons, images)
    p1, p2 = p1[:, unit:unit + 1], p2[:, unit:unit + 1]                      # (B, 1)
    k_exc = torch.as_tensor(drive_kernel(t_ms, EXC_LATENCY), dtype=torch.float32)[None]   # (1, T)
    k_sup = torch.as_tensor(drive_kernel(t_ms, SUP_LATENCY), dtype=torch.float32)[None]
    sub = _SingleUnit(neurons, unit)
    rates = _rates(sub, p1, p2, k_exc, k_sup)
    return (rates * rate_scale).double().numpy()


class _SingleUnit:
    """The per-unit constants of one model neuron, shaped to broadcast over (B, T)."""

    def __init__(self, neurons: ModelNeurons, unit: int) -> None:
        self.kind_code = neurons.kind_code[unit]
        self.gain = neurons.gain[unit]


# ============================================================================================
# Recording what an evolution showed (for a replay of a campaign run)
# ============================================================================================
class BlockRecorder(Scorer):
    """Passes a scorer's responses through and keeps every block of images it was shown."""

    differentiable = False

    def __init__(self, base: Scorer) -> None:
        super().__init__()
        self.base = base
        self.units = base.units
        self.blocks: list[torch.Tensor] = []

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        self.blocks.append(images.detach().to(torch.float16).cpu())
        return self.base(images)


# ============================================================================================
# Tuning along a generator's principal image-change axes (the Hessian of pixel distance)
# ============================================================================================
def image_metric_axes(generator: torch.nn.Module, code: np.ndarray, k: int, *, iterations: int = 6,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` eigenvalues and eigenvectors (k, dim) of ``J^T J`` at ``code``.

    ``J`` is the Jacobian of the generated pixels with respect to the code, so ``J^T J`` is the
    Hessian of the squared pixel distance ``|G(z + dz) - G(z)|^2`` at ``dz = 0`` (the role LPIPS
    Hessians play for BigGAN in the paper); its top eigenvectors move the image most per unit
    code. Small codes: the full Jacobian. Large codes: randomized subspace iteration with
    Jacobian-vector products (``k + 8`` vectors, ``iterations`` rounds) instead of the whole Jacobian.
    """
    from torch.func import jvp, vjp, vmap

    z = torch.as_tensor(np.asarray(code), dtype=torch.float32)

    def render(x: torch.Tensor) -> torch.Tensor:
        return generator(x[None])[0].flatten()

    dim = z.numel()
    if dim <= 64:
        jac = torch.autograd.functional.jacobian(render, z, vectorize=True)      # (pixels, dim)
        _, s, vh = torch.linalg.svd(jac.double(), full_matrices=False)
        k = min(k, vh.shape[0])
        return (s[:k] ** 2).numpy(), vh[:k].numpy()
    _, pullback = vjp(render, z)
    push = vmap(lambda v: jvp(render, (z,), (v,))[1])
    pull = vmap(lambda u: pullback(u)[0])
    gen = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(dim, k + 8, generator=gen))[0]         # (dim, m)
    for _ in range(iterations):
        basis = torch.linalg.qr(pull(push(basis.T)).T.double())[0].float()
    jq = push(basis.T).double()                                                   # (m, pixels) = (J Q)^T
    small = jq @ jq.T                                                             # Q^T J^T J Q
    evals, evecs = torch.linalg.eigh(small)
    order = torch.argsort(evals, descending=True)[:k]
    vecs = (basis.double() @ evecs[:, order]).T
    return evals[order].clamp_min(0).numpy(), vecs.numpy()


# ============================================================================================
# Tuning-curve shape: Gaussian process (Const * RBF + White), Gaussian + baseline, OLS
# ============================================================================================
def fit_gp(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> dict[str, Any]:
    """GP regression with a constant x RBF + white-noise kernel, hyper-parameters by maximum likelihood.

    ``y`` is standardised first (as ``normalize_y`` does). The kernel is ``a (R_l + r I)`` with
    ``R_l`` the RBF correlation of length scale ``l``; the amplitude ``a`` is profiled out in
    closed form and ``(l, r)`` are searched on a log grid (exact likelihood at every grid point,
    one eigendecomposition per length scale). Returns the posterior mean on ``grid`` in the
    original units and the fitted amplitude, length scale and noise variance.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    mu, sd = y.mean(), y.std() or 1.0
    ys = (y - mu) / sd
    n = len(x)
    span = float(np.ptp(x)) or 1.0
    ratios = np.geomspace(1e-3, 1e3, 41)
    best = (np.inf, None, None, None)
    for length in np.geomspace(span / 20, span * 10, 41):
        corr = np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / length ** 2)
        lam, vec = np.linalg.eigh(corr)
        lam = np.clip(lam, 0, None)
        proj2 = (vec.T @ ys) ** 2
        denom = lam[None, :] + ratios[:, None]                    # (ratios, n)
        quad = (proj2[None, :] / denom).sum(1)                     # y^T (R + r I)^-1 y
        amp = quad / n
        nll = 0.5 * n * np.log(amp) + 0.5 * np.log(denom).sum(1)   # + constants
        i = int(np.argmin(nll))
        if nll[i] < best[0]:
            best = (float(nll[i]), float(length), float(ratios[i]), float(amp[i]))
    _, length, ratio, amp = best
    k_xx = np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / length ** 2) + ratio * np.eye(n)
    k_gx = np.exp(-0.5 * (grid[:, None] - x[None, :]) ** 2 / length ** 2)
    mean = k_gx @ np.linalg.solve(k_xx, ys)
    return {"mean": mu + sd * mean, "amplitude": amp * sd ** 2, "length_scale": length,
            "noise": amp * ratio * sd ** 2}


def curve_shape(grid: np.ndarray, curve: np.ndarray, *, edge: float = 0.1, drop: float = 0.2,
                tolerance: float = 0.05) -> dict[str, Any]:
    """Classify a fitted tuning curve.

    ``bellshaped``: the peak lies inside the central ``1 - 2 edge`` of the range and the curve
    falls by at least ``drop`` of its range on both sides of it; ``monotonic``: no reversal
    larger than ``tolerance`` of the range (a flat curve is neither).
    """
    c = np.asarray(curve, float)
    rng = float(np.ptp(c))
    i = int(np.argmax(c))
    frac = (grid[i] - grid[0]) / (grid[-1] - grid[0])
    if rng <= 0:
        return {"bellshaped": False, "monotonic": False, "peak_loc": float(grid[i])}
    bell = bool(edge < frac < 1 - edge and c[i] - c[:i + 1].min() >= drop * rng and c[i] - c[i:].min() >= drop * rng)
    up = np.maximum.accumulate(c) - c          # how far the curve fell below its running max
    down = c - np.minimum.accumulate(c)
    mono = bool(up.max() <= tolerance * rng or down.max() <= tolerance * rng)
    return {"bellshaped": bell and not mono, "monotonic": mono, "peak_loc": float(grid[i])}


def fit_gaussian_baseline(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least-squares Gaussian + baseline ``b + a exp(-(x - mu)^2 / 2 sigma^2)``: peak location, width, R^2.

    For every (mu, sigma) on a grid (mu from half a range beyond either end, sigma from 1/50 to
    10 ranges) the best ``b, a`` follow by linear least squares; the best grid point wins (a
    deterministic, bounded fit that cannot wander off as an iterative one can on flat curves).
    With the same number of trials at every ``x``, fitting the mean curve gives the same
    parameters as fitting every trial, so pass the mean responses; R^2 is that of the mean curve.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    span = float(np.ptp(x)) or 1.0
    mus = np.linspace(x.min() - span / 2, x.max() + span / 2, 81)
    sigmas = np.geomspace(span / 50, 10 * span, 40)
    bump = np.exp(-0.5 * (x[None, None, :] - mus[:, None, None]) ** 2 / sigmas[None, :, None] ** 2)  # (mu, sigma, x)
    bc = bump - bump.mean(-1, keepdims=True)
    yc = y - y.mean()
    var = (bc ** 2).sum(-1)
    amp = np.where(var > 1e-12, (bc * yc).sum(-1) / np.where(var > 1e-12, var, 1.0), 0.0)
    sse = ((yc - amp[..., None] * bc) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(sse)), sse.shape)
    sst = float((yc ** 2).sum())
    return {"gauss_mu": float(mus[i]), "gauss_sigma": float(sigmas[j]), "gauss_amplitude": float(amp[i, j]),
            "gauss_r2": 1.0 - float(sse[i, j]) / sst if sst > 0 else float("nan")}


def tuning_statistics(dist: np.ndarray, trials: np.ndarray) -> dict[str, Any]:
    """Shape statistics of one tuning curve: ``trials`` (n_dist, n_trials) responses at ``dist``."""
    from scipy.stats import f_oneway, linregress

    x = np.repeat(dist, trials.shape[1])
    y = trials.ravel()
    out: dict[str, Any] = {}
    if np.ptp(y) > 0:
        out["anova_F"], out["anova_p_value"] = (float(v) for v in f_oneway(*trials))
        lr = linregress(x, y)
        out.update(ols_slope=float(lr.slope), ols_r2=float(lr.rvalue ** 2), ols_p_value=float(lr.pvalue))
    else:
        out.update(anova_F=float("nan"), anova_p_value=1.0, ols_slope=0.0, ols_r2=float("nan"), ols_p_value=1.0)
    out.update(fit_gaussian_baseline(np.asarray(dist, float), trials.mean(1)))
    grid = np.linspace(dist.min(), dist.max(), 41)
    if np.ptp(y) > 0:
        gp = fit_gp(x, y, grid)
        shape = curve_shape(grid, gp["mean"])
        out.update(gpr_length_scale=gp["length_scale"], gpr_noise=gp["noise"])
    else:
        shape = {"bellshaped": False, "monotonic": False, "peak_loc": float("nan")}
        out.update(gpr_length_scale=float("nan"), gpr_noise=float("nan"))
    out.update(gpr_y_is_bellshaped=shape["bellshaped"], gpr_y_is_monotonic=shape["monotonic"],
               gpr_peak_loc=shape["peak_loc"])
    return out

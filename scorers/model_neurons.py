"""Ground-truth model neurons: the in-silico lab, with known optimal stimuli.

Every unit sees the contrast image ``c = grey(image) - 0.5`` at its native size, after a
contrast gain control: ``c_eff = c * R / max(|c|, R)`` (a saturating normalisation by the
image's RMS-like L2 contrast, with a per-unit limit R). Beyond the limit only the
*direction* of the contrast image matters, so every family has a global optimum that is
known in closed form and a response ceiling that no stimulus can beat:

* ``simple``  rate = gain * softplus(k p) / softplus(k),  p = g.c_eff / R   (smoothly rectified
  linear Gabor; spontaneous rate gain * ln2 / softplus(k)). MEI: 0.5 + R g, LEI: 0.5 - R g (unique).
* ``complex`` rate = gain * sqrt(p1^2 + p2^2)  (energy model on a quadrature pair g1, g2)
  MEI: 0.5 + R (cos a g1 + sin a g2) for any phase a. LEI: not unique (grey gives 0).
* ``dual``    rate = gain * softplus(b + A p_e^2 - S p_h^2)  (an excitatory and a suppressive
  quadratic feature, as in spike-triggered-covariance models of V1, Rust et al. 2005):
  elevated baseline gain * softplus(b), excitatory feature e, a different (orthogonal
  orientation) suppressive feature h. MEI: 0.5 +/- R e, LEI: 0.5 +/- R h (unique up to sign).

g, g1/g2, e and h are unit-norm Gabor filters; g2 and h are orthogonalised against g1 and
e so the optima above are exact. R is chosen per unit so that the optimum lies inside
[0.05, 0.95]. Units get random receptive fields from ``seed``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from actmax.core.contracts import check_pole
from actmax.core.registry import scorers
from actmax.scorers.base import Scorer, to_channels, to_size

KINDS = ("simple", "complex", "dual")
DUAL_BASELINE, DUAL_EXCITATION, DUAL_SUPPRESSION = 1.0, 2.0, 4.0
SIMPLE_SHARPNESS = 8.0


def gabor_filter(size: int, x: float, y: float, sigma: float, theta: float, cycles_per_sigma: float,
                 phase: float, aspect: float = 1.0) -> np.ndarray:
    """A zero-mean, unit-norm Gabor (size, size); x, y and sigma in pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - x, yy - y
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    env = np.exp(-(u ** 2 + (aspect * v) ** 2) / (2 * sigma ** 2))
    g = env * np.cos(2 * math.pi * cycles_per_sigma / sigma * u + phase)
    g -= env * (g.sum() / env.sum())  # remove the DC the envelope leaks
    return g / np.linalg.norm(g)


def _orthonormal(g: np.ndarray, against: np.ndarray) -> np.ndarray:
    g = g - (g * against).sum() * against
    return g / np.linalg.norm(g)


@scorers.register("model")
class ModelNeurons(Scorer):
    """Ground-truth model neurons (simple, complex, dual-feature) with known optimal stimuli."""

    differentiable = True

    def __init__(self, kind: str = "mixed", n: int = 3, size: int = 64, seed: int = 0,
                 gain: float = 10.0) -> None:
        super().__init__()
        if kind not in KINDS + ("mixed",):
            raise ValueError(f"model: kind must be one of {KINDS + ('mixed',)}, got {kind!r}")
        if n < 1:
            raise ValueError(f"model: n must be >= 1, got {n}")
        self.size, self.units, self.seed = int(size), int(n), int(seed)
        self.kinds = [KINDS[i % 3] if kind == "mixed" else kind for i in range(self.units)]
        rng = np.random.default_rng(seed)
        f1, f2, envs, limits, gains, rf = [], [], [], [], [], []
        for k in self.kinds:
            sigma = size * rng.uniform(0.07, 0.10)
            x, y = size * rng.uniform(0.35, 0.65, size=2)
            theta = rng.uniform(0, math.pi)
            cps = rng.uniform(0.45, 0.65)
            phase = rng.uniform(-math.pi, math.pi)
            a = gabor_filter(size, x, y, sigma, theta, cps, phase)
            if k == "complex":
                b = _orthonormal(gabor_filter(size, x, y, sigma, theta, cps, phase + math.pi / 2), a)
            elif k == "dual":
                b = _orthonormal(gabor_filter(size, x, y, sigma * rng.uniform(0.9, 1.1), theta + math.pi / 2,
                                              cps * rng.uniform(0.8, 1.2), rng.uniform(-math.pi, math.pi)), a)
            else:
                b = np.zeros_like(a)
            peak = max(np.abs(a).max(), np.abs(b).max())
            yy, xx = np.mgrid[0:size, 0:size] + 0.5
            envs.append(((xx - x) ** 2 + (yy - y) ** 2) <= (2.0 * sigma) ** 2)
            f1.append(a), f2.append(b), limits.append(0.45 / peak), gains.append(gain * rng.uniform(0.8, 1.2))
            rf.append((x, y, sigma, theta))
        as_t = lambda arr: torch.tensor(np.stack(arr), dtype=torch.float32)  # noqa: E731
        self.register_buffer("filter1", as_t(f1).view(self.units, -1))
        self.register_buffer("filter2", as_t(f2).view(self.units, -1))
        self.register_buffer("limit", torch.tensor(limits, dtype=torch.float32))
        self.register_buffer("gain", torch.tensor(gains, dtype=torch.float32))
        self.register_buffer("rf_mask", torch.tensor(np.stack(envs)))
        kind_code = torch.tensor([KINDS.index(k) for k in self.kinds])
        self.register_buffer("kind_code", kind_code)
        self.receptive_fields = rf  # (x, y, sigma, orientation) in pixels, per unit

    @property
    def unit_names(self) -> list[str]:
        return [f"{i}:{k}" for i, k in enumerate(self.kinds)]

    # -- responses ------------------------------------------------------------------------
    def respond(self, images: torch.Tensor) -> torch.Tensor:
        c = to_size(to_channels(images, 1), self.size).flatten(1).float() - 0.5
        norm = c.norm(dim=1, keepdim=True)                                   # (B, 1)
        gain_control = self.limit / torch.maximum(norm, self.limit)          # (B, U)
        p1 = (c @ self.filter1.T) * gain_control / self.limit                # in [-1, 1]
        p2 = (c @ self.filter2.T) * gain_control / self.limit
        k = SIMPLE_SHARPNESS
        simple = F.softplus(k * p1) / math.log1p(math.exp(k))
        complex_ = torch.sqrt(p1 ** 2 + p2 ** 2 + 1e-12)
        dual = F.softplus(DUAL_BASELINE + DUAL_EXCITATION * p1 ** 2 - DUAL_SUPPRESSION * p2 ** 2)
        out = torch.where(self.kind_code == 0, simple, torch.where(self.kind_code == 1, complex_, dual))
        return out * self.gain

    # -- ground truth ---------------------------------------------------------------------
    def optimum_is_unique(self, unit: int, pole: str) -> bool:
        """Whether ``optimal_stimulus(pole)`` is the only optimum (up to contrast beyond R)."""
        check_pole(pole)
        kind = self.kinds[self.check_unit(unit)]
        return kind != "complex"

    def optimal_stimulus(self, pole: str = "high", units: list[int] | None = None) -> torch.Tensor:
        """Known optimal image per unit (n, 1, size, size) in [0, 1].

        Dual units' optima are unique up to sign (the + sign is returned); complex cells'
        ``high`` optimum is one member (phase 0) of a phase family and their ``low`` is the
        grey image, one of many stimuli that reach the floor of 0.
        """
        check_pole(pole)
        units = list(range(self.units)) if units is None else [self.check_unit(u) for u in units]
        out = []
        for u in units:
            kind, r = self.kinds[u], self.limit[u]
            if pole == "high":
                c = self.filter1[u] * r
            elif kind == "dual":
                c = self.filter2[u] * r
            elif kind == "simple":
                c = -self.filter1[u] * r
            else:
                c = torch.zeros_like(self.filter1[u])
            out.append((0.5 + c).view(1, self.size, self.size))
        return torch.stack(out)

    def optimal_response(self, pole: str = "high", units: list[int] | None = None) -> torch.Tensor:
        units = list(range(self.units)) if units is None else units
        with torch.no_grad():
            resp = self(self.optimal_stimulus(pole, units))
        return resp[torch.arange(len(units)), torch.tensor(units)]

    def baseline(self) -> torch.Tensor:
        """Response of every unit to the uniform grey image, shape (units,)."""
        with torch.no_grad():
            return self(torch.full((1, 1, self.size, self.size), 0.5))[0]

    def similarity_to_optimum(self, images: torch.Tensor, units: list[int], pole: str = "high") -> torch.Tensor:
        """Pearson correlation inside each unit's receptive field between image and known optimum.

        For complex cells the optimum is a family over phase: the best phase is taken; for
        dual units the optimum is defined up to sign: the absolute correlation is taken.
        """
        check_pole(pole)
        x = to_size(to_channels(images.detach().float(), 1), self.size).flatten(1)
        sims = []
        for i, u in enumerate(units):
            mask = self.rf_mask[u].flatten()
            xi = x[i][mask]
            if self.kinds[u] == "complex" and pole == "high":
                phases = torch.linspace(0, 2 * math.pi, 73)[:-1]
                refs = torch.cos(phases)[:, None] * self.filter1[u] + torch.sin(phases)[:, None] * self.filter2[u]
                sims.append(max(_pearson(xi, ref[mask]) for ref in refs))
            else:
                ref = self.optimal_stimulus(pole, [u]).flatten()[mask]
                r = _pearson(xi, ref)
                sims.append(abs(r) if self.kinds[u] == "dual" else r)
        return torch.tensor(sims)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return float((a * b).sum() / denom) if denom > 0 else 0.0

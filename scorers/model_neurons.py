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

Non-classical families (issue 11), same contrast gain control:

* ``endstop`` length-tuned (end-stopped) simple cell: a compact excitatory Gabor g at the RF
  centre and a suppressive quadrature pair (s1, s2) of the same orientation and frequency in two
  end zones along the bars (2.5 sigma from the centre):
  rate = gain * softplus(k (p_g - ES sqrt(p_s1^2 + p_s2^2))) / softplus(k).
  MEI: 0.5 + R g (the short grating; unique). LEI: 0.5 + R (ES s1 - g) / sqrt(1 + ES^2), the
  inverted centre plus the end zones (p_g - ES |p_s| is least at -sqrt(1 + ES^2) on the unit disk;
  any phase in the (s1, s2) pair does as well: not unique). A long grating drives the end zones
  as well and is suppressed strongly.
* ``colour`` double-opponent colour cell on RGB input: the filter is a spatial Gabor times a
  unit colour vector mostly in the opponent plane (orthogonal to grey) with a weak luminance
  share (LUMA_SHARE), rate as ``simple`` on the RGB contrast image. MEI: 0.5 + R w (unique,
  coloured); LEI: 0.5 - R w. Grey images reach at most LUMA_SHARE of the optimal projection.
* ``cnn``     a unit of a deeper random conv net (three bias-free ReLU conv layers, seeded
  smooth zero-mean weights shared by the population) read out by a Gaussian window (sigma
  CNN_READOUT_SIGMA px) on one feature channel at a known RF centre; rate = gain * r / scale,
  scale = the largest r over 64 seeded random images at the contrast limit. The net is
  positively homogeneous, so the optimum lies at the contrast limit; it has no closed form and
  is *numerically certified*: the best of CNN_STARTS seeded multi-start projected gradient
  ascents (Adam, pixels clamped to [0, 1]) on the very response function, recomputed
  deterministically on first use and cached. LEI: grey (rate 0, the floor; not unique).

Normalisation pool (``pool=``). ``global`` (default, as above): the gain control pools the contrast of
the *whole image*, so contrast far outside the RF suppresses a unit as much as contrast on it, and at
the closed loop's stimulus contrast (L2 norm 3 at 32 px, R = 1.4-2.0) every natural patch saturates
it. That is not what V1 does: normalisation pools over a region a few times the classical RF (the
suppressive surround). ``rf``: each unit's gain control sees ``||W_u c||``, W_u = 1 on the unit's
filter support (a disk of RF_SUPPORT x 1.1 sigma, plus ENDSTOP_DISTANCE sigma for end-stopped cells;
for ``cnn`` units every pixel their truncated readout depends on) and a Gaussian fall-off of
POOL_FALLOFF sigma beyond; the filters (and the cnn readout window, at 3 of its sigma) are cut to
that support. Contrast outside the support can then only lower the response, so every optimum
above is still exact (cnn: still certified by ascent, gain applied after the homogeneous net). Same
seed, same units: only the cut of the filters changes them (by < 1e-3 of their energy).

g, g1/g2, e and h are unit-norm Gabor filters; g2 and h are orthogonalised against g1 and
e so the optima above are exact. R is chosen per unit so that the optimum lies inside
[0.05, 0.95]. Units get random receptive fields from ``seed``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actmax.core.contracts import check_pole
from actmax.core.registry import scorers
from actmax.scorers.base import Scorer, to_channels, to_size
from actmax.core.errors import InputError

KINDS = ("simple", "complex", "dual", "endstop", "colour", "cnn")
CLASSIC = KINDS[:3]
#: populations: ``mixed`` cycles the classical kinds (kept as before: tests, figures and
#: source data depend on it); ``all`` cycles every kind, classical and non-classical.
POPULATIONS = {"mixed": CLASSIC, "all": KINDS}
DUAL_BASELINE, DUAL_EXCITATION, DUAL_SUPPRESSION = 1.0, 2.0, 4.0
SIMPLE_SHARPNESS = 8.0
ENDSTOP_SUPPRESSION, ENDSTOP_DISTANCE = 2.0, 2.5   # suppression weight; end-zone offset in sigmas
LUMA_SHARE = 0.3                                  # colour cells: luminance share of the colour vector
CNN_CHANNELS, CNN_READOUT_SIGMA, CNN_STARTS, CNN_STEPS = 8, 1.5, 16, 400
#: normalisation pools (``pool=``): ``global`` (the whole image's contrast, the default) or ``rf`` (around each RF)
POOLS = ("global", "rf")
#: pool=rf: filters are cut at RF_SUPPORT envelope sigmas (x 1.1, the dual's widest feature; end-stopped cells
#: add their end zones' offset) and the pool weights the contrast 1 on that support, falling off as a Gaussian
#: of POOL_FALLOFF sigmas (the classical RF radius, ``rf_mask``) beyond it
RF_SUPPORT, POOL_FALLOFF = 3.0, 2.0


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


def _disk(size: int, x: float, y: float, radius: float) -> np.ndarray:
    """Boolean (size, size): pixel centres within ``radius`` of (x, y)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return np.hypot(xx - x, yy - y) <= radius


def _cut(a: np.ndarray, b: np.ndarray, b3: np.ndarray, c3: np.ndarray,
         support: np.ndarray) -> tuple[np.ndarray, ...]:
    """The unit's filters set to 0 outside ``support`` and made orthonormal again in the order they were built
    (b against a, b3 against both); all-zero filters stay zero."""
    cut = []
    for f, against in ((a, ()), (b, (0,)), (b3, (0, 1))):
        f = f * support
        for j in against:
            if np.abs(cut[j]).sum() > 0:
                f = f - (f * cut[j]).sum() * cut[j]
        norm = np.linalg.norm(f)
        cut.append(f / norm if norm > 1e-12 else np.zeros_like(f))
    if c3.size:
        c3 = c3 * support[None]
        c3 = c3 / max(np.linalg.norm(c3), 1e-12)
    return (*cut, c3)


@scorers.register("model")
class ModelNeurons(Scorer):
    """Ground-truth model neurons (simple, complex, dual, end-stopped, colour, CNN-like) with known optima.

    Options:
        kind: one family for every unit (simple, complex, dual, endstop, colour, cnn), or a population:
            'mixed' cycles simple/complex/dual, 'all' cycles all six
        n: number of units
        size: image side in pixels the neurons see
        seed: draws each unit's receptive field (position, orientation, frequency)
        gain: response scale (peak firing rate, model units)
        pool: contrast gain control over the whole image ('global', the default) or around each RF ('rf')
    """

    differentiable = True

    def __init__(self, kind: str = "mixed", n: int = 3, size: int = 64, seed: int = 0,
                 gain: float = 10.0, pool: str = "global") -> None:
        super().__init__()
        if pool not in POOLS:
            raise InputError(f"model: pool must be one of {POOLS}, got {pool!r}")
        self.pool = pool
        if kind not in KINDS + tuple(POPULATIONS):
            raise InputError(f"model: kind must be one of {KINDS + tuple(POPULATIONS)}, got {kind!r}")
        if n < 1:
            raise InputError(f"model: n must be >= 1, got {n}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"model: size must be an integer >= 1, got {size!r}")
        from actmax.core.bounds import check_memory   # ~8 float32 filters of size x size per unit, built in a loop
        check_memory(8 * 4.0 * 3 * n * size * size, f"model: n={n}, size={size}")
        self.size, self.units, self.seed = int(size), int(n), int(seed)
        pop = POPULATIONS.get(kind)
        self.kinds = [pop[i % len(pop)] if pop else kind for i in range(self.units)]
        self.channels = 3 if "colour" in self.kinds else 1
        rng = np.random.default_rng(seed)
        f1, f2, f3, fc, envs, limits, gains, rf, pools = [], [], [], [], [], [], [], [], []
        for k in self.kinds:
            sigma = size * rng.uniform(0.07, 0.10)
            x, y = size * rng.uniform(0.35, 0.65, size=2)
            theta = rng.uniform(0, math.pi)
            cps = rng.uniform(0.45, 0.65)
            phase = rng.uniform(-math.pi, math.pi)
            if k == "cnn":
                sigma = 0.1 * size  # nominal extent of the net unit's RF (readout + conv footprint)
            a = gabor_filter(size, x, y, sigma, theta, cps, phase)
            c3 = np.zeros(0)
            b3 = np.zeros_like(a)
            if k == "endstop":
                # end zones along the bars (perpendicular to the modulation direction)
                ox, oy = -math.sin(theta) * ENDSTOP_DISTANCE * sigma, math.cos(theta) * ENDSTOP_DISTANCE * sigma
                ends = [gabor_filter(size, x + sx * ox, y + sx * oy, sigma, theta, cps, ph)
                        for ph in (phase, phase + math.pi / 2) for sx in (-1, 1)]
                b = _orthonormal(ends[0] + ends[1], a)
                b3 = _orthonormal(_orthonormal(ends[2] + ends[3], a), b)
            elif k == "colour":
                opp = rng.normal(size=3)
                opp -= opp.mean()
                opp /= np.linalg.norm(opp)
                col = math.sqrt(1 - LUMA_SHARE ** 2) * opp + LUMA_SHARE * np.ones(3) / math.sqrt(3)
                c3 = col[:, None, None] * a[None]          # unit norm (col and a are unit norm)
                b = np.zeros_like(a)
            if k == "complex":
                b = _orthonormal(gabor_filter(size, x, y, sigma, theta, cps, phase + math.pi / 2), a)
            elif k == "dual":
                b = _orthonormal(gabor_filter(size, x, y, sigma * rng.uniform(0.9, 1.1), theta + math.pi / 2,
                                              cps * rng.uniform(0.8, 1.2), rng.uniform(-math.pi, math.pi)), a)
            elif k not in ("endstop", "colour"):
                b = np.zeros_like(a)
            support = (ENDSTOP_DISTANCE if k == "endstop" else 0.0) * sigma + RF_SUPPORT * 1.1 * sigma
            if pool == "rf" and k != "cnn":   # the filters end where the pool is flat: the optima stay exact
                a, b, b3, c3 = _cut(a, b, b3, c3, _disk(size, x, y, support))
            peak = max(np.abs(a).max(), np.abs(b).max())
            if k == "colour":
                peak = np.abs(c3).max()
                a = np.zeros_like(a)                   # colour cells see RGB only
            if k == "cnn":
                peak = 1.0                             # limit chosen below, common to all net units
                a = np.zeros_like(a)
            yy, xx = np.mgrid[0:size, 0:size] + 0.5
            envs.append(((xx - x) ** 2 + (yy - y) ** 2) <= (2.0 * sigma) ** 2)
            dist = np.maximum(np.hypot(xx - x, yy - y) - support, 0.0)
            pools.append(np.exp(-dist ** 2 / (2 * (POOL_FALLOFF * sigma) ** 2)))
            f1.append(a), f2.append(b), f3.append(b3), limits.append(0.45 / peak)
            fc.append(c3 if k == "colour" else np.zeros((3, size, size)))
            gains.append(gain * rng.uniform(0.8, 1.2))
            rf.append((x, y, sigma, theta))
        as_t = lambda arr: torch.tensor(np.stack(arr), dtype=torch.float32)  # noqa: E731
        self.register_buffer("filter1", as_t(f1).view(self.units, -1))
        self.register_buffer("filter2", as_t(f2).view(self.units, -1))
        self.register_buffer("filter3", as_t(f3).view(self.units, -1))
        self.register_buffer("colour_filter", as_t(fc).view(self.units, -1))
        self.register_buffer("limit", torch.tensor(limits, dtype=torch.float32))
        self.register_buffer("gain", torch.tensor(gains, dtype=torch.float32))
        self.register_buffer("rf_mask", torch.tensor(np.stack(envs)))
        #: pool=rf: the squared pool weights (U, size*size); the pooled contrast is sqrt((c^2) @ pool_weight.T)
        self.register_buffer("pool_weight", as_t(pools).view(self.units, -1) ** 2 if pool == "rf" else torch.ones(0))
        kind_code = torch.tensor([KINDS.index(k) for k in self.kinds])
        self.register_buffer("kind_code", kind_code)
        self.receptive_fields = rf  # (x, y, sigma, orientation) in pixels, per unit
        self._certified: dict[int, torch.Tensor] = {}
        if "cnn" in self.kinds:
            self._build_net(rng)

    # -- the random conv net ----------------------------------------------------------------
    def _build_net(self, rng: np.random.Generator) -> None:
        """Seeded, bias-free conv net shared by the population's ``cnn`` units, and their readouts."""
        ch, size = CNN_CHANNELS, self.size
        blur = np.exp(-np.linspace(-1, 1, 5) ** 2)
        blur = np.outer(blur, blur)

        def conv(cout: int, cin: int, k: int, smooth: bool) -> torch.Tensor:
            w = rng.normal(size=(cout, cin, k, k))
            if smooth:                                   # V1-like smooth first-layer filters
                w = w * blur
            w -= w.mean(axis=(2, 3), keepdims=True)      # zero-mean: grey gives exactly 0
            w /= np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True))
            return torch.tensor(w, dtype=torch.float32)

        self.register_buffer("net_w1", conv(ch, 1, 5, True))
        self.register_buffer("net_w2", conv(ch, ch, 5, False))
        self.register_buffer("net_w3", conv(ch, ch, 3, False))
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        windows, chans = [], []
        for u, k in enumerate(self.kinds):
            x, y = self.receptive_fields[u][:2]
            w = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * CNN_READOUT_SIGMA ** 2)) if k == "cnn" \
                else np.zeros((size, size))
            if self.pool == "rf" and k == "cnn":
                w = w * _disk(size, x, y, RF_SUPPORT * CNN_READOUT_SIGMA)
                self.pool_weight[u] = torch.tensor(self._net_pool(w > 0, self.receptive_fields[u][2]) ** 2,
                                                   dtype=torch.float32).flatten()
            windows.append(w / max(w.sum(), 1e-12))
            chans.append(int(rng.integers(ch)))
        self.register_buffer("readout_window", torch.tensor(np.stack(windows), dtype=torch.float32).view(self.units, -1))
        self.register_buffer("readout_channel", torch.tensor(chans))
        cnn = torch.tensor([k == "cnn" for k in self.kinds])
        r_cnn = 0.25 * size / 8                         # contrast limit of the net units (0.25 RMS-ish at 8 px)
        self.limit[cnn] = r_cnn
        # scale: the largest readout over seeded random images at the contrast limit
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        noise = torch.randn(64, size * size, generator=gen)
        noise = noise / noise.norm(dim=1, keepdim=True) * r_cnn
        self.register_buffer("net_scale", torch.ones(self.units))
        with torch.no_grad():
            r = self._net_readout(noise)
        self.net_scale[cnn] = r.max(0).values[cnn].clamp_min(1e-6)

    def _net_pool(self, readout: np.ndarray, sigma: float) -> np.ndarray:
        """pool=rf for a net unit: 1 on every pixel its readout depends on (the readout's support grown by the
        convolutions' reach, 5 px), a Gaussian fall-off of POOL_FALLOFF sigma beyond."""
        from scipy.ndimage import binary_dilation, distance_transform_edt

        reach = sum(w.shape[-1] // 2 for w in (self.net_w1, self.net_w2, self.net_w3))
        footprint = binary_dilation(readout, structure=np.ones((2 * reach + 1, 2 * reach + 1), bool))
        dist = distance_transform_edt(~footprint)
        return np.exp(-dist ** 2 / (2 * (POOL_FALLOFF * sigma) ** 2))

    def pooled_contrast(self, c: torch.Tensor) -> torch.Tensor:
        """The contrast each unit's gain control sees: (B, 1) ||c|| for pool=global, (B, U) for pool=rf.

        ``c`` is the flat contrast (B, size*size) or, for RGB, (B, 3*size*size)."""
        if self.pool == "global":
            return c.norm(dim=1, keepdim=True)
        energy = (c ** 2).view(c.shape[0], -1, self.size * self.size).sum(1)
        return (energy @ self.pool_weight.T).clamp_min(0).sqrt()

    def _net_readout(self, c_eff: torch.Tensor) -> torch.Tensor:
        """Gaussian-window readout of the net's features: (B, size*size) contrast -> (B, units)."""
        h = c_eff.view(-1, 1, self.size, self.size)
        h = F.relu(F.conv2d(h, self.net_w1, padding=2))
        h = F.relu(F.conv2d(h, self.net_w2, padding=2))
        h = F.relu(F.conv2d(h, self.net_w3, padding=1))            # (B, ch, H, W)
        feats = h.flatten(2)[:, self.readout_channel]                 # (B, U, H*W)
        return (feats * self.readout_window).sum(-1)

    @property
    def unit_names(self) -> list[str]:
        return [f"{i}:{k}" for i, k in enumerate(self.kinds)]

    # -- responses ------------------------------------------------------------------------
    def respond(self, images: torch.Tensor) -> torch.Tensor:
        c = to_size(to_channels(images, 1), self.size).flatten(1).float() - 0.5
        norm = self.pooled_contrast(c)                                       # (B, 1) or (B, U)
        gain_control = self.limit / torch.maximum(norm, self.limit)          # (B, U)
        p1 = (c @ self.filter1.T) * gain_control / self.limit                # in [-1, 1]
        p2 = (c @ self.filter2.T) * gain_control / self.limit
        k = SIMPLE_SHARPNESS
        simple = F.softplus(k * p1) / math.log1p(math.exp(k))
        complex_ = torch.sqrt(p1 ** 2 + p2 ** 2 + 1e-12)
        dual = F.softplus(DUAL_BASELINE + DUAL_EXCITATION * p1 ** 2 - DUAL_SUPPRESSION * p2 ** 2)
        out = torch.where(self.kind_code == 0, simple, torch.where(self.kind_code == 1, complex_, dual))
        if self.kind_code.max() >= 3:
            p3 = (c @ self.filter3.T) * gain_control / self.limit
            endstop = F.softplus(k * (p1 - ENDSTOP_SUPPRESSION * torch.sqrt(p2 ** 2 + p3 ** 2 + 1e-12))) / math.log1p(math.exp(k))
            out = torch.where(self.kind_code == 3, endstop, out)
        if self.channels == 3:
            c3 = to_size(to_channels(images, 3), self.size).flatten(1).float() - 0.5
            gc3 = self.limit / torch.maximum(self.pooled_contrast(c3), self.limit)
            pc = (c3 @ self.colour_filter.T) * gc3 / self.limit
            out = torch.where(self.kind_code == 4, F.softplus(k * pc) / math.log1p(math.exp(k)), out)
        if hasattr(self, "net_w1") and self.pool == "rf":   # the net is positively homogeneous: gain after it
            out = torch.where(self.kind_code == 5, self._net_readout(c) * gain_control / self.net_scale, out)
        elif hasattr(self, "net_w1"):
            r = self.limit[self.kind_code == 5][0]
            c_eff = c * (r / torch.maximum(norm, r))
            out = torch.where(self.kind_code == 5, self._net_readout(c_eff) / self.net_scale, out)
        return out * self.gain

    def feature_projections(self, images: torch.Tensor, units: list[int]) -> torch.Tensor:
        """Gain-controlled projections (p1, p2) of image i on unit units[i]'s two filters, (n, 2).

        For ``dual`` units p1 is the excitatory and p2 the suppressive feature (optimum: |p1| = 1
        for the MEI, |p2| = 1 for the LEI); p1^2 + p2^2 <= 1 always, so a shortfall shows how
        much of the stimulus contrast lies outside the unit's features. Diagnostics for closed loops.
        """
        c = to_size(to_channels(images.detach(), 1), self.size).flatten(1).float() - 0.5
        idx = torch.tensor([self.check_unit(u) for u in units])
        r = self.limit[idx]
        norm = self.pooled_contrast(c)
        norm = norm[:, 0] if self.pool == "global" else norm[torch.arange(len(idx)), idx]
        gc = r / torch.maximum(norm, r)
        p1 = (c * self.filter1[idx]).sum(1) * gc / r
        p2 = (c * self.filter2[idx]).sum(1) * gc / r
        return torch.stack([p1, p2], dim=1)

    # -- ground truth ---------------------------------------------------------------------
    def optimum_is_unique(self, unit: int, pole: str) -> bool:
        """Whether ``optimal_stimulus(pole)`` is the only optimum (up to contrast beyond R).

        ``cnn`` units: their high optimum is numerical (not known to be unique), low is grey.
        """
        check_pole(pole)
        kind = self.kinds[self.check_unit(unit)]
        return kind not in ("complex", "cnn") and not (kind == "endstop" and pole == "low")

    def optimum_is_numerical(self, unit: int, pole: str = "high") -> bool:
        """Whether the optimum is numerically certified (multi-start ascent) rather than closed form."""
        check_pole(pole)
        return self.kinds[self.check_unit(unit)] == "cnn" and pole == "high"

    def certified_optimum(self, unit: int) -> torch.Tensor:
        """The best of CNN_STARTS seeded projected-ascent runs on a ``cnn`` unit, (1, size, size).

        Deterministic (seeded starts, fixed schedule) and cached per instance: a numerical
        certificate, not a proof; every start's final response is within a few per cent of the
        best one for the nets built here (see tests).
        """
        u = self.check_unit(unit)
        if u not in self._certified:
            self._certified.update(self._certify([v for v, k in enumerate(self.kinds) if k == "cnn"]))
        return self._certified[u]

    def _certify(self, units: list[int]) -> dict[int, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 7919 + 17)
        n, s = len(units), CNN_STARTS
        x = (0.5 + 0.05 * torch.randn(n * s, self.channels, self.size, self.size, generator=gen)).clamp(0, 1)
        x.requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.02)
        idx = torch.tensor(units).repeat_interleave(s)
        for step in range(CNN_STEPS):
            with torch.enable_grad():                 # callers may hold torch.no_grad()
                resp = self.respond(x)[torch.arange(n * s), idx]
                opt.zero_grad()
                (-resp.sum()).backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        with torch.no_grad():
            resp = self.respond(x)[torch.arange(n * s), idx].view(n, s)
            best = resp.argmax(1)
            self.certificate_spread = {u: sorted((resp[i] / resp[i].max()).tolist()) for i, u in enumerate(units)}
            return {u: x.detach().view(n, s, self.channels, self.size, self.size)[i, best[i]].clone()
                    for i, u in enumerate(units)}

    def optimal_stimulus(self, pole: str = "high", units: list[int] | None = None) -> torch.Tensor:
        """Known optimal image per unit (n, 1, size, size) in [0, 1].

        Dual units' optima are unique up to sign (the + sign is returned); complex cells'
        ``high`` optimum is one member (phase 0) of a phase family and their ``low`` is the
        grey image, one of many stimuli that reach the floor of 0.
        """
        check_pole(pole)
        units = list(range(self.units)) if units is None else [self.check_unit(u) for u in units]
        out = []
        ch = self.channels
        for u in units:
            kind, r = self.kinds[u], self.limit[u]
            if kind == "colour":
                sign = 1.0 if pole == "high" else -1.0
                out.append((0.5 + sign * r * self.colour_filter[u]).view(3, self.size, self.size))
                continue
            if kind == "cnn" and pole == "high":
                out.append(self.certified_optimum(u).expand(ch, -1, -1).clone())
                continue
            if pole == "high":
                c = self.filter1[u] * r
            elif kind == "dual":
                c = self.filter2[u] * r
            elif kind == "endstop":   # the inverted centre plus the suppressive end zones
                c = (ENDSTOP_SUPPRESSION * self.filter2[u] - self.filter1[u]) * r / math.sqrt(1 + ENDSTOP_SUPPRESSION ** 2)
            elif kind == "simple":
                c = -self.filter1[u] * r
            else:
                c = torch.zeros_like(self.filter1[u])
            out.append((0.5 + c).view(1, self.size, self.size).expand(ch, -1, -1))
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
            if self.kinds[u] in ("colour", "cnn"):
                x3 = to_size(to_channels(images[i:i + 1].detach().float(), self.channels), self.size).flatten(1)[0]
                m3 = mask.repeat(self.channels)
                ref = self.optimal_stimulus(pole, [u]).flatten()[m3]
                sims.append(_pearson(x3[m3], ref))
                continue
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


# -- a family with state: eye position and behaviour (issue 24) -------------------------------------
BEHAVIOR_NAMES = ("pupil", "dpupil", "run")


def fourier_shift(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Translate images (B, C, H, W) by ``shift`` (B, 2) = (dx, dy) pixels (subpixel, circular, exact
    for band-limited content: the phase ramp of the Fourier transform)."""
    h, w = images.shape[-2:]
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    s = shift.to(torch.float64)
    ramp = torch.exp(-2j * math.pi * (fx[None] * s[:, 0, None, None] + fy[None] * s[:, 1, None, None]))
    out = torch.fft.ifft2(torch.fft.fft2(images.to(torch.float64)) * ramp[:, None]).real
    return out.to(images.dtype)


@scorers.register("model_behaving")
class BehavingNeurons(ModelNeurons):
    """Ground-truth neurons whose RF moves with eye position and whose gain depends on behaviour.

    A unit of the base ``kind`` (any closed-form family: simple, complex, dual, endstop, colour)
    looks at the stimulus translated by the eye position: at eye position ``e`` (x, y in pixels of
    the stimulus, relative to its centre) its receptive field sits ``eye_gain * e`` pixels away
    from where it sits at the centre (a subpixel Fourier translation, so the response at ``e`` to
    the optimum translated by ``eye_gain * e`` equals the base optimum's exactly). Its rate is
    then multiplied by a positive gain, ``exp(w_u . z(b))`` with ``z`` = ((pupil - 1) / 0.25,
    dpupil / 0.1, run / 6) and per-unit weights ``w_u`` (pupil U(0.1, 0.3), derivative
    U(-0.1, 0.1), running U(0, 0.3)): 1 when still, pupil 1, derivative 0.

    ``respond`` answers at the state set with :meth:`set_state` (default: centre, gain 1);
    :meth:`rates` at per-image states; :meth:`draw_states` draws the recording's per-trial states
    (eye ~ N(eye_mean_px, eye_sd_px) per axis; arousal a ~ N(0, 1): pupil = 1 + 0.25 a, dpupil ~
    N(0, 0.1), run = max(0, 6 (a + 0.5 N(0, 1)))); :meth:`record` simulates Poisson trials at them.
    ``optimal_stimulus`` / ``optimal_response`` are the known optimum at the current state.
    """

    def __init__(self, kind: str = "mixed", n: int = 3, size: int = 64, seed: int = 0, gain: float = 10.0,
                 eye_gain: float = 1.0, eye_mean_px: tuple[float, float] = (0.04, -0.03),
                 eye_sd_px: float = 0.05, pool: str = "global") -> None:
        base_kinds = POPULATIONS.get(kind, (kind,))
        if "cnn" in base_kinds:
            raise InputError("model_behaving: the cnn family has no closed-form optimum; use simple, complex, "
                             "dual, endstop, colour or mixed")
        super().__init__(kind=kind, n=n, size=size, seed=seed, gain=gain, pool=pool)
        rng = np.random.default_rng(seed + 7919)
        w = np.stack([rng.uniform(0.1, 0.3, self.units), rng.uniform(-0.1, 0.1, self.units),
                      rng.uniform(0.0, 0.3, self.units)], axis=1)
        self.register_buffer("behavior_weights", torch.tensor(w, dtype=torch.float32))   # (U, 3)
        self.eye_gain = float(eye_gain)
        #: eye distribution of recordings, in pixels (given as fractions of ``size``)
        self.eye_mean = (float(eye_mean_px[0]) * self.size, float(eye_mean_px[1]) * self.size)
        self.eye_sd = float(eye_sd_px) * self.size
        self.register_buffer("state_eye", torch.zeros(1, 2))
        self.register_buffer("state_behavior", torch.tensor([[1.0, 0.0, 0.0]]))

    def set_state(self, eye: Any = None, behavior: Any = None) -> "BehavingNeurons":
        """The state ``respond`` and the optimum use (None leaves a variable as it is)."""
        if eye is not None:
            self.state_eye = torch.as_tensor(eye, dtype=torch.float32).reshape(1, 2).to(self.state_eye.device)
        if behavior is not None:
            self.state_behavior = torch.as_tensor(behavior, dtype=torch.float32).reshape(1, 3).to(
                self.state_behavior.device)
        return self

    def true_shift(self, eye: torch.Tensor) -> torch.Tensor:
        """RF displacement (B, 2) in stimulus pixels for eye positions (B, 2)."""
        return self.eye_gain * torch.as_tensor(eye, dtype=torch.float32).reshape(-1, 2)

    def behavior_gain(self, behavior: torch.Tensor) -> torch.Tensor:
        """Per-unit gain (B, U) at behaviour (B, 3)."""
        b = torch.as_tensor(behavior, dtype=torch.float32).reshape(-1, 3).to(self.behavior_weights)
        z = torch.stack([(b[:, 0] - 1.0) / 0.25, b[:, 1] / 0.1, b[:, 2] / 6.0], dim=1)
        return torch.exp(z @ self.behavior_weights.T)

    def rates(self, images: torch.Tensor, eye: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        """Noise-free rates (B, U), image i at eye position eye[i] and behaviour behavior[i]."""
        x = to_size(to_channels(images.float(), self.channels), self.size)
        shift = self.true_shift(eye).to(x).expand(x.shape[0], -1)
        seen = 0.5 + fourier_shift(x - 0.5, -shift)          # the RF moves by +shift
        return super().respond(seen) * self.behavior_gain(behavior).to(x).expand(x.shape[0], -1)

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        return self.rates(images, self.state_eye, self.state_behavior)

    def optimal_stimulus(self, pole: str = "high", units: list[int] | None = None) -> torch.Tensor:
        """The base optimum translated to where the RFs sit at the current eye position."""
        base = super().optimal_stimulus(pole, units)
        shift = self.true_shift(self.state_eye).expand(base.shape[0], -1)
        return (0.5 + fourier_shift(base - 0.5, shift)).clamp(0, 1)

    def draw_states(self, n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Per-trial eye positions (n, 2) and behaviour (n, 3) of a recording."""
        rng = np.random.default_rng(seed)
        eye = np.asarray(self.eye_mean) + self.eye_sd * rng.standard_normal((n, 2))
        arousal = rng.standard_normal(n)
        pupil = 1.0 + 0.25 * arousal
        dpupil = 0.1 * rng.standard_normal(n)
        run = np.maximum(0.0, 6.0 * (arousal + 0.5 * rng.standard_normal(n)))
        return eye, np.stack([pupil, dpupil, run], axis=1)

    def record(self, images: torch.Tensor, trials_per_image: np.ndarray, *, window: float = 10.0,
               seed: int = 0) -> dict[str, np.ndarray]:
        """A simulated recording: Poisson counts (trials, images, U) at a random state per trial, the
        eye (trials, images, 2) and behaviour (trials, images, 3) arrays and the noise-free rates,
        NaN where an image has fewer trials."""
        counts_per = np.asarray(trials_per_image, dtype=int)
        t_max, n_img = int(counts_per.max()), images.shape[0]
        t_idx, i_idx = np.nonzero(np.arange(t_max)[:, None] < counts_per[None, :])
        eye, beh = self.draw_states(t_idx.size, seed=seed)
        rates = np.empty((t_idx.size, self.units))
        with torch.no_grad():
            for a in range(0, t_idx.size, 512):
                sl = slice(a, a + 512)
                rates[sl] = self.rates(images[torch.as_tensor(i_idx[sl])], torch.as_tensor(eye[sl]),
                                       torch.as_tensor(beh[sl])).double().numpy()
        rng = np.random.default_rng(seed + 1)
        out = {k: np.full((t_max, n_img, d), np.nan) for k, d in (("responses", self.units), ("rates", self.units),
                                                                   ("eye", 2), ("behavior", 3))}
        out["responses"][t_idx, i_idx] = rng.poisson(np.clip(rates, 0, None) * window)
        out["rates"][t_idx, i_idx] = rates * window
        out["eye"][t_idx, i_idx] = eye
        out["behavior"][t_idx, i_idx] = beh
        return out

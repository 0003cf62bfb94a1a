"""Controls for closed loops: what a neuron does for stimuli a lab would show anyway.

Every summary of an MEI needs references at the *same contrast*: the best parametric Gabor or
grating centred on the neuron's receptive field (:func:`best_rf_gabor`; :func:`worst_rf_gabor` for
LEIs), the best natural patch shown through a Gaussian window on the RF
(:func:`best_rf_masked_natural`) and the grey screen (:func:`grey_response`). All images are
[0, 1] with grey mean 0.5 per channel and L2 contrast ``norm`` = ||image - 0.5|| (what
:func:`actmax.core.apps.closed_loop.natural_stimuli` gives the natural stimuli); clipping to
[0, 1] is compensated by rescaling, as there.

Pixel convention: that of ``ModelNeurons.receptive_fields``: pixel (row i, column j) has its
centre at (x, y) = (j + 0.5, i + 0.5); RF centres ``rf_xy`` are (x, y) in those pixels.

The Gabor search works on any scorer (a black box: images -> (B, units)); batched over neurons:
each neuron's candidates are centred on its own RF, all neurons' candidates go through the
scorer together and each neuron reads its own column. A coarse grid (orientation, spatial
frequency, envelope size, phase and, for RGB, the colour directions luminance (L+M+S), L-M and
S-(L+M)) is followed by a local, seeded evolution-strategy refinement of every parameter
(colour as two angles around the luminance axis), to ``evaluations`` images per neuron.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from actmax.core.contracts import check_pole
from actmax.core.errors import InputError

#: RGB colour directions (unit vectors): luminance (L+M+S), red-green (L-M), blue-yellow (S-(L+M))
LUMINANCE_DIR = np.array([1.0, 1.0, 1.0]) / math.sqrt(3)
LM_DIR = np.array([1.0, -1.0, 0.0]) / math.sqrt(2)
S_DIR = np.array([-1.0, -1.0, 2.0]) / math.sqrt(6)
#: the coarse grid: orientations, frequencies (cycles per image: 2 .. 0.4 size), envelope sigmas
#: (fractions of the image side) and carrier phases
GRID_THETAS, GRID_FREQS, GRID_SIGMAS, GRID_PHASES = 8, 5, 3, 4
SIGMA_RANGE = (0.04, 0.16)
POPULATION = 16          # refinement candidates per neuron and iteration
COLOUR_SWEEP = 64        # RGB: colour directions tried (both signs) at the best grid Gabor


def _sphere(n: int) -> torch.Tensor:
    """(n, 2) colour angles (a, b) of ``n`` near-uniform directions on the RGB unit sphere (Fibonacci lattice)."""
    k = torch.arange(n, dtype=torch.float64) + 0.5
    a = torch.arccos(1 - 2 * k / n)
    b = (math.pi * (3 - math.sqrt(5)) * k) % (2 * math.pi)
    return torch.stack([a, b], dim=1).float()


def _responses(neurons: Any, images: torch.Tensor, batch: int) -> torch.Tensor:
    """Noise-free responses (B, units) of a scorer, in batches, without gradients."""
    with torch.no_grad():
        return torch.cat([neurons(images[i:i + batch]).float() for i in range(0, images.shape[0], batch)])


def at_contrast(contrast: torch.Tensor, norm: float, *, iterations: int = 12) -> torch.Tensor:
    """Images 0.5 + c in [0, 1] with per-channel mean 0.5 and ||image - 0.5|| = ``norm``, from contrast
    patterns ``contrast`` (B, C, H, W): scale to the norm, clip, recentre, repeat (clipping lowers the
    contrast; what it clips is made up by scaling the rest)."""
    c = contrast - contrast.mean(dim=(2, 3), keepdim=True)
    for _ in range(iterations):
        c = c * (norm / c.flatten(1).norm(dim=1).clamp_min(1e-9)).view(-1, 1, 1, 1)
        c = (c + 0.5).clamp(0, 1) - 0.5
        c = c - c.mean(dim=(2, 3), keepdim=True)
    c = c * (norm / c.flatten(1).norm(dim=1).clamp_min(1e-9)).view(-1, 1, 1, 1)
    return (0.5 + c).clamp(0, 1)


def colour_direction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unit RGB vectors (N, 3): ``cos a`` luminance + ``sin a`` (cos b (L-M) + sin b (S-(L+M)))."""
    basis = torch.tensor(np.stack([LUMINANCE_DIR, LM_DIR, S_DIR]), dtype=torch.float32)
    coef = torch.stack([torch.cos(a), torch.sin(a) * torch.cos(b), torch.sin(a) * torch.sin(b)], dim=1)
    return coef @ basis


def gabor_patterns(size: int, channels: int, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor,
                   frequency: torch.Tensor, phase: torch.Tensor, sigma: torch.Tensor,
                   colour: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-mean Gabor contrast patterns (N, channels, size, size), as ``ModelNeurons``' filters: centre (x, y)
    and ``sigma`` in pixels, ``theta`` the direction of modulation, ``frequency`` in cycles per pixel, the
    envelope's DC leak removed; RGB patterns are the spatial Gabor times the unit colour vector (N, 3)."""
    axis = torch.arange(size, dtype=torch.float32) + 0.5
    dx = axis.view(1, 1, -1) - x.view(-1, 1, 1)
    dy = axis.view(1, -1, 1) - y.view(-1, 1, 1)
    ct, st = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    u, v = dx * ct + dy * st, -dx * st + dy * ct
    env = torch.exp(-(u ** 2 + v ** 2) / (2 * sigma.view(-1, 1, 1) ** 2))
    g = env * torch.cos(2 * math.pi * frequency.view(-1, 1, 1) * u + phase.view(-1, 1, 1))
    g = g - env * (g.sum(dim=(1, 2), keepdim=True) / env.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12))
    g = g[:, None]
    if channels == 3:
        col = colour if colour is not None else torch.tensor(LUMINANCE_DIR, dtype=torch.float32).expand(g.shape[0], 3)
        g = g * col.view(-1, 3, 1, 1)
    elif channels != 1:
        raise InputError(f"channels must be 1 or 3, got {channels}")
    return g


def _check_rf(rf_xy: Any, size: int) -> np.ndarray:
    rf = np.asarray(rf_xy, dtype=np.float64)
    if rf.ndim != 2 or rf.shape[1] != 2 or rf.shape[0] < 1 or not np.isfinite(rf).all():
        raise InputError(f"rf_xy must be a finite (units, 2) array of (x, y) pixels, got shape {rf.shape}")
    return rf


def _check_norm(norm: float, size: int, channels: int) -> float:
    norm = float(norm)
    if not 0 < norm < 0.5 * size * math.sqrt(channels):
        raise InputError(f"norm must be > 0 and below {0.5 * size * math.sqrt(channels):.1f} (a full-contrast "
                         f"image at {size} px), got {norm}")
    return norm


class _Search:
    """The neurons and what the search holds per neuron: its RF, the best parameters and response so far."""

    def __init__(self, neurons: Any, rf: np.ndarray, norm: float, size: int, channels: int, sign: float,
                 batch: int) -> None:
        self.neurons, self.norm, self.size, self.channels, self.sign, self.batch = \
            neurons, norm, size, channels, sign, batch
        self.x = torch.tensor(rf[:, 0], dtype=torch.float32)
        self.y = torch.tensor(rf[:, 1], dtype=torch.float32)

    def images(self, unit: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Images for parameter rows ``p`` (N, 6: theta, log f, phase, log sigma, colour a, colour b)."""
        col = colour_direction(p[:, 4], p[:, 5]) if self.channels == 3 else None
        pat = gabor_patterns(self.size, self.channels, self.x[unit], self.y[unit], p[:, 0], p[:, 1].exp(),
                             p[:, 2], p[:, 3].exp(), col)
        return at_contrast(pat, self.norm)

    def score(self, unit: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Signed response (higher is better for the pole) of each row's own neuron, (N,)."""
        out = torch.empty(p.shape[0])
        for i in range(0, p.shape[0], self.batch):
            sl = slice(i, i + self.batch)
            r = _responses(self.neurons, self.images(unit[sl], p[sl]), self.batch)
            if r.shape[1] <= int(unit.max()):
                raise InputError(f"the scorer has {r.shape[1]} units but rf_xy gives {int(unit.max()) + 1}")
            out[sl] = r[torch.arange(r.shape[0]), unit[sl]]
        return self.sign * out


def _grid(size: int, channels: int) -> torch.Tensor:
    """Coarse grid of parameter rows (G, 6)."""
    thetas = torch.arange(GRID_THETAS) * math.pi / GRID_THETAS
    freqs = torch.tensor(np.geomspace(2.0 / size, 0.4, GRID_FREQS), dtype=torch.float32).log()
    phases = torch.arange(GRID_PHASES) * 2 * math.pi / GRID_PHASES
    sigmas = torch.tensor(np.geomspace(*SIGMA_RANGE, GRID_SIGMAS) * size, dtype=torch.float32).log()
    # colour (a, b): luminance, L-M, S-(L+M); the opposite colours are the carrier's phase + pi
    colours = torch.tensor([[0.0, 0.0]] + ([[math.pi / 2, 0.0], [math.pi / 2, math.pi / 2]] if channels == 3 else []))
    mesh = torch.cartesian_prod(thetas, freqs, phases, sigmas, torch.arange(colours.shape[0]).float())
    return torch.cat([mesh[:, :4], colours[mesh[:, 4].long()]], dim=1)


def rf_gabor(neurons: Any, rf_xy: np.ndarray, *, norm: float, size: int, channels: int = 1, seed: int = 0,
             evaluations: int = 2048, pole: str = "high",
             batch: int = 4096) -> tuple[torch.Tensor, np.ndarray, list[dict[str, Any]]]:
    """The best (``pole="high"``) or worst (``"low"``) RF-centred Gabor per neuron at L2 contrast ``norm``.

    Returns images (units, channels, size, size) in [0, 1], their noise-free responses (units,) and per
    neuron the parameters: ``x``, ``y`` (the RF centre), ``theta`` (direction of modulation, radians in
    [0, pi)), ``orientation_deg``, ``frequency`` (cycles/pixel), ``sigma`` (pixels), ``phase``, ``colour``
    (unit RGB vector, or None for grey) and ``response``. ``evaluations`` images per neuron: the grid
    (480 grey, 1,440 RGB) and the rest in refinement.
    """
    check_pole(pole)
    rf = _check_rf(rf_xy, size)
    norm = _check_norm(norm, size, channels)
    grid = _grid(size, channels)
    refine = int(evaluations) - grid.shape[0] - (COLOUR_SWEEP if channels == 3 else 0)
    if refine < 0:
        raise InputError(f"evaluations must be >= {int(evaluations) - refine} (the coarse grid), got {evaluations}")
    units = rf.shape[0]
    search = _Search(neurons, rf, norm, size, channels, 1.0 if pole == "high" else -1.0, batch)
    # coarse grid: every neuron sees every grid Gabor at its own RF
    unit = torch.arange(units).repeat_interleave(grid.shape[0])
    scores = search.score(unit, grid.repeat(units, 1)).view(units, -1)
    best_score, idx = scores.max(dim=1)
    best = grid[idx].clone()
    if channels == 3:   # a colour sweep at the best grid Gabor: the colour direction is a 2-D continuum
        sweep = _sphere(COLOUR_SWEEP)
        cand = best[:, None].repeat(1, COLOUR_SWEEP, 1)
        cand[:, :, 4:] = sweep
        s = search.score(torch.arange(units).repeat_interleave(COLOUR_SWEEP), cand.view(-1, 6)).view(units, -1)
        top, j = s.max(dim=1)
        better = top > best_score
        best[better], best_score = cand[better, j[better]], torch.where(better, top, best_score)
        refine -= COLOUR_SWEEP
    # local refinement: a (1 + lambda) evolution strategy per neuron, all neurons in one batch
    gen = torch.Generator().manual_seed(int(seed))
    step = torch.tensor([math.pi / GRID_THETAS / 2, math.log(0.4 * size / 2) / (GRID_FREQS - 1) / 2,
                         math.pi / GRID_PHASES, math.log(SIGMA_RANGE[1] / SIGMA_RANGE[0]) / (GRID_SIGMAS - 1) / 2,
                         math.pi / 8, math.pi / 8]).repeat(units, 1)
    if channels == 1:
        step[:, 4:] = 0.0
    lo = torch.tensor([-1e9, math.log(0.5 / size), -1e9, math.log(0.5), -1e9, -1e9])
    hi = torch.tensor([1e9, math.log(0.5), 1e9, math.log(0.5 * size), 1e9, 1e9])
    iterations = refine // POPULATION
    for it in range(iterations):   # the step anneals from half the grid spacing to 1/50 of it
        noise = torch.randn(units, POPULATION, 6, generator=gen) * (0.02 ** (it / max(1, iterations - 1)))
        cand = (best[:, None] + step[:, None] * noise).clamp(lo, hi)
        s = search.score(torch.arange(units).repeat_interleave(POPULATION), cand.view(-1, 6)).view(units, POPULATION)
        top, j = s.max(dim=1)
        better = top > best_score
        best[better] = cand[better, j[better]]
        best_score = torch.where(better, top, best_score)
    images = search.images(torch.arange(units), best)
    resp = _responses(neurons, images, batch)[torch.arange(units), torch.arange(units)].double().numpy()
    return images, resp, [_params(rf[u], best[u], channels, float(resp[u])) for u in range(units)]


def _params(xy: np.ndarray, p: torch.Tensor, channels: int, response: float) -> dict[str, Any]:
    """Readable parameters: theta in [0, pi) (the phase flips with the carrier), phase in (-pi, pi]."""
    theta, phase = float(p[0]), float(p[2])
    turns = math.floor(theta / math.pi)
    theta -= turns * math.pi
    if turns % 2:   # cos(-k u + phi) = cos(k u - phi)
        phase = -phase
    phase = math.pi - ((math.pi - phase) % (2 * math.pi))
    colour = colour_direction(p[4:5], p[5:6])[0].tolist() if channels == 3 else None
    return {"x": float(xy[0]), "y": float(xy[1]), "theta": theta, "orientation_deg": math.degrees(theta),
            "frequency": float(p[1].exp()), "sigma": float(p[3].exp()), "phase": phase,
            "colour": None if colour is None else [round(c, 5) for c in colour], "response": response}


def best_rf_gabor(neurons: Any, rf_xy: np.ndarray, *, norm: float, size: int, channels: int = 1, seed: int = 0,
                  evaluations: int = 2048, pole: str = "high",
                  batch: int = 4096) -> tuple[torch.Tensor, np.ndarray, list[dict[str, Any]]]:
    """Per neuron, the best parametric Gabor/grating centred on its RF at L2 contrast ``norm`` (the MEI
    control; ``pole="low"`` gives the worst, the LEI control). See :func:`rf_gabor`."""
    return rf_gabor(neurons, rf_xy, norm=norm, size=size, channels=channels, seed=seed, evaluations=evaluations,
                    pole=pole, batch=batch)


def worst_rf_gabor(neurons: Any, rf_xy: np.ndarray, *, norm: float, size: int, channels: int = 1, seed: int = 0,
                   evaluations: int = 2048, batch: int = 4096) -> tuple[torch.Tensor, np.ndarray, list[dict[str, Any]]]:
    """Per neuron, the RF-centred Gabor at contrast ``norm`` that drives it least (the LEI control)."""
    return rf_gabor(neurons, rf_xy, norm=norm, size=size, channels=channels, seed=seed, evaluations=evaluations,
                    pole="low", batch=batch)


def rf_window(size: int, rf_xy: np.ndarray, sigma: float) -> torch.Tensor:
    """Gaussian windows (units, 1, size, size) of ``sigma`` pixels, peak 1, centred on each RF (x, y)."""
    axis = torch.arange(size, dtype=torch.float32) + 0.5
    x = torch.tensor(np.asarray(rf_xy)[:, 0], dtype=torch.float32).view(-1, 1, 1)
    y = torch.tensor(np.asarray(rf_xy)[:, 1], dtype=torch.float32).view(-1, 1, 1)
    return torch.exp(-((axis.view(1, 1, -1) - x) ** 2 + (axis.view(1, -1, 1) - y) ** 2) / (2 * sigma ** 2))[:, None]


def rf_masked(stimuli: torch.Tensor, window: torch.Tensor, norm: float) -> torch.Tensor:
    """Stimuli (N, C, H, W) shown through one window (1, H, W): the window times the contrast about the
    window's weighted mean (so the patch sits on grey, mean 0.5 per channel), rescaled to ``norm``."""
    c = stimuli.float() - 0.5
    local = (c * window).sum(dim=(2, 3), keepdim=True) / window.sum().clamp_min(1e-12)
    return at_contrast(window * (c - local), norm)


def best_rf_masked_natural(neurons: Any, stimuli: torch.Tensor, rf_xy: np.ndarray, *, norm: float, sigma: float,
                           pole: str = "high", batch: int = 2048) -> tuple[torch.Tensor, np.ndarray]:
    """Per neuron, the natural patch that drives it most (``pole="low"``: least) when shown through a
    Gaussian window of ``sigma`` px on its RF, at L2 contrast ``norm``.

    Every stimulus is shown to every neuron at that neuron's RF (stimuli x units images, in batches);
    returns the images (units, C, H, W) and their noise-free responses (units,).
    """
    check_pole(pole)
    if stimuli.ndim != 4 or stimuli.shape[0] < 1 or stimuli.shape[-1] != stimuli.shape[-2]:
        raise InputError(f"stimuli must be (N, C, size, size) with N >= 1, got shape {tuple(stimuli.shape)}")
    if not sigma > 0:
        raise InputError(f"sigma must be > 0 pixels, got {sigma}")
    size, channels = int(stimuli.shape[-1]), int(stimuli.shape[1])
    rf = _check_rf(rf_xy, size)
    norm = _check_norm(norm, size, channels)
    windows = rf_window(size, rf, float(sigma))
    sign = 1.0 if pole == "high" else -1.0
    chunk = max(1, int(batch))
    best, best_idx = torch.full((rf.shape[0],), -math.inf), torch.zeros(rf.shape[0], dtype=torch.long)
    for u in range(rf.shape[0]):
        for i in range(0, stimuli.shape[0], chunk):
            r = sign * _responses(neurons, rf_masked(stimuli[i:i + chunk], windows[u], norm), chunk)
            if r.shape[1] <= u:
                raise InputError(f"the scorer has {r.shape[1]} units but rf_xy gives {rf.shape[0]}")
            top, j = r[:, u].max(dim=0)
            if top > best[u]:
                best[u], best_idx[u] = top, i + int(j)
    images = torch.cat([rf_masked(stimuli[int(best_idx[u])][None], windows[u], norm) for u in range(rf.shape[0])])
    resp = _responses(neurons, images, chunk)[torch.arange(rf.shape[0]), torch.arange(rf.shape[0])]
    return images, resp.double().numpy()


def grey_response(neurons: Any, size: int, channels: int) -> np.ndarray:
    """Every unit's noise-free response to the uniform grey screen (0.5), shape (units,)."""
    return _responses(neurons, torch.full((1, int(channels), int(size), int(size)), 0.5), 1)[0].double().numpy()

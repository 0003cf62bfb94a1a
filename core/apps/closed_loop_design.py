"""What the closed loop shows in each round, and how it records it.

* **Recording** (:func:`record_block`): a scorer that is a model (ground-truth neurons, a
  ``callable``, a ``path=`` module, a plugin) gives noise-free rates and a trial is a Poisson
  count ``Poisson(rate * window)``; the ``rig`` scorer is a real population, so every trial is one
  presentation through the rig and its response is used as it comes.
* **Round 0** (:func:`round0_stimuli`): natural patches (grey mean, Gaussian aperture, one L2
  contrast) plus an RF-mapping block (:mod:`actmax.core.apps.rf_mapping` where it is installed),
  and a per-neuron RF estimate (:func:`estimate_rf`) where each readout starts.
* **Rounds 1..K** (:func:`gabor_probes`, :func:`disagreement_probes`): RF-centred Gabors around
  the twin's best Gabor (random colour directions on RGB neurons), and the MEIs/LEIs moved
  along the direction in which the twin's ensemble members disagree most; the position block
  (:func:`position_params`, :func:`position_centres`): a neuron's best measured Gabor moved over a grid
  around its RF estimate, and where its phase-summed response peaks.

Every stimulus is a [0, 1] image at the neurons' size with the same L2 contrast ``norm``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from actmax.core.apps.closed_loop import natural_stimuli, noise_free_rates, simulate_trials


#: block codes of the recorded images (``block`` in every round's ``recorded``/``shown`` record)
NATURAL, MAPPING, TEST, GABOR, DISAGREE, CONTROL, SHOWN, TUNING, REFINE, SURROUND, POSITION, LENGTH = range(12)


def is_rig(neurons: Any) -> bool:
    """A real population (the ``rig`` scorer): its responses are measured, never simulated."""
    return hasattr(neurons, "write_block")


def at_contrast(c: torch.Tensor, norm: float) -> torch.Tensor:
    """Contrast patterns (B, C, H, W) about grey -> [0, 1] images with L2 contrast ``norm`` (clipping undone)."""
    c = c - c.mean(dim=(1, 2, 3), keepdim=True)
    for _ in range(5):
        c = c * (norm / c.flatten(1).norm(dim=1).clamp_min(1e-8)).view(-1, 1, 1, 1)
        c = (c + 0.5).clamp(0, 1) - 0.5
    return (0.5 + c).clamp(0, 1).float()


def record_block(neurons: Any, stimuli: torch.Tensor, trials: np.ndarray, *, window: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noise-free rates or NaN for a rig (images, units), counts (max trials, images, units), NaN-padded).

    Simulated neurons: Poisson counts of ``rate * window``; a rig: one presentation per trial
    (its responses stand for the counts, divided by nothing)."""
    trials = np.asarray(trials, dtype=int)
    if not is_rig(neurons):
        rates = noise_free_rates(neurons, stimuli)
        return rates, simulate_trials(rates, trials, window=window, seed=seed)
    out = np.full((int(trials.max()), stimuli.shape[0], neurons.units), np.nan)
    for t in range(out.shape[0]):
        rows = np.flatnonzero(trials > t)
        with torch.no_grad():
            out[t, rows] = neurons(stimuli[torch.as_tensor(rows)]).double().numpy()
    return np.full((stimuli.shape[0], neurons.units), np.nan), out


def round0_stimuli(cfg: Any, size: int, channels: int) -> tuple[torch.Tensor, np.ndarray]:
    """Round 0: natural training patches, the RF-mapping block, natural test patches (repeated).

    Returns the stimuli and a block code per image (0 natural, 1 mapping, 2 test)."""
    nat = natural_stimuli(cfg.n_natural + cfg.n_test, size, seed=cfg.seed, aperture=cfg.aperture, norm=cfg.norm,
                          channels=channels)
    mapping = mapping_block(cfg.n_mapping, size, channels, cfg.norm, cfg.seed)
    parts = [nat[:cfg.n_natural], mapping, nat[cfg.n_natural:]]
    codes = np.concatenate([np.zeros(cfg.n_natural, int), np.ones(len(mapping), int), np.full(cfg.n_test, 2)])
    return torch.cat(parts), codes


def mapping_block(n: int, size: int, channels: int, norm: float, seed: int) -> torch.Tensor:
    """The RF-mapping block of round 0 (:func:`actmax.core.apps.rf_mapping.mapping_stimuli`); empty
    where that module is not installed."""
    if n <= 0:
        return torch.zeros(0, channels, size, size)
    try:
        from actmax.core.apps.rf_mapping import mapping_stimuli
    except ImportError:
        return torch.zeros(0, channels, size, size)
    return mapping_stimuli(n, size, channels=channels, norm=norm, seed=seed).float()


def estimate_rf(stimuli: torch.Tensor, responses: np.ndarray, *,
                return_found: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-neuron RF centre (units, 2) as (x, y) in pixels (the convention of
    ``ModelNeurons.receptive_fields``): :func:`actmax.core.apps.rf_mapping.estimate_receptive_fields`
    where installed, else the twin's own start (:func:`scorers.twin.train.estimate_positions`). With
    ``return_found`` also whether each neuron's linear or excitatory map was significant (the fallback:
    all True, nothing to say)."""
    try:
        from actmax.core.apps.rf_mapping import estimate_receptive_fields
    except ImportError:
        from actmax.scorers.twin.train import estimate_positions
        y = torch.as_tensor(np.nan_to_num(responses), dtype=torch.float32)
        grid = estimate_positions(stimuli, y).double().numpy()
        size = stimuli.shape[-1]
        centres = (grid + 1) / 2 * (size - 1) + 0.5
        return (centres, np.ones(len(centres), bool)) if return_found else centres
    centres, found = estimate_receptive_fields(stimuli, responses, return_found=True)
    centres = np.asarray(centres, float)
    return (centres, np.asarray(found, bool)) if return_found else centres


def _gabor_bank(n: int, size: int, rf_xy: np.ndarray, rng: np.random.Generator, channels: int) -> list[dict]:
    """Random Gabor parameters centred on ``rf_xy`` (orientation, frequency, phase, size; colour on RGB)."""
    out = []
    for _ in range(n):
        p = {"x0": float(rf_xy[0] + rng.normal(0, 0.5)) - 0.5, "y0": float(rf_xy[1] + rng.normal(0, 0.5)) - 0.5,
             "theta": float(rng.uniform(0, math.pi)), "sigma": float(size * rng.uniform(0.05, 0.12)),
             "phase": float(rng.uniform(-math.pi, math.pi)), "aspect": 1.0}
        p["frequency"] = float(rng.uniform(0.4, 0.7) / p["sigma"])
        p["colour"] = _colour(rng) if channels == 3 else [1.0]
        out.append(p)
    return out


def _colour(rng: np.random.Generator) -> list[float]:
    """A unit colour direction: half the draws grey (luminance), half an opponent mix with some luminance."""
    if rng.random() < 0.5:
        return [1 / math.sqrt(3)] * 3
    v = rng.normal(size=3)
    return (v / np.linalg.norm(v)).tolist()


def render_params(params: list[dict], size: int, channels: int, norm: float) -> torch.Tensor:
    """Gabor parameter dicts -> images at the contrast ``norm`` (colour weights per channel)."""
    if not params:
        return torch.zeros((0, channels, size, size))
    from actmax.core.apps.gabor import gabor_image

    imgs = []
    for p in params:
        g = gabor_image(size, **{k: p[k] for k in ("x0", "y0", "sigma", "theta", "frequency", "phase", "aspect")})
        imgs.append(np.asarray(p["colour"])[:channels, None, None] * g[None])
    return at_contrast(torch.tensor(np.stack(imgs), dtype=torch.float32), norm)


def _jitter(p: dict, rng: np.random.Generator, size: int, channels: int) -> dict:
    q = dict(p)
    q["theta"] = p["theta"] + rng.normal(0, 0.2)
    q["phase"] = p["phase"] + rng.normal(0, 0.8)
    q["sigma"] = float(np.clip(p["sigma"] * math.exp(rng.normal(0, 0.15)), 0.03 * size, 0.2 * size))
    q["frequency"] = p["frequency"] * math.exp(rng.normal(0, 0.12))
    q["x0"], q["y0"] = p["x0"] + rng.normal(0, 0.7), p["y0"] + rng.normal(0, 0.7)
    if channels == 3:
        c = np.asarray(p["colour"]) + rng.normal(0, 0.3, size=3)
        q["colour"] = (c / np.linalg.norm(c)).tolist()
    return q


def gabor_probe_params(twin: Any, rf_xy: np.ndarray, *, per_neuron: int, size: int, channels: int, norm: float,
                       seed: int, bank: int = 48) -> tuple[list[dict], np.ndarray]:
    """Per neuron, ``per_neuron`` RF-centred Gabors around the twin's best of ``bank`` random ones
    (half of them the twin's best few, half jittered around the best); returns their parameters and owners."""
    rng = np.random.default_rng(seed)
    params, owner = [], []
    for u, xy in enumerate(np.asarray(rf_xy, float)):
        cand = _gabor_bank(bank, size, xy, rng, channels)
        imgs = render_params(cand, size, channels, norm)
        with torch.no_grad():
            pred = twin(imgs)[:, u].double().numpy()
        order = np.argsort(-pred)
        keep = [cand[i] for i in order[:max(1, per_neuron // 2)]]
        keep += [_jitter(cand[order[0]], rng, size, channels) for _ in range(per_neuron - len(keep))]
        params += keep
        owner += [u] * len(keep)
    return params, np.asarray(owner, int)


def gabor_probes(twin: Any, rf_xy: np.ndarray, *, per_neuron: int, size: int, channels: int, norm: float,
                 seed: int, bank: int = 48) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`gabor_probe_params`, rendered at the contrast ``norm``: images and the neuron each is for."""
    params, owner = gabor_probe_params(twin, rf_xy, per_neuron=per_neuron, size=size, channels=channels,
                                       norm=norm, seed=seed, bank=bank)
    return render_params(params, size, channels, norm), owner


#: the tuning block: orientations (evenly spaced) x carrier phases (0, 90 deg) per neuron; RGB adds the colour
#: directions luminance, L-M and S-(L+M) (``actmax.core.apps.controls``)
TUNING_THETAS, TUNING_PHASES = 6, 4
#: envelope sigma (fraction of the image side) and carrier cycles per sigma drawn per image: a V1-typical range
TUNING_SIGMA, TUNING_CYCLES = (0.065, 0.11), (0.4, 0.7)


def tuning_params(rf_xy: np.ndarray, *, size: int, channels: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """Per neuron, an orientation (x phase, x colour direction on RGB) tuning block of Gabors centred on its
    RF estimate, as a lab measures tuning after mapping the RF: TUNING_THETAS evenly spaced orientations
    (a seeded random offset per neuron) x TUNING_PHASES phases (x 3 colour directions in RGB), each with its
    own envelope and frequency drawn from a V1-typical range. Unlike :func:`gabor_probes` it does not ask the
    twin, so it reaches cells the twin has not learned (dual-feature, colour). Returns parameters and owners."""
    from actmax.core.apps.controls import LM_DIR, LUMINANCE_DIR, S_DIR

    rng = np.random.default_rng(seed)
    colours = [LUMINANCE_DIR, LM_DIR, S_DIR] if channels == 3 else [np.ones(1)]
    params, owner = [], []
    for u, xy in enumerate(np.asarray(rf_xy, float)):
        offset = rng.uniform(0, math.pi / TUNING_THETAS)
        for i in range(TUNING_THETAS):
            for j in range(TUNING_PHASES):
                for col in colours:
                    sigma = size * rng.uniform(*TUNING_SIGMA)
                    params.append({"x0": float(xy[0]) - 0.5, "y0": float(xy[1]) - 0.5, "sigma": float(sigma),
                                   "theta": offset + i * math.pi / TUNING_THETAS, "aspect": 1.0,
                                   "phase": j * 2 * math.pi / TUNING_PHASES + rng.uniform(-0.3, 0.3),
                                   "frequency": float(rng.uniform(*TUNING_CYCLES) / sigma),
                                   "colour": np.asarray(col, float).tolist()})
                    owner.append(u)
    return params, np.asarray(owner, int)


def tuning_probes(rf_xy: np.ndarray, *, size: int, channels: int, norm: float, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`tuning_params`, rendered at the contrast ``norm``: images and the neuron each is for."""
    params, owner = tuning_params(rf_xy, size=size, channels=channels, seed=seed)
    return render_params(params, size, channels, norm), owner


#: the columns of a stored Gabor parameter row (:func:`encode_params`); colour pads with NaN on grey images
PARAM_KEYS = ("x0", "y0", "sigma", "theta", "frequency", "phase", "aspect")


def encode_params(params: list[dict], n_rows: int | None = None) -> np.ndarray:
    """Gabor parameter dicts -> a float array (n, 10): PARAM_KEYS then up to 3 colour weights (NaN-padded).
    ``n_rows`` > len(params) appends NaN rows (images that are not Gabors)."""
    out = np.full((max(len(params), n_rows or 0), len(PARAM_KEYS) + 3), np.nan)
    for i, p in enumerate(params):
        out[i, :len(PARAM_KEYS)] = [p[k] for k in PARAM_KEYS]
        out[i, len(PARAM_KEYS):len(PARAM_KEYS) + len(p["colour"])] = p["colour"]
    return out


def decode_params(row: np.ndarray) -> dict:
    """One row of :func:`encode_params` -> a Gabor parameter dict."""
    p = {k: float(v) for k, v in zip(PARAM_KEYS, row)}
    colour = np.asarray(row[len(PARAM_KEYS):], float)
    p["colour"] = colour[np.isfinite(colour)].tolist()
    return p


def measured_gabors(records: list[dict[str, torch.Tensor]], units: int) -> tuple[np.ndarray, np.ndarray]:
    """Every Gabor in ``records`` (recorded blocks with ``gabor_params``; others are skipped): its parameter
    rows (:func:`encode_params`) and trial-mean responses (images, units)."""
    params, rates = [], []
    for rec in records:
        if "gabor_params" not in rec:
            continue
        params.append(rec["gabor_params"].double().numpy())
        with np.errstate(all="ignore"):
            rates.append(np.nanmean(rec["counts"].double().numpy(), 0))
    if not params:
        return np.zeros((0, len(PARAM_KEYS) + 3)), np.zeros((0, units))
    return np.concatenate(params), np.concatenate(rates)


def refine_params(params: np.ndarray, responses: np.ndarray, *, per_neuron: int, size: int, channels: int,
                  seed: int) -> tuple[list[dict], np.ndarray]:
    """Per neuron, ``per_neuron`` jittered copies of the Gabor that drove it most *as measured* so far
    (any Gabor image shown to the population, whichever neuron it was made for): an adaptive search on the
    neuron itself, as labs refine tuning online, so that the data reach the top of the cell's tuning even
    where the twin has not learned it. ``params`` (images, 10) as :func:`encode_params` (NaN rows: not a
    Gabor), ``responses`` (images, units) trial-mean rates. Returns parameters and owners (empty where no
    Gabor was shown yet)."""
    rng = np.random.default_rng(seed)
    out, owner = [], []
    if per_neuron < 1:
        return out, np.zeros(0, int)
    for u in range(responses.shape[1]):
        best = best_measured_gabor(params, responses, u, channels)
        if best is None:
            continue
        out += [_jitter(best, rng, size, channels) for _ in range(per_neuron)]
        owner += [u] * per_neuron
    return out, np.asarray(owner, int)


#: the length block's envelope aspects: the Gabor's extent along its bars is sigma / aspect (the tuning
#: block's Gabors are round, aspect 1), so 0.25 is a bar four times as long as it is wide
LENGTH_ASPECTS = (0.7, 0.5, 0.35, 0.25)


def length_params(params: np.ndarray, responses: np.ndarray, *, channels: int) -> tuple[list[dict], np.ndarray]:
    """The length block: per neuron, the Gabor that drove it most *as measured* so far, lengthened along its
    bars (LENGTH_ASPECTS) in two carrier phases 90 deg apart, as labs measure length tuning to find
    end-stopping (Hubel & Wiesel 1965): a cell suppressed by its end zones answers long bars weakly, which
    round Gabors and natural patches show a twin too rarely near the top of the cell's range. ``params``
    and ``responses`` as in :func:`refine_params`. Returns parameters and owners."""
    out, owner = [], []
    for u in range(responses.shape[1]):
        best = best_measured_gabor(params, responses, u, channels)
        if best is None:
            continue
        for aspect in LENGTH_ASPECTS:
            for dphase in (0.0, math.pi / 2):
                out.append({**best, "aspect": best["aspect"] * aspect, "phase": best["phase"] + dphase})
                owner.append(u)
    return out, np.asarray(owner, int)


def disagreement_probes(ensemble: Any, images: torch.Tensor, units: np.ndarray, *, step: float,
                        norm: float) -> torch.Tensor:
    """Each image moved by ``+/- step`` (L2, in contrast units) along the direction in which the twin's
    ensemble members disagree most about its unit's response (the members' input gradients about their
    mean; with one member, the gradient itself). Returns 2 probes per image."""
    members = list(ensemble.members)
    x = images.clone().requires_grad_(True)
    grads = []
    for m in members:
        r = m(x)
        (g,) = torch.autograd.grad(r.gather(1, torch.as_tensor(units)[:, None]).sum(), x)
        grads.append(g)
    g = torch.stack(grads)
    d = g[0] - g.mean(0) if len(members) > 1 else g[0]
    if len(members) > 2:            # the member farthest from the mean, per image
        dev = (g - g.mean(0)).flatten(2).norm(dim=2)
        d = (g - g.mean(0))[dev.argmax(0), torch.arange(g.shape[1])]
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    c = (images - 0.5).detach()
    out = torch.cat([c + step * d, c - step * d]).detach()
    return at_contrast(out, norm)


#: the position block's grid step, a fraction of the image side (1.6 px at 32 px: RF sigmas are 2-3 px)
POSITION_STEP = 0.05
#: a position profile counts when its peak stands this many standard errors above its median
POSITION_SIGNIFICANT = 3.0


def best_measured_gabor(params: np.ndarray, responses: np.ndarray, unit: int, channels: int) -> dict | None:
    """The Gabor (parameter dict) that drove ``unit`` most as measured, among the rows of ``params``
    (:func:`encode_params`; NaN rows are not Gabors) with trial-mean ``responses`` (images, units)."""
    rows = np.flatnonzero(np.isfinite(params[:, 0]) & np.isfinite(responses[:, unit]))
    if not rows.size:
        return None
    best = decode_params(params[rows[int(np.argmax(responses[rows, unit]))]])
    if len(best["colour"]) != channels:
        best["colour"] = best["colour"][:channels] if len(best["colour"]) > channels else [1.0] * channels
    return best


def position_params(best: dict[int, dict], rf_xy: np.ndarray, *, grid: int, size: int) -> tuple[list[dict], np.ndarray]:
    """The position block: per neuron in ``best`` (unit -> its best measured Gabor), that Gabor moved over a
    ``grid`` x ``grid`` square of positions POSITION_STEP x size apart centred on its RF estimate, each in
    two carrier phases 90 deg apart (their summed response is phase-invariant: an energy profile, which
    locates a cell whose excitation is quadratic, as a dual-feature cell's). Returns parameters and owners
    (ordered: unit, position, phase)."""
    offsets = (np.arange(grid) - (grid - 1) / 2) * POSITION_STEP * size
    params, owner = [], []
    for u, g in best.items():
        for dy in offsets:
            for dx in offsets:
                for dphase in (0.0, math.pi / 2):
                    params.append({**g, "x0": float(rf_xy[u][0] + dx) - 0.5, "y0": float(rf_xy[u][1] + dy) - 0.5,
                                   "phase": g["phase"] + dphase})
                    owner.append(u)
    return params, np.asarray(owner, int)


def position_centres(params: np.ndarray, counts: np.ndarray, owner: np.ndarray, units: int) -> np.ndarray:
    """Per neuron, the RF centre (x, y) its position block points to (:func:`position_params`, recorded as
    ``params`` rows, ``counts`` (trials, images, units) and ``owner``): the centroid of the positions whose
    phase-summed trial-mean response is above the profile's median, weighted by the excess; NaN where the
    neuron has no block or its peak is within POSITION_SIGNIFICANT standard errors of the median."""
    out = np.full((units, 2), np.nan)
    with np.errstate(all="ignore"):
        mean = np.nanmean(counts, 0)
        n = np.isfinite(counts).sum(0)
        var = np.nanvar(counts, 0, ddof=1) / np.maximum(n, 1)
    for u in np.unique(owner):
        idx = np.flatnonzero(owner == u)
        if idx.size < 4 or idx.size % 2:
            continue
        pairs = idx.reshape(-1, 2)                              # (positions, 2 phases)
        e = mean[pairs, u].sum(1)
        se = np.sqrt(var[pairs, u].sum(1))
        excess = np.clip(e - np.median(e), 0, None)
        if not np.isfinite(e).all() or excess.max() <= POSITION_SIGNIFICANT * max(float(np.nanmedian(se)), 1e-12):
            continue
        xy = params[pairs[:, 0], :2] + 0.5                      # x0, y0 -> pixel centres
        out[u] = (excess[:, None] * xy).sum(0) / excess.sum()
    return out


#: the surround block's hole: radius and edge width as fractions of the image size (RFs span 0.07-0.1)
SURROUND_HOLE = (0.2, 0.04)


def surround_probes(rf_xy: np.ndarray, *, per_neuron: int, size: int, channels: int, norm: float,
                    aperture: float | None, seed: int) -> torch.Tensor:
    """Per neuron, ``per_neuron`` fresh natural patches with a hole at its RF estimate: contrast only in
    the surround, at contrast ``norm``. The apertured patches always cover the RF, so without these a
    twin never learns that contrast beside the RF leaves the cell at its floor (complex-cell LEIs)."""
    from actmax.core.apps.closed_loop import natural_stimuli
    units = len(rf_xy)
    if per_neuron <= 0 or units == 0:
        return torch.zeros(0, channels, size, size)
    nat = natural_stimuli(per_neuron * units, size, seed=seed, aperture=aperture, norm=norm, channels=channels)
    radius, edge = SURROUND_HOLE[0] * size, SURROUND_HOLE[1] * size
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    centres = torch.as_tensor(np.nan_to_num(np.repeat(np.asarray(rf_xy, float), per_neuron, 0), nan=size / 2))
    d = torch.hypot(xs[None] - centres[:, 0, None, None], ys[None] - centres[:, 1, None, None])
    hole = torch.sigmoid((d - radius) / edge).float()[:, None]
    return at_contrast((nat - 0.5) * hole, norm)


def controls(neurons: Any, rf_xy: np.ndarray, natural: torch.Tensor, natural_rates: np.ndarray, *,
             norm: float, aperture: float | None, seed: int = 0) -> dict[str, Any]:
    """Per-neuron controls: best RF-centred Gabor at the same contrast and best RF-masked natural patch
    (:mod:`actmax.core.apps.controls` where installed; NaN otherwise), best natural patch, grey screen."""
    n_units, size = neurons.units, int(getattr(neurons, "size", None) or natural.shape[-1])
    channels = natural.shape[1]
    grey = noise_free_rates(neurons, torch.full((1, channels, size, size), 0.5))[0]
    out: dict[str, Any] = {"grey": grey, "best_natural": np.nanmax(natural_rates, 0),
                           "best_gabor": np.full(n_units, np.nan), "best_masked_natural": np.full(n_units, np.nan),
                           "gabor_params": [None] * n_units}
    try:
        from actmax.core.apps.controls import best_rf_gabor, best_rf_masked_natural
    except ImportError:
        return out
    _, gabor_resp, params = best_rf_gabor(neurons, rf_xy, norm=norm, size=size, channels=channels, seed=seed)
    _, masked_resp = best_rf_masked_natural(neurons, natural, rf_xy, norm=norm,   # a window a bit wider than
                                            sigma=0.15 * size)                       # the RFs (0.07-0.1 x size)
    out["best_gabor"] = np.asarray(gabor_resp, float).reshape(-1)[:n_units]
    out["best_masked_natural"] = np.asarray(masked_resp, float).reshape(-1)[:n_units]
    out["gabor_params"] = list(params) if params is not None else [None] * n_units
    return out

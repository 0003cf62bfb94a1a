"""MEI vs Gabor: best-fitting Gabor, masked luminance and contrast, rotational symmetry (ours and the
seed notebook's spectral index), radially averaged power spectrum. Coordinates: ``x`` is the column and
``y`` the row index of a pixel, pixel centres at integers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch

from actmax.core.errors import InputError

# ============================================================================================
# MEI vs Gabor
# ============================================================================================
def _grey(image: Any) -> np.ndarray:
    """(H, W), (1, H, W), (3, H, W), (H, W, 3) array or tensor -> float64 (H, W) luminance."""
    x = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 3:
        if x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
            x = x if x.shape[0] == 1 else np.tensordot(np.array([0.299, 0.587, 0.114]), x, axes=(0, 0))[None]
            x = x[0]
        elif x.shape[-1] in (1, 3):
            x = x[..., 0] if x.shape[-1] == 1 else x @ np.array([0.299, 0.587, 0.114])
        else:
            raise InputError(f"cannot read an image of shape {x.shape}")
    if x.ndim != 2:
        raise InputError(f"expected one image (H, W), (C, H, W) or (H, W, C), got shape {x.shape}")
    return x


GABOR_PARAMS = ("x0", "y0", "sigma", "aspect", "theta", "frequency", "phase", "amplitude", "offset")


def gabor_image(shape: tuple[int, int] | int, *, x0: float, y0: float, sigma: float, theta: float,
                frequency: float, phase: float = 0.0, aspect: float = 1.0, amplitude: float = 1.0,
                offset: float = 0.0) -> np.ndarray:
    """``offset + amplitude * exp(-(u^2 + (aspect v)^2) / 2 sigma^2) * cos(2 pi frequency u + phase)``.

    ``u`` runs along ``theta`` (the carrier's direction of modulation) from the centre
    ``(x0, y0)``; ``frequency`` in cycles per pixel, lengths in pixels.
    """
    h, w = (shape, shape) if isinstance(shape, int) else shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = xx - x0, yy - y0
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    env = np.exp(-(u ** 2 + (aspect * v) ** 2) / (2.0 * sigma ** 2))
    return offset + amplitude * env * np.cos(2 * math.pi * frequency * u + phase)


@dataclass
class GaborFit:
    """The best-fitting Gabor of an image (least squares), its image and goodness of fit."""

    params: dict[str, float]
    image: np.ndarray
    r2: float            # fraction of the image's variance the Gabor explains
    correlation: float   # Pearson r between image and Gabor

    def envelope(self, shape: tuple[int, int], *, n_sigma: float = 2.0) -> np.ndarray:
        """Boolean mask of the fitted envelope out to ``n_sigma`` (an ellipse)."""
        p = self.params
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        dx, dy = xx - p["x0"], yy - p["y0"]
        u = dx * math.cos(p["theta"]) + dy * math.sin(p["theta"])
        v = -dx * math.sin(p["theta"]) + dy * math.cos(p["theta"])
        return (u ** 2 + (p["aspect"] * v) ** 2) <= (n_sigma * p["sigma"]) ** 2


def _background(img: np.ndarray) -> float:
    """The median of the outermost ring of pixels (what an MEI's background is)."""
    ring = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    return float(np.median(ring))


def fit_gabor(image: Any, *, starts: int = 4) -> GaborFit:
    """Least-squares fit of a 2-D Gabor (``GABOR_PARAMS``) to a grey image (``scipy.optimize.least_squares``).

    Initial values come from the image itself: centre and size from the centroid and spread of
    the contrast energy, orientation and frequency from the peak of the power spectrum, with
    ``starts`` carrier phases; the best of these starts wins. Angles are wrapped to
    ``theta`` in [0, pi) and ``phase`` in (-pi, pi] (with the matching sign of the carrier).
    """
    from scipy.optimize import least_squares

    img = _grey(image)
    h, w = img.shape
    bg = _background(img)
    c = img - bg
    energy = c ** 2
    tot = energy.sum()
    if tot <= 0:
        raise InputError("fit_gabor: the image is uniform (no contrast to fit)")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x0, y0 = float((energy * xx).sum() / tot), float((energy * yy).sum() / tot)
    spread = math.sqrt(float((energy * ((xx - x0) ** 2 + (yy - y0) ** 2)).sum() / tot) / 2.0)
    sigma0 = max(1.0, spread * math.sqrt(2.0))  # energy env^2 has sigma/sqrt(2)
    spec = np.abs(np.fft.fft2(c)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    spec[0, 0] = 0.0
    ky, kx = np.unravel_index(int(np.argmax(spec)), spec.shape)
    f0 = max(float(math.hypot(fx[ky, kx], fy[ky, kx])), 1.0 / max(h, w))
    th0 = float(math.atan2(fy[ky, kx], fx[ky, kx])) % math.pi
    amp0 = float(np.abs(c).max())

    def residual(p: np.ndarray) -> np.ndarray:
        model = gabor_image((h, w), **dict(zip(GABOR_PARAMS, p)))
        return (model - img).ravel()

    lower = [-0.5 * w, -0.5 * h, 0.3, 0.2, -4 * math.pi, 0.0, -4 * math.pi, -2.0, -1.0]
    upper = [1.5 * w, 1.5 * h, 2.0 * max(h, w), 5.0, 4 * math.pi, 0.5, 4 * math.pi, 2.0, 2.0]
    best = None
    for k in range(max(1, starts)):
        p0 = np.array([x0, y0, sigma0, 1.0, th0, f0, -math.pi + 2 * math.pi * k / max(1, starts), amp0, bg])
        p0 = np.clip(p0, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
        try:
            res = least_squares(residual, p0, bounds=(lower, upper), x_scale="jac", max_nfev=3000, tr_solver="lsmr")
        except ValueError:
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise InputError("fit_gabor: the least-squares fit failed from every start")
    params = dict(zip(GABOR_PARAMS, (float(v) for v in best.x)))
    params = _canonical_gabor(params)
    fitted = gabor_image((h, w), **params)
    sse = float(((img - fitted) ** 2).sum())
    sst = float(((img - img.mean()) ** 2).sum())
    a, b = img - img.mean(), fitted - fitted.mean()
    denom = float(np.sqrt((a ** 2).sum() * (b ** 2).sum()))
    corr = float((a * b).sum() / denom) if denom > 0 else float("nan")
    return GaborFit(params, fitted, 1.0 - sse / sst if sst > 0 else float("nan"), corr)


def _canonical_gabor(p: dict[str, float]) -> dict[str, float]:
    """Same image, canonical angles: amplitude >= 0, theta in [0, pi), phase in (-pi, pi]."""
    p = dict(p)
    if p["amplitude"] < 0:
        p["amplitude"], p["phase"] = -p["amplitude"], p["phase"] + math.pi
    turns = math.floor(p["theta"] / math.pi)
    p["theta"] -= turns * math.pi
    if turns % 2:  # rotating the carrier by pi flips u -> -u: cos(-k u + phi) = cos(k u - phi)
        p["phase"] = -p["phase"]
    p["phase"] = math.pi - ((math.pi - p["phase"]) % (2 * math.pi))
    return p


def estimate_mask(image: Any, *, z: float = 1.5, smooth: float = 1.0) -> np.ndarray:
    """A soft mask (H, W) in [0, 1] of where an MEI has contrast.

    The DualNeuron recipe: z-score the absolute contrast, threshold at ``z``, close, keep the
    largest connected component, take its convex hull, blur with a Gaussian of ``smooth`` px.
    """
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    img = _grey(image)
    c = np.abs(img - _background(img))
    sd = c.std()
    if sd == 0:
        return np.zeros_like(img)
    zmap = (c - c.mean()) / sd
    m = ndimage.binary_closing(zmap > z, structure=np.ones((3, 3)), iterations=2)
    labels, n = ndimage.label(m)
    if n == 0:
        return np.zeros_like(img)
    sizes = ndimage.sum(m, labels, index=np.arange(1, n + 1))
    largest = labels == (1 + int(np.argmax(sizes)))
    hull = convex_hull_image(largest).astype(np.float64)
    return np.clip(ndimage.gaussian_filter(hull, smooth), 0.0, 1.0) if smooth > 0 else hull


def masked_luminance_contrast(image: Any, mask: Any = None) -> dict[str, float]:
    """Mean luminance and RMS contrast of an image inside a (soft) mask.

    ``luminance = sum(w I) / sum(w)``, ``contrast = sqrt(sum(w (I - luminance)^2) / sum(w))``
    (RMS contrast, in image units), ``relative_contrast = contrast / luminance``.
    Default mask: :func:`estimate_mask`.
    """
    img = _grey(image)
    w = estimate_mask(img) if mask is None else np.asarray(mask, dtype=np.float64)
    if w.shape != img.shape:
        raise InputError(f"mask shape {w.shape} does not match the image {img.shape}")
    if (w < 0).any() or w.sum() <= 0:
        raise InputError("mask must be >= 0 and not all zero")
    lum = float((w * img).sum() / w.sum())
    con = float(np.sqrt((w * (img - lum) ** 2).sum() / w.sum()))
    return {"luminance": lum, "contrast": con, "relative_contrast": con / lum if lum > 0 else float("nan"),
            "mask_area": float(w.sum())}


def _rotate(img: np.ndarray, angle: float, center: tuple[float, float]) -> np.ndarray:
    """``img`` rotated by ``angle`` (radians, counter-clockwise on screen) about ``center`` (x, y); bilinear."""
    from scipy.ndimage import map_coordinates

    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = center
    ca, sa = math.cos(angle), math.sin(angle)
    # output pixel p takes the input at R(-angle) (p - c) + c
    sx = ca * (xx - cx) + sa * (yy - cy) + cx
    sy = -sa * (xx - cx) + ca * (yy - cy) + cy
    return map_coordinates(img, [sy, sx], order=1, mode="constant", cval=0.0)


def rotational_symmetry(image: Any, *, folds: Iterable[int] = range(2, 9), center: Any = "centroid",
                        radius: float | None = None, background: float | None = None) -> dict[int, float]:
    """n-fold rotational symmetry index of an image, for each n in ``folds``.

    ``S_n = mean over k = 1..n-1 of cos(c, R(2 pi k / n) c)``: the cosine similarity, inside a
    disk of ``radius`` around ``center``, between the contrast image ``c = image - background``
    and its rotations by multiples of 360/n degrees. 1 = perfectly n-fold symmetric; a centred
    even (cosine) Gabor has S_2 = 1, an odd (sine) one S_2 = -1. ``background`` defaults to the
    median of the border pixels; ``center`` is ``"centroid"`` (of the contrast energy),
    ``"image"`` (the image centre) or (x, y); ``radius`` defaults to the largest disk inside
    the image.
    """
    img = _grey(image)
    h, w = img.shape
    c = img - (_background(img) if background is None else float(background))
    if isinstance(center, str):
        if center == "image":
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        elif center == "centroid":
            e = c ** 2
            if e.sum() <= 0:
                raise InputError("rotational_symmetry: the image has no contrast")
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
            cx, cy = float((e * xx).sum() / e.sum()), float((e * yy).sum() / e.sum())
        else:
            raise InputError(f"center must be 'centroid', 'image' or (x, y), got {center!r}")
    else:
        cx, cy = (float(v) for v in center)
    r = float(radius) if radius is not None else min(cx, cy, w - 1 - cx, h - 1 - cy)
    if r <= 1:
        raise InputError(f"rotational_symmetry: the disk around ({cx:.1f}, {cy:.1f}) is too small (radius {r:.2f})")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    base = c[disk]
    norm0 = float(np.sqrt((base ** 2).sum()))
    if norm0 == 0:
        raise InputError("rotational_symmetry: no contrast inside the disk")
    out = {}
    for n in folds:
        n = int(n)
        if n < 2:
            raise InputError(f"folds must be >= 2, got {n}")
        sims = []
        for k in range(1, n):
            rot = _rotate(c, 2 * math.pi * k / n, (cx, cy))[disk]
            nr = float(np.sqrt((rot ** 2).sum()))
            sims.append(float((base * rot).sum()) / (norm0 * nr) if nr > 0 else 0.0)
        out[n] = float(np.mean(sims))
    return out


def spectral_symmetry_index(image: Any, n: int, *, remove_mean: bool = False, bin_size: float = math.pi / 16) -> float:
    """The seed MEI notebook's n-fold symmetry index (n = 1 "folio", n = 2 "quarto"), from the power spectrum.

    **This is the notebook's definition, not ours** (:func:`rotational_symmetry` correlates the
    image with its own rotations about the fitted centre in pixel space, and can be negative).
    Here: ``P = |fftshift(fft2(image))|^2``; every frequency pixel gets the angle
    ``theta = atan2(y - cy, x - cx)`` about ``(cx, cy) = (W // 2, H // 2)`` (the DC term after
    ``fftshift``) and the bin ``floor(theta / bin_size)`` (bins of pi/16, rounded down, so a
    full turn gives 32 bins plus one more for the pixels at exactly theta = pi); ``P_theta`` is
    the mean power per bin, each bin at angle ``index * bin_size`` counted from its lowest bin,
    and ``SI_n = |sum_theta P_theta exp(i 2 n theta)| / sum_theta P_theta`` (the 2 for the
    point symmetry of a real image's power spectrum). 0 = no n-fold symmetry, 1 = all power at
    angles n-fold symmetric; a single grating (all power on one line through the origin) gives 1
    for every n, an isotropic spectrum ~0 (1/33 for a flat one: the extra bin at pi). Bins are
    mean power over pixels at any radius, so a spectrum concentrated near DC (a smooth blob) is
    read from the few lattice pixels next to it and is not ~0 even if isotropic (a mean-removed
    Gaussian blob of sigma 3 px on 32 x 32: SI_1 0.12, SI_2 0.38).

    ``remove_mean=False`` is the notebook exactly: the DC term stays in, so an image with a
    non-zero mean has its largest power in the theta = 0 bin and SI_n -> 1 whatever its
    structure (the notebook's Gabor and MEI both gave ~0.99 for n = 1 and 2). ``remove_mean=True``
    is the mean-removed variant: the image mean is subtracted before the FFT (DC power 0), so the
    index measures the orientation structure only. Bins without pixels (tiny images) are
    skipped (the notebook would give NaN). Grey images; colour is converted to luminance.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InputError(f"n must be an integer >= 1, got {n!r}")
    if not bin_size > 0:
        raise InputError(f"bin_size must be > 0, got {bin_size!r}")
    img = _grey(image)
    if remove_mean:
        img = img - img.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2
    h, w = power.shape
    yy, xx = np.indices((h, w))
    theta = np.arctan2(yy - h // 2, xx - w // 2)
    bins = np.floor(theta / bin_size).astype(np.int64)
    bins -= bins.min()
    sums = np.bincount(bins.ravel(), weights=power.ravel())
    counts = np.bincount(bins.ravel())
    keep = counts > 0
    p_theta = sums[keep] / counts[keep]
    angles = np.arange(counts.size)[keep] * bin_size
    total = p_theta.sum()
    if total <= 0:
        raise InputError("spectral_symmetry_index: the image has no power (constant image with remove_mean=True?)")
    return float(np.abs((p_theta * np.exp(1j * 2 * int(n) * angles)).sum()) / total)


def spectral_symmetry_indices(image: Any, folds: Iterable[int] = (1, 2)) -> dict[str, float]:
    """The notebook's :func:`spectral_symmetry_index` for each n in ``folds``, as it is (``spectral_si_<n>``)
    and mean-removed (``spectral_si_<n>_demeaned``); NaN where undefined (no power)."""
    out: dict[str, float] = {}
    for remove_mean, suffix in ((False, ""), (True, "_demeaned")):
        for n in folds:
            try:
                out[f"spectral_si_{int(n)}{suffix}"] = spectral_symmetry_index(image, int(n), remove_mean=remove_mean)
            except ValueError:
                out[f"spectral_si_{int(n)}{suffix}"] = float("nan")
    return out


@dataclass
class SpectrumFit:
    """Radially averaged power spectrum and its summary."""

    frequency: np.ndarray   # bin centres, cycles per pixel
    power: np.ndarray       # mean |FFT|^2 / (H W) per ring
    peak_frequency: float
    slope: float            # of log power vs log frequency (-2 for natural 1/f amplitude)


def radial_power_spectrum(image: Any, *, window: bool = False, fit_range: tuple[float, float] = (0.02, 0.45)) -> SpectrumFit:
    """Power of the (mean-removed) image averaged over rings of equal spatial frequency.

    Rings are 1/max(H, W) cycles/pixel wide, up to 0.5 (Nyquist). ``window`` applies a Hann
    window first (for images that do not fade to a uniform border). ``slope`` is the
    least-squares slope of log power against log frequency inside ``fit_range``.
    """
    img = _grey(image)
    h, w = img.shape
    c = img - img.mean()
    if window:
        c = c * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(c)) ** 2 / (h * w)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.hypot(fx, fy)
    step = 1.0 / max(h, w)
    ring = np.floor(radius / step + 0.5).astype(int)
    n_rings = int(np.floor(0.5 / step + 0.5)) + 1
    keep = ring < n_rings
    sums = np.bincount(ring[keep], weights=power[keep], minlength=n_rings)
    counts = np.bincount(ring[keep], minlength=n_rings)
    freqs = np.arange(n_rings) * step
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_power = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    valid = (freqs > 0) & np.isfinite(mean_power)
    peak = float(freqs[valid][int(np.nanargmax(mean_power[valid]))]) if valid.any() else float("nan")
    sel = valid & (freqs >= fit_range[0]) & (freqs <= fit_range[1]) & (mean_power > 0)
    slope = float(np.polyfit(np.log(freqs[sel]), np.log(mean_power[sel]), 1)[0]) if sel.sum() >= 2 else float("nan")
    return SpectrumFit(freqs, mean_power, peak, slope)


def compare_to_gabor(image: Any, *, folds: Iterable[int] = range(2, 9), mask: Any = None) -> dict[str, Any]:
    """The MEI-vs-Gabor metrics of one image in one flat dict.

    ``gabor_*`` (best-fitting Gabor parameters), ``gabor_r2``/``gabor_corr`` (how Gabor-like),
    ``luminance``/``contrast`` inside the mask (default: the fitted envelope to 2 sigma),
    ``symmetry_<n>`` (ours: :func:`rotational_symmetry` about the fitted centre),
    ``spectral_si_1``/``spectral_si_2`` (the seed notebook's folio/quarto index,
    :func:`spectral_symmetry_index`, DC kept as there) and ``spectral_si_<n>_demeaned`` (the same
    with the mean removed before the FFT), and
    ``spectrum_peak``/``spectrum_slope`` (:func:`radial_power_spectrum`).
    """
    img = _grey(image)
    fit = fit_gabor(img)
    out: dict[str, Any] = {f"gabor_{k}": v for k, v in fit.params.items()}
    out.update(gabor_r2=fit.r2, gabor_corr=fit.correlation)
    m = fit.envelope(img.shape) if mask is None else mask
    if np.asarray(m, dtype=np.float64).sum() <= 0:
        m = np.ones_like(img)
    out.update(masked_luminance_contrast(img, m))
    h, w = img.shape
    cx = min(max(fit.params["x0"], 2.0), w - 3.0)
    cy = min(max(fit.params["y0"], 2.0), h - 3.0)
    try:
        sym = rotational_symmetry(img, folds=folds, center=(cx, cy))
    except ValueError:
        sym = {int(n): float("nan") for n in folds}
    out.update({f"symmetry_{n}": v for n, v in sym.items()})
    out.update(spectral_symmetry_indices(img))
    spec = radial_power_spectrum(img)
    out.update(spectrum_peak=spec.peak_frequency, spectrum_slope=spec.slope)
    return out

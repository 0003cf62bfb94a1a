"""Analyses of screens, evolutions and MEIs.

* **Selectivity**: Gini coefficient (any input: sorted here, an explicit policy for negative
  values), activation curves (sorted responses) with adaptive sampling of the steep parts.
* **Bidirectionality** (the DualNeuron idea, Franke/Willeke et al.'s "dual neurons": many visual
  neurons sit at an elevated baseline and are driven *below* it by a least-exciting input as well
  as above it by the most exciting one): excitation ``E = max - b``, suppression ``S = b - min``
  around the baseline ``b`` (the response to a uniform grey image by default).
* **Trajectories** of closed-loop evolution (Ponce lab figure statistics): normalised trajectories,
  the exponential convergence time constant (``scipy.optimize.curve_fit``) and the success test
  (t-test of the two blocks around the peak against the first two blocks).
* **Image similarity**: LPIPS (the ``lpips`` package, weights through :mod:`actmax.core.weights`) and the
  cosine between feature vectors of any scorer / CNN.
* **MEI vs Gabor**: best-fitting Gabor by least squares, masked luminance and contrast, n-fold
  rotational symmetry index (ours: correlation with the rotated image, :func:`rotational_symmetry`)
  and the seed notebook's spectral folio/quarto index (angular distribution of the power
  spectrum, :func:`spectral_symmetry_index`, as there and mean-removed), radially averaged power
  spectrum.

Coordinates: ``x`` is the column and ``y`` the row index of a pixel, pixel centres at integers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

__all__ = [
    "gini", "gini_binned", "activation_curve", "adaptive_sample", "baseline_response", "bidirectional_index",
    "BidirectionalIndex", "normalise_trajectory", "ExponentialFit", "fit_time_constant", "SuccessTest",
    "evolution_success", "analyze_trajectories", "LPIPSDistance", "lpips_distance", "feature_cosine",
    "gabor_image", "GaborFit", "fit_gabor", "estimate_mask", "masked_luminance_contrast",
    "rotational_symmetry", "spectral_symmetry_index", "spectral_symmetry_indices", "radial_power_spectrum", "SpectrumFit", "compare_to_gabor",
]

NEGATIVE_POLICIES = ("raise", "shift", "clip")


# ============================================================================================
# Selectivity
# ============================================================================================
def gini(values: Any, *, negative: str = "raise") -> float:
    """Gini coefficient of a set of responses: 0 = all equal, (n-1)/n = one response holds everything.

    ``G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n`` over the values sorted ascending here (the
    reference formula silently assumed sorted input). The coefficient is defined for values
    >= 0; ``negative`` says what to do otherwise: ``"raise"`` (default, a clear error),
    ``"shift"`` (subtract the minimum, i.e. measure sparseness above the lowest response) or
    ``"clip"`` (set negative values to 0, i.e. treat them as "no response"). All zeros give 0.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if negative not in NEGATIVE_POLICIES:
        raise ValueError(f"negative must be one of {NEGATIVE_POLICIES}, got {negative!r}")
    if x.size == 0:
        raise ValueError("gini of an empty set of values is undefined")
    if not np.isfinite(x).all():
        raise ValueError("gini: values contain NaN or infinity")
    if (x < 0).any():
        if negative == "raise":
            raise ValueError(f"gini: {int((x < 0).sum())} negative value(s) (min {x.min():.4g}); the Gini "
                             "coefficient needs values >= 0: pass negative='shift' or negative='clip'")
        x = x - x.min() if negative == "shift" else np.maximum(x, 0.0)
    x = np.sort(x)
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * (ranks * x).sum() / (n * total) - (n + 1.0) / n)


def gini_binned(edges: np.ndarray, counts: np.ndarray) -> float:
    """Gini coefficient of binned values (edges: bins+1, counts: bins), values spread evenly in each bin.

    The sorted-rank formula of :func:`gini` is summed in closed form per bin with the values of
    a bin of count c on [a, b] placed at a + (j - 1/2)(b - a)/c, j = 1..c. Needs edges >= 0.
    """
    edges = np.asarray(edges, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if edges.shape != (c.size + 1,):
        raise ValueError(f"edges must have len(counts) + 1 = {c.size + 1} entries, got {edges.shape}")
    if edges[0] < 0:
        raise ValueError("gini_binned needs non-negative values (edges >= 0)")
    n = c.sum()
    if n == 0:
        raise ValueError("gini of an empty histogram is undefined")
    a, b = edges[:-1], edges[1:]
    s = np.concatenate([[0.0], np.cumsum(c)[:-1]])              # ranks before each bin
    sum_x = c * (a + b) / 2.0
    sum_rank = c * s + c * (c + 1) / 2.0                         # sum of (s + j)
    sum_rank_offset = s * c ** 2 / 2.0 + c * (c + 1) * (2 * c + 1) / 6.0 - c * (c + 1) / 4.0  # sum (s+j)(j-1/2)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bin = a * sum_rank + np.where(c > 0, (b - a) / c, 0.0) * sum_rank_offset
    total = sum_x.sum()
    if total == 0:
        return 0.0
    return float(2.0 * per_bin[c > 0].sum() / (n * total) - (n + 1.0) / n)


def activation_curve(responses: Any) -> tuple[np.ndarray, np.ndarray]:
    """The sorted-response curve: (rank fraction in [0, 1], responses sorted ascending)."""
    r = np.sort(np.asarray(responses, dtype=np.float64).ravel())
    if r.size == 0:
        raise ValueError("activation curve of no responses")
    frac = np.arange(r.size) / max(r.size - 1, 1)
    return frac, r


def adaptive_sample(responses: Any, num_samples: int = 100, *, seed: int = 0) -> np.ndarray:
    """Indices (into ``responses``) of ``num_samples`` images spread where the sorted curve is steep.

    As in the DualNeuron screening utilities: sort the responses, draw positions 1..n-1 of the
    sorted curve without replacement with probability proportional to the absolute step to the
    previous position, so the tails (where responses change fastest) are sampled densely.
    Unlike the reference (which fails then), when fewer than ``num_samples`` steps are nonzero
    every nonzero step is taken and the rest are filled with evenly spaced positions. The
    result is ordered by response (ascending). ``seed`` makes it reproducible.
    """
    r = np.asarray(responses, dtype=np.float64).ravel()
    n = r.size
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if num_samples > n:
        raise ValueError(f"cannot draw {num_samples} samples from {n} responses")
    order = np.argsort(r, kind="stable")
    steps = np.abs(np.diff(r[order]))
    nonzero = np.flatnonzero(steps > 0)
    if num_samples == n:
        return order
    if nonzero.size >= num_samples:
        p = steps / steps.sum()
        picked = np.random.default_rng(seed).choice(n - 1, size=num_samples, replace=False, p=p) + 1
    else:
        chosen = set((nonzero + 1).tolist())
        for pos in np.linspace(0, n - 1, n).round().astype(int):  # evenly spread fill, low to high
            if len(chosen) >= num_samples:
                break
            chosen.add(int(pos))
        picked = np.array(sorted(chosen))
    return order[np.sort(picked)]


# ============================================================================================
# Baseline and bidirectionality
# ============================================================================================
def baseline_response(scorer: Any, *, size: int | None = None, channels: int | None = None,
                      level: float = 0.5, device: str | None = None) -> np.ndarray:
    """Response of every unit to a uniform image at ``level`` (default mid-grey), shape (units,).

    ``size``/``channels`` default to the scorer's own (``size``/``image_size``/``channels``
    attributes) or 64 px grey; scorers resize and convert themselves anyway.
    """
    from actmax.core.registry import scorers

    s = scorers.create(scorer)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must lie in [0, 1], got {level}")
    size = int(size or getattr(s, "size", None) or getattr(s, "image_size", None) or 64)
    channels = int(channels or getattr(s, "channels", None) or 1)
    dev = torch.device(device) if device else torch.device("cpu")
    s = s.to(dev).eval()
    with torch.no_grad():
        out = s(torch.full((1, channels, size, size), float(level), device=dev))
    return out[0].detach().double().cpu().numpy()


@dataclass
class BidirectionalIndex:
    """How far units are driven above and below their baseline (arrays of shape (units,)).

    * ``excitation`` = max - baseline, ``suppression`` = baseline - min (both >= 0 when the
      extremes bracket the baseline);
    * ``ratio`` = excitation / suppression, the "(max - b) / (b - min)" form: > 1 means the unit
      is driven further up than down (inf when it cannot be pushed below baseline);
    * ``index`` = suppression / (excitation + suppression) in [0, 1]: the share of the unit's
      dynamic range that lies below its baseline (0 = purely excitatory, 0.5 = symmetric);
    * ``bidirectionality`` = min(E, S) / max(E, S) in [0, 1]: 1 = equally bidirectional,
      0 = unidirectional.
    """

    baseline: np.ndarray
    maximum: np.ndarray
    minimum: np.ndarray
    excitation: np.ndarray
    suppression: np.ndarray
    ratio: np.ndarray
    index: np.ndarray
    bidirectionality: np.ndarray

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({k: np.asarray(v) for k, v in asdict(self).items()})


def bidirectional_index(*, maximum: Any, minimum: Any, baseline: Any) -> BidirectionalIndex:
    """Excitation above and suppression below the baseline (see :class:`BidirectionalIndex`)."""
    mx, mn, b = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (maximum, minimum, baseline))
    mx, mn, b = np.broadcast_arrays(mx, mn, b)
    if (mn > mx).any():
        raise ValueError("bidirectional_index: minimum exceeds maximum for some unit")
    if ((b < mn) | (b > mx)).any():
        bad = int(np.flatnonzero((b < mn) | (b > mx))[0])
        raise ValueError(f"bidirectional_index: the baseline {b[bad]:.4g} of unit {bad} lies outside its "
                         f"[min, max] = [{mn[bad]:.4g}, {mx[bad]:.4g}]; the extremes must bracket the baseline "
                         "(use the MEI/LEI responses, or extremes over a set that includes the baseline image)")
    e, s = mx - b, b - mn
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(s > 0, e / np.where(s > 0, s, 1.0), np.where(e > 0, np.inf, np.nan))
        total = e + s
        index = np.where(total > 0, s / np.where(total > 0, total, 1.0), np.nan)
        big = np.maximum(e, s)
        bidir = np.where(big > 0, np.minimum(e, s) / np.where(big > 0, big, 1.0), np.nan)
    return BidirectionalIndex(b.copy(), mx.copy(), mn.copy(), e, s, ratio, index, bidir)


# ============================================================================================
# Evolution trajectories
# ============================================================================================
def normalise_trajectory(values: Any, *, mode: str = "max", baseline: float | None = None) -> np.ndarray:
    """Normalise a response trajectory (per block / generation).

    ``"max"``: divide by the trajectory's maximum (the figure scripts' max-normalised
    response); ``"range"``: ``(v - v[0]) / (max - v[0])`` so it runs from 0 to 1;
    ``"baseline"``: ``(v - baseline) / (max - baseline)``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("empty trajectory")
    if mode == "max":
        ref, top = 0.0, v.max()
    elif mode == "range":
        ref, top = v[0], v.max()
    elif mode == "baseline":
        if baseline is None:
            raise ValueError("normalise_trajectory(mode='baseline') needs baseline=")
        ref, top = float(baseline), v.max()
    else:
        raise ValueError(f"mode must be 'max', 'range' or 'baseline', got {mode!r}")
    scale = top - ref
    if scale == 0:
        raise ValueError(f"cannot normalise a trajectory whose maximum equals its reference ({ref:.4g})")
    return (v - ref) / scale


def _exp_approach(t: np.ndarray, y_inf: float, y0: float, tau: float) -> np.ndarray:
    return y_inf - (y_inf - y0) * np.exp(-t / tau)


@dataclass
class ExponentialFit:
    """``y(t) = y_inf - (y_inf - y0) exp(-t / tau)`` fitted to a trajectory."""

    tau: float
    y_inf: float
    y0: float
    r2: float
    converged: bool

    def predict(self, t: Any) -> np.ndarray:
        return _exp_approach(np.asarray(t, dtype=np.float64), self.y_inf, self.y0, self.tau)


def fit_time_constant(values: Any, *, t: Any = None, max_tau: float | None = None) -> ExponentialFit:
    """Convergence time constant (in blocks) of a trajectory by least squares (``curve_fit``).

    ``tau`` is bounded to (1e-3, max_tau] (default 10x the trajectory length); a trajectory that
    has not levelled off within that returns ``converged=False`` with the bound as ``tau``.
    """
    from scipy.optimize import curve_fit

    y = np.asarray(values, dtype=np.float64).ravel()
    tt = np.arange(y.size, dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64).ravel()
    if y.size != tt.size or y.size < 4:
        raise ValueError(f"need >= 4 points with matching t, got {y.size} values and {tt.size} times")
    if not np.isfinite(y).all():
        raise ValueError("trajectory contains NaN or infinity")
    span = float(tt.max() - tt.min()) or 1.0
    max_tau = float(max_tau or 10.0 * span)
    t0 = tt - tt.min()
    tail = y[-max(2, y.size // 5):].mean()
    spread = float(np.ptp(y)) or 1.0
    best = None
    for tau0 in (span / 10, span / 4, span / 2):
        try:
            p, _ = curve_fit(_exp_approach, t0, y, p0=(tail, y[0], tau0), maxfev=20000,
                             bounds=([y.min() - 10 * spread, y.min() - 10 * spread, 1e-3],
                                     [y.max() + 10 * spread, y.max() + 10 * spread, max_tau]))
        except (RuntimeError, ValueError):
            continue
        sse = float(((y - _exp_approach(t0, *p)) ** 2).sum())
        if best is None or sse < best[1]:
            best = (p, sse)
    if best is None:
        return ExponentialFit(float("nan"), float("nan"), float("nan"), float("nan"), False)
    p, sse = best
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else float("nan")
    converged = bool(p[2] < 0.999 * max_tau)
    return ExponentialFit(float(p[2]), float(p[0]), float(p[1]), r2, converged)


@dataclass
class SuccessTest:
    """Success of an evolution: responses near the peak vs the first two blocks (Student's t-test)."""

    p_value: float
    t_stat: float
    peak_block: int
    peak_blocks: tuple[int, int]
    initial_mean: float
    peak_mean: float
    success: bool


def evolution_success(blocks: Sequence[Any], *, pole: str = "high", alpha: float = 0.05) -> SuccessTest:
    """The figure scripts' success test on per-block responses (``blocks[i]``: responses of block i).

    The peak is the block (from block 2 on) with the best mean (max for ``high``, min for
    ``low``); the "two blocks around the peak" are the peak and the block before it, or the peak
    and the one after when the peak is block 2, so they never overlap the initial blocks 0-1.
    ``scipy.stats.ttest_ind`` (equal variances, two-sided) compares their pooled responses with
    those of blocks 0 and 1; success means p < ``alpha`` in the pole's direction.
    """
    from scipy.stats import ttest_ind

    if pole not in ("high", "low"):
        raise ValueError(f"pole must be 'high' or 'low', got {pole!r}")
    arrs = [np.asarray(b, dtype=np.float64).ravel() for b in blocks]
    if len(arrs) < 4:
        raise ValueError(f"the success test needs at least 4 blocks, got {len(arrs)}")
    if any(a.size == 0 for a in arrs):
        raise ValueError("every block needs at least one response")
    sign = 1.0 if pole == "high" else -1.0
    means = np.array([a.mean() for a in arrs])
    peak = 2 + int(np.argmax(sign * means[2:]))
    first = peak - 1 if peak > 2 else peak
    window = (first, first + 1)
    near = np.concatenate([arrs[window[0]], arrs[window[1]]])
    init = np.concatenate([arrs[0], arrs[1]])
    res = ttest_ind(near, init)
    t_stat, p = float(res.statistic), float(res.pvalue)
    success = bool(np.isfinite(p) and p < alpha and sign * (near.mean() - init.mean()) > 0)
    return SuccessTest(p, t_stat, peak, window, float(init.mean()), float(near.mean()), success)


def analyze_trajectories(scores: pd.DataFrame, *, pole: str = "high", alpha: float = 0.05,
                         normalise: str = "max") -> pd.DataFrame:
    """Per space of an evolution's score table (generation, space, score): time constant and success.

    The trajectory is the mean score per generation, normalised by ``normalise`` (see
    :func:`normalise_trajectory`; for ``low`` the negated responses are used so that progress
    is upward), fitted with :func:`fit_time_constant`; the success test uses every image's score.
    """
    need = {"generation", "score"}
    if not need <= set(scores.columns):
        raise ValueError(f"score table needs columns {sorted(need)}, has {list(scores.columns)}")
    df = scores if "space" in scores.columns else scores.assign(space="all")
    df = df[df["space"] != "reference"]
    sign = 1.0 if pole == "high" else -1.0
    rows = []
    for space, d in df.groupby("space", sort=True):
        g = d.groupby("generation")["score"]
        gens = np.array(sorted(g.groups))
        blocks = [g.get_group(k).to_numpy() for k in gens]
        means = np.array([b.mean() for b in blocks])
        row: dict[str, Any] = {"space": space, "generations": len(gens), "first_mean": means[0],
                               "best_mean": (means.max() if pole == "high" else means.min())}
        try:
            norm = normalise_trajectory(sign * means, mode=normalise)
            fit = fit_time_constant(norm, t=gens)
            row.update(tau=fit.tau, tau_converged=fit.converged, fit_r2=fit.r2, y_inf=fit.y_inf, y0=fit.y0)
        except ValueError:
            row.update(tau=np.nan, tau_converged=False, fit_r2=np.nan, y_inf=np.nan, y0=np.nan)
        try:
            test = evolution_success(blocks, pole=pole, alpha=alpha)
            row.update(p_value=test.p_value, t_stat=test.t_stat, peak_generation=int(gens[test.peak_block]),
                       success=test.success)
        except ValueError:
            row.update(p_value=np.nan, t_stat=np.nan, peak_generation=-1, success=False)
        rows.append(row)
    return pd.DataFrame(rows)


# ============================================================================================
# Image similarity
# ============================================================================================
LPIPS_TRUNKS = {  # lpips net name -> (weights name, torchvision file name, torchvision builder)
    "alex": ("lpips-alex-trunk", "alexnet-owt-7be5be79.pth", "alexnet"),
    "vgg": ("lpips-vgg-trunk", "vgg16-397923af.pth", "vgg16"),
    "squeeze": ("lpips-squeeze-trunk", "squeezenet1_1-b8a52dc0.pth", "squeezenet1_1"),
}


def _register_lpips_weights() -> None:
    from actmax.core.weights import KNOWN_WEIGHTS, WeightSpec, register_weights

    for net, (name, filename, builder) in LPIPS_TRUNKS.items():
        if name in KNOWN_WEIGHTS:
            continue
        register_weights(WeightSpec(
            name=name, filename=filename,
            description=f"torchvision {builder} ImageNet weights (the LPIPS '{net}' trunk)",
            env_var=f"ACTMAX_LPIPS_{net.upper()}_WEIGHTS", hub_repo_env="ACTMAX_LPIPS_HUB_REPO",
            legacy=("torch_hub_checkpoints",), option="trunk_weights=",  # LPIPSDistance(trunk_weights=...); the CLI flag is --weights
            used_by=f"actmax.core.apps.analysis.LPIPSDistance(net='{net}')"))


_register_lpips_weights()


class LPIPSDistance(torch.nn.Module):
    """LPIPS perceptual distance (Zhang et al. 2018) through the ``lpips`` package.

    The linear calibration layers ship inside the ``lpips`` wheel; the trunk (torchvision
    AlexNet / VGG16 / SqueezeNet ImageNet weights) is found by :func:`actmax.core.weights.resolve`
    (``trunk_weights=`` path, ``ACTMAX_LPIPS_<NET>_WEIGHTS``, ``$ACTMAX_WEIGHTS_DIR``,
    ``torch.hub.get_dir()/checkpoints``); nothing is downloaded by torchvision, and a missing
    file is one :class:`~core.errors.WeightsError` naming it. ``random_trunk=True`` skips the
    trunk weights (for tests only: the distance is then not perceptual). Inputs are images in
    [0, 1] (grey is repeated to RGB; images smaller than 64 px are upsampled).
    """

    def __init__(self, net: str = "alex", *, trunk_weights: str | None = None, lin_weights: str | None = None,
                 random_trunk: bool = False) -> None:
        super().__init__()
        try:
            import lpips
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("LPIPS needs the `lpips` package: pip install 'actmax[similarity]'") from exc
        import warnings
        from pathlib import Path

        from actmax.core.weights import load_into, load_state_dict_file, resolve

        if net not in LPIPS_TRUNKS:
            raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_TRUNKS)}, got {net!r}")
        name, filename, _ = LPIPS_TRUNKS[net]
        trunk_path = None if random_trunk else resolve(name, trunk_weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation of pretrained=False inside lpips
            self.model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        lin_path = Path(lin_weights) if lin_weights else Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
        lin_state = load_state_dict_file(lin_path, what=f"LPIPS {net} linear layers")
        lins = {k: v for k, v in self.model.state_dict().items() if k.startswith("lin") and not k.startswith("lins.")}
        from actmax.core.weights import check_state_dict
        check_state_dict(lins, lin_state, what=f"LPIPS {net} linear layers", source=str(lin_path))
        self.model.load_state_dict(lin_state, strict=False)
        if trunk_path is not None:
            state = load_state_dict_file(trunk_path, what=f"LPIPS {net} trunk ({filename})")
            mapping = _trunk_key_map(self.model.net)
            trunk = {mapping[k]: v for k, v in state.items() if k in mapping}
            load_into(self.model.net, trunk, what=f"LPIPS {net} trunk ({filename})", source=str(trunk_path))
        self.trunk_path = trunk_path
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (B,) between image batches ``a`` and ``b`` (B, C, H, W) in [0, 1] (B may broadcast)."""
        from actmax.core.contracts import check_images
        from actmax.core.contracts import to_channels, to_size

        a, b = check_images(a, where="LPIPS input a"), check_images(b, where="LPIPS input b")
        if a.shape[-2:] != b.shape[-2:]:
            b = to_size(b, tuple(a.shape[-2:]))
        a, b = to_channels(a, 3), to_channels(b, 3)
        if min(a.shape[-2:]) < 64:
            side = (max(64, a.shape[-2]), max(64, a.shape[-1]))
            a = torch.nn.functional.interpolate(a, size=side, mode="bilinear", align_corners=False)
            b = torch.nn.functional.interpolate(b, size=side, mode="bilinear", align_corners=False)
        return self.model(a, b, normalize=True).flatten()


def _trunk_key_map(trunk: torch.nn.Module) -> dict[str, str]:
    """torchvision ``features.<i>.<param>`` -> lpips ``slice<k>.<i>.<param>``."""
    out = {}
    for key in trunk.state_dict():
        slice_name, index, rest = key.split(".", 2)
        out[f"features.{index}.{rest}"] = key
    return out


def lpips_distance(a: torch.Tensor, b: torch.Tensor, *, net: str = "alex", trunk_weights: str | None = None) -> np.ndarray:
    """LPIPS distances between two image batches (one-off helper; build :class:`LPIPSDistance` to reuse)."""
    with torch.no_grad():
        return LPIPSDistance(net, trunk_weights=trunk_weights)(a, b).numpy()


def feature_cosine(a: torch.Tensor, b: torch.Tensor, *, features: Any) -> np.ndarray:
    """Cosine similarity (B,) of feature vectors of two image batches.

    ``features`` is a scorer spec or instance (its responses are the features: e.g. a CNN layer's
    channels or a model population) or any callable / module mapping images to (B, ...) tensors.
    """
    from actmax.core.registry import scorers

    f = scorers.create(features) if isinstance(features, (str, Mapping)) else features
    if not callable(f):
        raise ValueError(f"features must be a scorer spec, a module or a callable, got {type(features).__name__}")
    with torch.no_grad():
        fa, fb = f(a).flatten(1).double(), f(b).flatten(1).double()
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature sizes differ: {fa.shape[1]} vs {fb.shape[1]}")
    fa, fb = torch.broadcast_tensors(fa, fb)
    denom = fa.norm(dim=1) * fb.norm(dim=1)
    cos = (fa * fb).sum(1) / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, cos, torch.full_like(cos, float("nan"))).numpy()


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
            raise ValueError(f"cannot read an image of shape {x.shape}")
    if x.ndim != 2:
        raise ValueError(f"expected one image (H, W), (C, H, W) or (H, W, C), got shape {x.shape}")
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
        raise ValueError("fit_gabor: the image is uniform (no contrast to fit)")
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
        raise ValueError("fit_gabor: the least-squares fit failed from every start")
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
        raise ValueError(f"mask shape {w.shape} does not match the image {img.shape}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("mask must be >= 0 and not all zero")
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
                raise ValueError("rotational_symmetry: the image has no contrast")
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
            cx, cy = float((e * xx).sum() / e.sum()), float((e * yy).sum() / e.sum())
        else:
            raise ValueError(f"center must be 'centroid', 'image' or (x, y), got {center!r}")
    else:
        cx, cy = (float(v) for v in center)
    r = float(radius) if radius is not None else min(cx, cy, w - 1 - cx, h - 1 - cy)
    if r <= 1:
        raise ValueError(f"rotational_symmetry: the disk around ({cx:.1f}, {cy:.1f}) is too small (radius {r:.2f})")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    base = c[disk]
    norm0 = float(np.sqrt((base ** 2).sum()))
    if norm0 == 0:
        raise ValueError("rotational_symmetry: no contrast inside the disk")
    out = {}
    for n in folds:
        n = int(n)
        if n < 2:
            raise ValueError(f"folds must be >= 2, got {n}")
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
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not bin_size > 0:
        raise ValueError(f"bin_size must be > 0, got {bin_size!r}")
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
        raise ValueError("spectral_symmetry_index: the image has no power (constant image with remove_mean=True?)")
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

"""Statistics of screens and evolutions: selectivity (Gini, activation curves), bidirectionality
(excitation and suppression around a baseline) and evolution trajectories (time constant, success test).
See :mod:`actmax.core.apps.analysis` for the whole family."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.errors import InputError

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
        raise InputError(f"negative must be one of {NEGATIVE_POLICIES}, got {negative!r}")
    if x.size == 0:
        raise InputError("gini of an empty set of values is undefined")
    if not np.isfinite(x).all():
        raise InputError("gini: values contain NaN or infinity")
    if (x < 0).any():
        if negative == "raise":
            raise InputError(f"gini: {int((x < 0).sum())} negative value(s) (min {x.min():.4g}); the Gini "
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
        raise InputError(f"edges must have len(counts) + 1 = {c.size + 1} entries, got {edges.shape}")
    if edges[0] < 0:
        raise InputError("gini_binned needs non-negative values (edges >= 0)")
    n = c.sum()
    if n == 0:
        raise InputError("gini of an empty histogram is undefined")
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
        raise InputError("activation curve of no responses")
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
        raise InputError(f"num_samples must be >= 1, got {num_samples}")
    if num_samples > n:
        raise InputError(f"cannot draw {num_samples} samples from {n} responses")
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

    ``size``/``channels`` default to the scorer's own (``size``/``channels`` attributes) or 64 px
    grey; scorers resize and convert themselves anyway.
    """
    from actmax.core.registry import scorers

    s = scorers.create(scorer)
    if not 0.0 <= level <= 1.0:
        raise InputError(f"level must lie in [0, 1], got {level}")
    size = int(size or s.size or 64)
    channels = int(channels or (s.channels if isinstance(s.channels, int) else None) or 1)   # a rig's are recording channels
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
        raise InputError("bidirectional_index: minimum exceeds maximum for some unit")
    if ((b < mn) | (b > mx)).any():
        bad = int(np.flatnonzero((b < mn) | (b > mx))[0])
        raise InputError(f"bidirectional_index: the baseline {b[bad]:.4g} of unit {bad} lies outside its "
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
        raise InputError("empty trajectory")
    if mode == "max":
        ref, top = 0.0, v.max()
    elif mode == "range":
        ref, top = v[0], v.max()
    elif mode == "baseline":
        if baseline is None:
            raise InputError("normalise_trajectory(mode='baseline') needs baseline=")
        ref, top = float(baseline), v.max()
    else:
        raise InputError(f"mode must be 'max', 'range' or 'baseline', got {mode!r}")
    scale = top - ref
    if scale == 0:
        raise InputError(f"cannot normalise a trajectory whose maximum equals its reference ({ref:.4g})")
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
        raise InputError(f"need >= 4 points with matching t, got {y.size} values and {tt.size} times")
    if not np.isfinite(y).all():
        raise InputError("trajectory contains NaN or infinity")
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
        raise InputError(f"pole must be 'high' or 'low', got {pole!r}")
    arrs = [np.asarray(b, dtype=np.float64).ravel() for b in blocks]
    if len(arrs) < 4:
        raise InputError(f"the success test needs at least 4 blocks, got {len(arrs)}")
    if any(a.size == 0 for a in arrs):
        raise InputError("every block needs at least one response")
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
        raise InputError(f"score table needs columns {sorted(need)}, has {list(scores.columns)}")
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



"""Neuron quality metrics and selection: correlations, leave-one-out oracle, ranking, thresholds.

Responses are arrays (trials, images, neurons) with NaN where an image has fewer trials
than the most repeated one, or (images, neurons) for trial-averaged data.
"""
from __future__ import annotations

import numpy as np
from actmax.core.errors import InputError


def as_trials(responses: np.ndarray) -> np.ndarray:
    """(images, neurons) -> (1, images, neurons); (trials, images, neurons) passes through."""
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim == 2:
        return r[None]
    if r.ndim != 3:
        raise InputError(f"responses must be (images, neurons) or (trials, images, neurons), got shape {r.shape}")
    return r


def trial_counts(responses: np.ndarray) -> np.ndarray:
    """Number of valid (finite) trials per image, (images,) (a trial counts if any neuron has it)."""
    r = as_trials(responses)
    return np.isfinite(r).any(axis=2).sum(axis=0)


def trial_mean(responses: np.ndarray) -> np.ndarray:
    """Mean over valid trials, (images, neurons); NaN where an image has no trial for a neuron."""
    r = as_trials(responses)
    valid = np.isfinite(r)
    n = valid.sum(0)
    total = np.where(valid, r, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def pearson_per_neuron(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation per column of two (images, neurons) arrays, ignoring NaN rows per neuron.

    A neuron with constant prediction or target (or fewer than 3 valid images) gets NaN.
    """
    p = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 2:
        raise InputError(f"prediction and target must both be (images, neurons), got {p.shape} and {t.shape}")
    out = np.full(p.shape[1], np.nan)
    for j in range(p.shape[1]):
        ok = np.isfinite(p[:, j]) & np.isfinite(t[:, j])
        if ok.sum() < 3:
            continue
        a, b = p[ok, j] - p[ok, j].mean(), t[ok, j] - t[ok, j].mean()
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        if denom > 0:
            out[j] = float((a * b).sum() / denom)
    return out


def oracle_correlation(responses: np.ndarray) -> np.ndarray:
    """Leave-one-out oracle correlation per neuron, (neurons,).

    Over every image with at least two valid trials, each single trial is paired with the
    mean of the *other* trials of the same image; the oracle is the Pearson correlation of
    these pairs. It estimates how well the best possible model could predict single trials,
    so it is the ceiling a twin's single-trial correlation is judged against. NaN for a
    neuron without repeated images.
    """
    r = as_trials(responses)
    valid = np.isfinite(r)
    n = valid.sum(0)                                        # (images, neurons)
    total = np.where(valid, r, 0.0).sum(0)
    out = np.full(r.shape[2], np.nan)
    for j in range(r.shape[2]):
        singles, loo = [], []
        for i in np.flatnonzero(n[:, j] >= 2):
            trials = r[valid[:, i, j], i, j]
            singles.append(trials)
            loo.append((total[i, j] - trials) / (n[i, j] - 1))
        if not singles:
            continue
        a = np.concatenate(singles)
        b = np.concatenate(loo)
        if a.size < 3:
            continue
        a, b = a - a.mean(), b - b.mean()
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        if denom > 0:
            out[j] = float((a * b).sum() / denom)
    return out


def rank_neurons(scores: np.ndarray, *, descending: bool = True) -> np.ndarray:
    """Neuron indices ordered by ``scores`` (best first when ``descending``); NaN always last."""
    s = np.asarray(scores, dtype=np.float64)
    key = np.where(np.isfinite(s), -s if descending else s, np.inf)
    return np.argsort(key, kind="stable")


def select_neurons(scores: np.ndarray, *, threshold: float | None = None, top_k: int | None = None,
                   descending: bool = True) -> np.ndarray:
    """Indices of neurons whose score passes ``threshold`` (>= when descending, <= otherwise),
    best first, keeping at most ``top_k``. NaN scores never pass."""
    s = np.asarray(scores, dtype=np.float64)
    order = rank_neurons(s, descending=descending)
    order = order[np.isfinite(s[order])]
    if threshold is not None:
        keep = s[order] >= threshold if descending else s[order] <= threshold
        order = order[keep]
    if top_k is not None:
        if top_k < 0:
            raise InputError(f"top_k must be >= 0, got {top_k}")
        order = order[:top_k]
    return order


def normalised_correlation(test_correlation: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """Test correlation as a fraction of the oracle (NaN where the oracle is not positive)."""
    t, o = np.asarray(test_correlation, float), np.asarray(oracle, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(o > 0, t / o, np.nan)

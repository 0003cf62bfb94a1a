"""One closed-loop round's verdict: per neuron, the MEI and LEI against the controls; per kind, medians.

The MEI (LEI) of a neuron is the synthesised image (one per synthesis seed) whose *measured*
response, averaged over its repeats, is the highest (lowest): what an experimenter can pick.
Its ``mei_response`` is the neuron's noise-free response to it (simulated neurons; a rig
reports the measured mean). Every neuron is a row; the oracle is a column, never a filter.

The blank (a grey screen, shown with the same repeats) is a candidate LEI as well: where it measures
below every synthesised LEI of a neuron, no stimulus the loop found suppresses that neuron below its
response to no contrast at all, and its LEI is the blank (``lei_is_blank``). That is the known answer
for cells whose floor is grey (complex cells, rectified CNN units); the synthesised LEI stays in the
row (``lei_synthesized_response``), so a twin that mis-ranks the bottom of its range is still seen.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actmax.core.apps.closed_loop import _image_stats, bootstrap_median

#: per-kind columns: median over every neuron of the kind with its bootstrap 95 % interval
KIND_MEDIANS = ("mei_fraction_of_optimum", "mei_over_best_gabor", "mei_over_best_natural", "lei_to_floor",
                "readout_error_px", "twin_over_prediction", "oracle", "mei_mean_luminance", "mei_rms_contrast")


def choose(values: np.ndarray, owner: np.ndarray, pole: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the index of its MEI (highest ``values`` among its ``high`` images) and LEI (lowest ``low``)."""
    mei, lei = np.full(n_units, -1), np.full(n_units, -1)
    for u in range(n_units):
        hi, lo = np.flatnonzero((owner == u) & (pole == 1)), np.flatnonzero((owner == u) & (pole == 0))
        if hi.size:
            mei[u] = hi[np.nanargmax(values[hi])] if np.isfinite(values[hi]).any() else hi[0]
        if lo.size:
            lei[u] = lo[np.nanargmin(values[lo])] if np.isfinite(values[lo]).any() else lo[0]
    return mei, lei


def _r(v: Any, nd: int = 5) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def _ratio(a: float, b: float) -> float | None:
    return None if not (np.isfinite(a) and np.isfinite(b)) or b <= 0 else round(float(a / b), 4)


def neuron_rows(*, neurons: Any, images: torch.Tensor, owner: np.ndarray, pole: np.ndarray, truth: np.ndarray,
                measured: np.ndarray, predicted: np.ndarray, ctrl: dict[str, Any], oracle: np.ndarray,
                test_corr: list, readout_err: np.ndarray, rf_estimate: np.ndarray,
                blank: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """One row per neuron (see the module docstring). ``truth``/``measured``/``predicted``: each shown
    image's noise-free, measured (trial mean) and twin-predicted response of its own unit. ``blank``:
    per unit, the noise-free and the measured response to the blank (None: the blank is no candidate).
    A row's ``lei_index`` is ``len(images)`` where its LEI is the blank."""
    n_units = neurons.units
    mei_i, lei_i = choose(measured, owner, pole, n_units)
    syn_lei_i = lei_i.copy()
    blank_truth, blank_measured = blank if blank is not None else (np.full(n_units, np.nan),) * 2
    is_blank = np.array([blank is not None and np.isfinite(blank_measured[u])
                         and (lei_i[u] < 0 or not np.isfinite(measured[lei_i[u]])
                              or blank_measured[u] < measured[lei_i[u]]) for u in range(n_units)])
    lei_i = np.where(is_blank, len(images), lei_i)
    images = torch.cat([images, torch.full_like(images[:1], 0.5)]) if blank is not None else images
    has_opt = hasattr(neurons, "optimal_response")
    opt = neurons.optimal_response("high").double().numpy() if has_opt else np.full(n_units, np.nan)
    floor = neurons.optimal_response("low").double().numpy() if has_opt else np.full(n_units, np.nan)
    kinds = list(getattr(neurons, "kinds", ["?"] * n_units))
    (mei_lum, mei_rms), (lei_lum, lei_rms) = _image_stats(images, mei_i), _image_stats(images, lei_i)
    rows = []
    for u in range(n_units):
        mi, li, si = mei_i[u], lei_i[u], syn_lei_i[u]
        mei = truth[mi] if mi >= 0 and np.isfinite(truth[mi]) else (measured[mi] if mi >= 0 else np.nan)
        syn_lei = truth[si] if si >= 0 and np.isfinite(truth[si]) else (measured[si] if si >= 0 else np.nan)
        lei_meas = blank_measured[u] if is_blank[u] else (measured[li] if li >= 0 else np.nan)
        lei = ((blank_truth[u] if np.isfinite(blank_truth[u]) else blank_measured[u]) if is_blank[u] else syn_lei)
        grey, best_nat = float(ctrl["grey"][u]), float(ctrl["best_natural"][u])
        gabor, masked = float(ctrl["best_gabor"][u]), float(ctrl["best_masked_natural"][u])
        err = float(readout_err[u])
        span = grey - floor[u]
        rows.append({
            "unit": u, "kind": kinds[u], "oracle": _r(oracle[u], 4),
            "test_correlation": test_corr[u] if u < len(test_corr) else None,
            "mei_response": _r(mei), "lei_response": _r(lei),
            "mei_measured": _r(measured[mi]) if mi >= 0 else None, "lei_measured": _r(lei_meas),
            "lei_is_blank": bool(is_blank[u]), "blank_measured": _r(blank_measured[u]),
            "lei_synthesized_response": _r(syn_lei),
            "lei_synthesized_below_grey": bool(syn_lei <= grey) if np.isfinite(syn_lei) else None,
            "optimum_response": _r(opt[u]), "floor_response": _r(floor[u]),
            "mei_fraction_of_optimum": _ratio(mei, opt[u]),
            "best_gabor_response": _r(gabor), "best_masked_natural_response": _r(masked),
            "best_natural_response": _r(best_nat), "grey_response": _r(grey),
            "mei_over_best_gabor": _ratio(mei, gabor), "mei_over_best_masked_natural": _ratio(mei, masked),
            "mei_over_best_natural": _ratio(mei, best_nat),
            "mei_beats_best_natural": bool(mei > best_nat) if np.isfinite(mei) else None,
            "mei_beats_best_gabor": bool(mei > gabor) if np.isfinite(gabor) and np.isfinite(mei) else None,
            "lei_below_grey": bool(lei <= grey) if np.isfinite(lei) else None,
            "lei_to_floor": None if not np.isfinite(span) or abs(span) < 1e-9 else round(float((grey - lei) / span), 4),
            "readout_error_px": _r(err, 2), "readout_within_2px": bool(err <= 2.0) if np.isfinite(err) else None,
            "rf_estimate_px": [round(float(v), 2) for v in rf_estimate[u]],
            "twin_mei_prediction": _r(predicted[mi]) if mi >= 0 else None,
            "twin_over_prediction": _ratio(predicted[mi], mei) if mi >= 0 else None,
            "mei_mean_luminance": _r(mei_lum[u], 4), "mei_rms_contrast": _r(mei_rms[u], 4),
            "lei_mean_luminance": _r(lei_lum[u], 4), "lei_rms_contrast": _r(lei_rms[u], 4),
            "mei_index": int(mi), "lei_index": int(li),
        })
    return rows


def kind_rows(rows: list[dict[str, Any]], *, reliable_oracle: float = 0.5) -> list[dict[str, Any]]:
    """Per kind: medians with bootstrap 95 % intervals over ALL its neurons, and pass fractions."""
    out = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        row: dict[str, Any] = {"kind": kind, "n": len(mine),
                               "reliable": sum(1 for r in mine if (r["oracle"] or -1) >= reliable_oracle)}
        for col in KIND_MEDIANS:
            vals = np.array([np.nan if r.get(col) is None else r[col] for r in mine], float)
            row[f"median_{col}"], row[f"median_{col}_ci95"] = bootstrap_median(vals)
        for col in ("lei_below_grey", "lei_is_blank", "lei_synthesized_below_grey", "readout_within_2px",
                    "mei_beats_best_natural", "mei_beats_best_gabor"):
            vals = [r[col] for r in mine if r.get(col) is not None]
            row[f"fraction_{col}"] = round(float(np.mean(vals)), 3) if vals else None
        out.append(row)
    return out


def format_kinds(rows: list[dict[str, Any]]) -> str:
    """The per-kind table as fixed-width text."""
    fmt = lambda v: "    -" if v is None else f"{v:5.2f}"  # noqa: E731
    head = f"{'kind':<8} {'n':>3} {'MEI/opt':>7} {'95% CI':>13} {'MEI/gab':>7} {'MEI/nat':>7} {'LEI<gry':>7} " \
           f"{'LEI>flr':>7} {'LEI=blk':>7} {'rd err':>6} {'over':>5}"
    lines = [head]
    for r in rows:
        ci = r["median_mei_fraction_of_optimum_ci95"]
        ci_txt = "-" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"
        lines.append(f"{r['kind']:<8} {r['n']:>3} {fmt(r['median_mei_fraction_of_optimum']):>7} {ci_txt:>13} "
                     f"{fmt(r['median_mei_over_best_gabor']):>7} {fmt(r['median_mei_over_best_natural']):>7} "
                     f"{fmt(r['fraction_lei_below_grey']):>7} {fmt(r['median_lei_to_floor']):>7} "
                     f"{fmt(r.get('fraction_lei_is_blank')):>7} "
                     f"{fmt(r['median_readout_error_px']):>6} {fmt(r['median_twin_over_prediction']):>5}")
    return "\n".join(lines)


def measured_gain(previous: list[dict[str, Any]] | None, current: list[dict[str, Any]]) -> float | None:
    """Median over neurons of this round's measured MEI response / the previous round's (None in round 0)."""
    if previous is None:
        return None
    ratios = [c["mei_measured"] / p["mei_measured"] for p, c in zip(previous, current)
              if p["mei_measured"] and c["mei_measured"] is not None and p["mei_measured"] > 0]
    return round(float(np.median(ratios)), 4) if ratios else None

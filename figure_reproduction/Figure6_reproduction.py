#!/usr/bin/env python
"""Figure 6: tuning along the principal image-change axes around each evolved prototype.

By default every number is what the paper's own script (Dynamic-Neuron-GAN-Alignment,
``figure_reproduction/Figure6_reproduction.py``) computes from the same files:

C: single-trial responses of the example experiment along its axes
(``Figure6C_src_<exp>_sgtr_resp_df.csv``: space_name, eig_id, lin_dist, pref_unit_resp; the origin trials
are added to an axis that lacks them). On axis 0 of each space, the paper's four descriptions: a
Gaussian with baseline fitted by ``curve_fit`` (p0 and bounds from the per-position means, R^2 =
1 - var(residual)/var(y)), an OLS line (R^2), a Gaussian process (Constant x RBF + White kernel with
the paper's initial values and bounds, 10 optimizer restarts; R^2 of its mean) and a one-way ANOVA
across positions (F, p; equal to the paper's ``ols`` + ``anova_lm`` type 2 with one factor).
D: tuning heatmaps (axis x position) for evolutions that succeeded and that failed; colour scale = the
2-98 % quantiles of the values.
E: of the axes with ANOVA p < .01 (and ``is_common_axis`` on the paper's files), the fraction whose
GP-fitted curve is bell-shaped vs monotonic per group (``is_BigGAN_evol_success``), and where the
tuning of axes with ``p_value`` < .01 peaks (``max_resp_lin_dist_bin``), proportions with Wilson 95 % CIs.

Differences from the paper's script, deliberate: the CI of the E shape fractions is a Wilson interval
(the paper draws a seaborn bootstrap CI, random); the GP's restarts use a fixed seed (the paper's are
unseeded). ``--extras`` also runs the ANOVA on every other axis of the example and the fits on axis 0
of the other space (``6C`` rows with note "extra").

Our in-silico tables (``make_source_data.py``): spaces fourier/gabor, positions ``step`` (equal
pixel change), D = normalised averages over experiments, E grouped by space with peaks = GP peak
(step) of bell-shaped axes. Each table may also be the paper's pickled DataFrame (``.pkl``, only
with ``--allow-pickle``).
"""
from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.stats import f_oneway

from _figcommon import Stats, arguments, as_bool, fail, fmt_p, need, plt, read_frame, save, wilson

SPACE_TITLES = {"fourier": "fourier (DeePSim stand-in)", "gabor": "gabor (BigGAN stand-in)",
                "class": "BigGAN class space", "noise": "BigGAN noise space"}


def gaussian_with_baseline(x, amplitude, mean, stddev, baseline):
    return amplitude * np.exp(-((x - mean) ** 2) / (2 * stddev ** 2)) + baseline


def fit_gaussian(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The paper's constrained Gaussian-with-baseline fit to single trials: (amplitude, mean, sd, baseline), R^2."""
    means = pd.Series(y).groupby(x).mean()
    xs, ym = means.index.to_numpy(float), means.to_numpy(float)
    span = xs.max() - xs.min()
    p0 = [ym.max() - ym.min(), xs[np.argmax(ym)], span / 4, ym.min()]
    bounds = ([0.0, xs.min(), 0.01, 0.0], [1.25 * ym.max(), xs.max(), span * 2, ym.max()])
    try:
        params, _ = curve_fit(gaussian_with_baseline, x, y, p0=p0, bounds=bounds)
    except (RuntimeError, ValueError):
        return None, float("nan")
    return params, float(1 - np.var(y - gaussian_with_baseline(x, *params)) / np.var(y))


def fit_ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line: slope, intercept, R^2."""
    slope, icpt = np.polyfit(x, y, 1)
    return float(slope), float(icpt), float(1 - np.sum((y - slope * x - icpt) ** 2) / np.sum((y - y.mean()) ** 2))


def fit_gpr(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """The paper's Gaussian process (Constant * RBF + White, its initial values and bounds): fitted model, R^2."""
    try:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    except ImportError:
        fail("Figure 6C's Gaussian-process fit needs scikit-learn (pip install 'actmax[figures]')")
    noise_var = pd.Series(y).groupby(x).var().mean()
    y_var = y.var()
    if np.isnan(noise_var):
        noise_var = y_var
    kernel = (ConstantKernel(y_var, (y_var * 1e-2, y_var * 1e2))
              * RBF(length_scale=(x.max() - x.min()) / 10, length_scale_bounds=(1e-2, 1e2))
              + WhiteKernel(noise_level=noise_var * 0.1, noise_level_bounds=(noise_var * 1e-2, noise_var * 1e1)))
    gpr = GaussianProcessRegressor(kernel=kernel, alpha=0.0, n_restarts_optimizer=10, random_state=seed)
    with warnings.catch_warnings():        # a length scale at its bound is a result here, not a problem
        warnings.simplefilter("ignore")
        gpr.fit(x.reshape(-1, 1), y)
    return gpr, float(1 - np.var(y - gpr.predict(x.reshape(-1, 1))) / np.var(y))


@dataclass
class Fig6Data:
    """Both file sets in one form."""
    exp: str
    trials: pd.DataFrame                 # space_name, eig_id, x, lin_dist, pref_unit_resp
    x_name: str                          # what x is
    avg: dict[str, pd.DataFrame]         # succeeded/failed -> space_name, eig_id, x, value, n, title
    normalised: bool                     # D values are normalised (0-1) rather than spikes/s
    shape: pd.DataFrame                  # group, anova_p_value, gpr_y_is_bellshaped, gpr_y_is_monotonic
    peaks: pd.DataFrame                  # group, peak (a category: step or bin) of significantly tuned axes
    group_name: str                      # what the E groups are
    paper: bool                          # the paper's file set


def _sort_key(value) -> float:
    """Numeric order of a step or of an interval label such as ``(-0.5, 0.5]``."""
    m = re.search(r"-?\d+(\.\d+)?", str(value))
    return float(m.group(0)) if m else float("inf")


def _load(d: Path, allow_pickle: bool) -> Fig6Data:
    def table(stem: str) -> pd.DataFrame:
        return read_frame(d / f"{stem}.csv", d / f"{stem}.pkl", allow_pickle)

    examples = sorted({p.stem for p in need(d).glob("Figure6C_src_*_sgtr_resp_df.*") if p.suffix in (".csv", ".pkl")})
    if not examples:
        fail(f"no Figure6C_src_<exp>_sgtr_resp_df.csv in {d}")
    trials = table(examples[0])
    exp = examples[0].removeprefix("Figure6C_src_").removesuffix("_sgtr_resp_df")
    x_name = "step" if "step" in trials else "lin_dist"
    trials = trials.assign(x=trials[x_name])
    origin = trials[trials["lin_dist"] == 0]
    parts = []
    for (space, k), g in trials.groupby(["space_name", "eig_id"]):
        if not (g["lin_dist"] == 0).any():   # the paper stores the prototype's trials once
            g = pd.concat([g, origin.assign(space_name=space, eig_id=k)])
        parts.append(g)
    trials = pd.concat(parts, ignore_index=True)
    avg = {}
    for which, stem in (("succeeded", "Figure6D_src_prefchan_avgresp_df"),
                        ("failed", "Figure6D_src_prefchan_avgresp_df_failevol")):
        df = table(stem)
        normalised = "norm_resp_mean" in df
        title = (f"evolution {which}" if "ephysFN" not in df
                 else f"{df['ephysFN'].iloc[0]} ch {df['prefchan_str'].iloc[0]} (evolution {which})")
        avg[which] = pd.DataFrame({
            "space_name": df["space_name"], "eig_id": df["eig_id"], "x": df["step" if "step" in df else "lin_dist"],
            "value": df["norm_resp_mean" if normalised else "pref_unit_resp"],
            "n": df["n_exp"] if "n_exp" in df else 1}).assign(title=title)
    fits = table("Figure6E_src_tuning_shape_fitting_stats_synopsis_selcolumn")
    flags = {c: as_bool(fits[c]) for c in ("gpr_y_is_bellshaped", "gpr_y_is_monotonic")}
    if "is_common_axis" in fits:     # the paper's: common axes, grouped by BigGAN evolution success
        success = as_bool(fits["is_BigGAN_evol_success"])
        shape = pd.DataFrame({"group": np.where(success, "BigGAN succeeded", "BigGAN failed"),
                              "anova_p_value": fits["anova_p_value"].to_numpy(float), **flags})
        shape = shape[as_bool(fits["is_common_axis"])]
        stats = table("Figure6E_src_tuning_stats_synopsis_selcolumn")
        sig = stats[stats["p_value"].to_numpy(float) < 0.01]
        peaks = pd.DataFrame({"group": np.where(as_bool(sig["is_BigGAN_evol_success"]), "BigGAN succeeded",
                                                "BigGAN failed"), "peak": sig["max_resp_lin_dist_bin"].astype(str)})
        group_name = "BigGAN evolution"
    else:                            # ours: per space, GP peak of bell-shaped axes
        shape = pd.DataFrame({"group": fits["space_name"], "anova_p_value": fits["anova_p_value"].to_numpy(float),
                              **flags})
        bell = shape["gpr_y_is_bellshaped"] & (shape["anova_p_value"] < 0.01)
        peaks = pd.DataFrame({"group": shape["group"][bell],
                              "peak": np.round(fits["gpr_peak_loc"][bell].to_numpy(float)).astype(int).astype(str)})
        group_name = "space"
    return Fig6Data(exp, trials, x_name, avg, normalised, shape, peaks, group_name, paper=x_name == "lin_dist")


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    data = _load(args.source_data / "Fig6", args.allow_pickle)
    trials, exp = data.trials, data.exp
    present = set(trials["space_name"])
    spaces = [s for s in SPACE_TITLES if s in present] + sorted(present - set(SPACE_TITLES))
    fig = plt.figure(figsize=(15, 8))
    grid = fig.add_gridspec(2, 2 + len(spaces))
    print(f"statistics (Figure 6): example {exp}")
    stats = Stats("Figure6")

    # C: the example's tuning curves
    for j, space in enumerate(spaces):
        ax = fig.add_subplot(grid[0, j])
        sub = trials[trials["space_name"] == space]
        for k, g in sub.groupby("eig_id"):
            by = g.groupby("x")["pref_unit_resp"]
            m, se = by.mean(), by.std(ddof=1) / np.sqrt(by.count())
            ax.errorbar(m.index, m, yerr=se, fmt="o-", ms=3, lw=1, capsize=2, label=f"axis {k}")
            groups = [x["pref_unit_resp"].to_numpy() for _, x in g.groupby("x")]
            if np.ptp(g["pref_unit_resp"]) > 0:
                res = f_oneway(*groups)
                f_val, p = float(res.statistic), float(res.pvalue)
            else:
                f_val, p = float("nan"), 1.0
            example = k == sub["eig_id"].min()
            extra = "" if example and j == 0 else "extra: the paper tests its example axis (class 0) only"
            if extra and not args.extras:
                continue
            stats.add("6C", "one-way ANOVA across positions", f_val, p, len(g), bool(p < 0.01), area=space, block=int(k),
                      correction="none (p < .01)", subset=exp, note=extra)
            print(f"  C {space} axis {k}: ANOVA F = {f_val:.4f}, p = {fmt_p(p)}; range of code distance "
                  f"[{g['lin_dist'].min():.3g}, {g['lin_dist'].max():.3g}]")
            if example and (j == 0 or args.extras):     # the paper's three curve fits on its example axis
                x, y = g["x"].to_numpy(float), g["pref_unit_resp"].to_numpy(float)
                params, r2_gauss = fit_gaussian(x, y)
                slope, icpt, r2_ols = fit_ols(x, y)
                gpr, r2_gpr = fit_gpr(x, y)
                xs = np.linspace(x.min(), x.max(), 100)
                if params is not None:
                    ax.plot(xs, gaussian_with_baseline(xs, *params), color="k", lw=1.2, label="Gaussian fit")
                ax.plot(xs, slope * xs + icpt, color="magenta", ls="--", lw=1, label="OLS fit")
                ax.plot(xs, gpr.predict(xs.reshape(-1, 1)), color="red", lw=1, label="GPR mean")
                gtext = ("failed" if params is None else
                         "amplitude {:.4f}, mean {:.4f}, sd {:.4f}, baseline {:.4f}".format(*params))
                for test, r2, note in (("Gaussian+baseline fit R2", r2_gauss, gtext),
                                       ("OLS fit R2", r2_ols, f"slope {slope:.4f}, intercept {icpt:.4f}"),
                                       ("GPR fit R2", r2_gpr, str(gpr.kernel_))):
                    stats.add("6C", test, r2, float("nan"), len(g), "", area=space, block=int(k), subset=exp,
                              note=note if not extra else f"{note}; {extra}")
                print(f"  C {space} axis {k} fits: Gaussian R2 = {r2_gauss:.4f} ({gtext}); OLS R2 = {r2_ols:.4f} "
                      f"(slope {slope:.4f}, intercept {icpt:.4f}); GPR R2 = {r2_gpr:.4f} ({gpr.kernel_})")
        ax.set_xlabel("step along axis (equal pixel change per step)" if data.x_name == "step"
                      else "distance along axis (lin_dist)")
        ax.set_ylabel("response (spikes/s)")
        ax.set_title(f"C  {exp}: {SPACE_TITLES.get(space, space)}", fontsize=9)
        ax.legend(fontsize=6, frameon=False, ncol=2)

    # D: tuning heatmaps, succeeded vs failed evolutions
    for i, (which, df) in enumerate(data.avg.items()):
        if data.normalised:
            vmin, vmax, unit = 0.0, 1.0, "normalised response (mean over experiments)"
        else:
            vmin, vmax = np.quantile(df["value"].to_numpy(float), [0.02, 0.98])
            unit = "response (spikes/s)"
        for j, space in enumerate(spaces):
            if 2 * i + j >= 2 + len(spaces):
                continue
            ax = fig.add_subplot(grid[1, 2 * i + j])
            sub = df[df["space_name"] == space]
            if sub.empty:
                ax.set_axis_off()
                ax.set_title(f"D  {space}, {which}: no data", fontsize=8)
                print(f"  D {space} evolution {which}: no data")
                continue
            heat = sub.pivot_table(index="eig_id", columns="x", values="value", aggfunc="mean")
            cols = heat.columns.to_numpy(float)
            half = (cols[1] - cols[0]) / 2 if len(cols) > 1 else 0.5
            im = ax.imshow(heat.to_numpy(), aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax,
                           extent=[cols.min() - half, cols.max() + half, len(heat) - 0.5, -0.5])
            ax.set_yticks(range(len(heat)), heat.index, fontsize=6)
            fig.colorbar(im, ax=ax, fraction=0.046).set_label(unit, fontsize=7)
            n = int(sub["n"].max())
            centre = heat[0].mean() if 0 in heat.columns else float("nan")
            ends = heat[[heat.columns.min(), heat.columns.max()]].to_numpy().mean()
            print(f"  D {space} evolution {which} (n = {n}): mean {'normalised ' * data.normalised}response at the "
                  f"prototype {centre:.3f}, at the axis ends {ends:.3f}")
            ax.set_xlabel(data.x_name)
            ax.set_ylabel("axis (eigen-id)")
            ax.set_title(f"D  {space}, {sub['title'].iloc[0]}\n(n = {n})", fontsize=8)

    # E: bell-shaped vs monotonic among significantly tuned axes, and where tuning peaks
    ax = fig.add_subplot(grid[0, len(spaces)])
    ax2 = fig.add_subplot(grid[0, len(spaces) + 1])
    shape = data.shape
    groups = [g for g in (*spaces, "BigGAN succeeded", "BigGAN failed") if (shape["group"] == g).any()]
    xs, labels = [], []
    for j, group in enumerate(groups):
        mine = shape[shape["group"] == group]
        sig = mine[mine["anova_p_value"] < 0.01]
        n = len(sig)
        for k, (col, name, color) in enumerate((("gpr_y_is_bellshaped", "bell-shaped", "tab:purple"),
                                                 ("gpr_y_is_monotonic", "monotonic", "tab:olive"))):
            cnt = int(sig[col].sum())
            frac = cnt / n if n else float("nan")
            lo, hi = wilson(cnt, n)
            pos = j + (k - 0.5) * 0.35
            ax.bar(pos, frac if n else 0, 0.35, color=color, label=name if j == 0 else None,
                   yerr=[[frac - lo], [hi - frac]] if n else None, capsize=3)
            stats.add("6E", f"fraction {col} (Wilson 95%)", frac, float("nan"), n, "", area=group, ci_low=lo,
                      ci_high=hi, subset="ANOVA p < .01" + (" & is_common_axis" if data.paper else ""),
                      note=f"{cnt}/{n}; the paper draws a seaborn bootstrap CI here")
            print(f"  E {group}: {name} {cnt}/{n} = {frac:.4f} [Wilson 95% {lo:.4f}, {hi:.4f}] of axes with "
                  f"ANOVA p < .01 ({n}/{len(mine)} axes significant)")
        xs.append(j)
        labels.append(f"{group}\n(n = {n})")
    cats = sorted(set(data.peaks["peak"]), key=_sort_key)
    width = 0.8 / max(len(groups), 1)
    for j, group in enumerate(groups):
        peaks = data.peaks[data.peaks["group"] == group]["peak"]
        if peaks.empty:
            continue
        counts = peaks.value_counts().reindex(cats, fill_value=0)
        ax2.bar(np.arange(len(cats)) + (j - (len(groups) - 1) / 2) * width, counts / counts.sum(), width,
                alpha=0.7, label=f"{group} (n = {len(peaks)})")
        total = int(counts.sum())
        for c, v in counts.items():
            lo, hi = wilson(int(v), total)
            stats.add("6E", "peak location proportion (Wilson 95%)", v / total, float("nan"), total, "", area=group,
                      block=str(c), ci_low=lo, ci_high=hi, subset="p_value < .01" if data.paper else "bell-shaped",
                      note=f"{int(v)}/{total}")
        print(f"  E {group}: tuning peaks at " + ", ".join(
            f"{c}: {v} ({v / total:.4f} [{wilson(int(v), total)[0]:.4f}, {wilson(int(v), total)[1]:.4f}])"
            for c, v in counts.items() if v))
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of tuned axes")
    ax.set_title(f"E  tuning shape by {data.group_name} (ANOVA p < .01)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax2.set_xticks(range(len(cats)), cats, rotation=45, ha="right", fontsize=6)
    ax2.set_xlabel("peak location on the axis" + (" (step; bell-shaped axes)" if data.group_name == "space" else ""))
    ax2.set_ylabel("fraction of axes")
    ax2.set_title("E  where tuning peaks", fontsize=9)
    if ax2.has_data():
        ax2.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    save(fig, args.out, "Figure6_reproduction")
    stats.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Figure 6 (in silico): tuning along the principal image-change axes around each evolved prototype.

C: single-trial responses of the example experiment along each axis of both spaces
(``Figure6C_src_<exp>_sgtr_resp_df.csv``: space_name, eig_id, lin_dist, pref_unit_resp), with
one-way ANOVA across distances. D: normalised tuning averaged over experiments whose
evolution in that space succeeded, and over those that failed (heatmaps, axis x step).
E: of the axes with significant tuning (ANOVA p < .01), the fraction whose GP-fitted curve is
bell-shaped vs monotonic with Wilson 95 % CIs, and where bell-shaped curves peak.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy.stats import f_oneway

from _figcommon import arguments, first_file, fmt_p, plt, read_csv, save, wilson

SPACE_TITLES = {"fourier": "fourier (DeePSim stand-in)", "gabor": "gabor (BigGAN stand-in)"}


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "Fig6"
    example = first_file(d, "Figure6C_src_*_sgtr_resp_df.csv")
    trials = read_csv(example)
    exp = example.name.removeprefix("Figure6C_src_").removesuffix("_sgtr_resp_df.csv")
    avg = {"succeeded": read_csv(d / "Figure6D_src_prefchan_avgresp_df.csv"),
           "failed": read_csv(d / "Figure6D_src_prefchan_avgresp_df_failevol.csv")}
    shape = read_csv(d / "Figure6E_src_tuning_shape_fitting_stats_synopsis_selcolumn.csv")
    spaces = [s for s in SPACE_TITLES if s in set(trials["space_name"])]
    fig = plt.figure(figsize=(15, 8))
    grid = fig.add_gridspec(2, 2 + len(spaces))
    print(f"statistics (Figure 6): example {exp}")

    # C: the example's tuning curves
    for j, space in enumerate(spaces):
        ax = fig.add_subplot(grid[0, j])
        sub = trials[trials["space_name"] == space]
        for k, g in sub.groupby("eig_id"):
            by = g.groupby("step")["pref_unit_resp"]
            m, se = by.mean(), by.std(ddof=1) / np.sqrt(by.count())
            ax.errorbar(m.index, m, yerr=se, fmt="o-", ms=3, lw=1, capsize=2, label=f"axis {k}")
            groups = [x["pref_unit_resp"].to_numpy() for _, x in g.groupby("step")]
            p = float(f_oneway(*groups).pvalue) if np.ptp(g["pref_unit_resp"]) > 0 else 1.0
            print(f"  C {space} axis {k}: ANOVA p = {fmt_p(p)}; range of code distance "
                  f"[{g['lin_dist'].min():.3g}, {g['lin_dist'].max():.3g}]")
        ax.set_xlabel("step along axis (equal pixel change per step)")
        ax.set_ylabel("response (spikes/s)")
        ax.set_title(f"C  {exp}: {SPACE_TITLES[space]}", fontsize=9)
        ax.legend(fontsize=6, frameon=False, ncol=2)

    # D: average normalised tuning, succeeded vs failed evolutions
    for i, (which, df) in enumerate(avg.items()):
        for j, space in enumerate(spaces):
            ax = fig.add_subplot(grid[1, 2 * i + j]) if 2 * i + j < 2 + len(spaces) else None
            if ax is None:
                continue
            sub = df[df["space_name"] == space]
            if sub.empty:
                ax.set_axis_off()
                ax.set_title(f"D  {space}, evolution {which}: no experiments", fontsize=8)
                print(f"  D {space} evolution {which}: no experiments")
                continue
            heat = sub.pivot(index="eig_id", columns="step", values="norm_resp_mean")
            im = ax.imshow(heat.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                           extent=[heat.columns.min() - 0.5, heat.columns.max() + 0.5, heat.index.max() + 0.5, -0.5])
            fig.colorbar(im, ax=ax, fraction=0.046).set_label("normalised response (mean over experiments)", fontsize=7)
            n = int(sub["n_exp"].max())
            centre = heat[0].mean() if 0 in heat.columns else float("nan")
            ends = heat[[heat.columns.min(), heat.columns.max()]].to_numpy().mean()
            print(f"  D {space} evolution {which} (n = {n}): mean normalised response at the prototype "
                  f"{centre:.3f}, at the axis ends {ends:.3f}")
            ax.set_xlabel("step")
            ax.set_ylabel("axis (eigen-id)")
            ax.set_title(f"D  {space}, evolution {which} (n = {n})", fontsize=8)

    # E: bell-shaped vs monotonic among significantly tuned axes
    ax = fig.add_subplot(grid[0, len(spaces)])
    ax2 = fig.add_subplot(grid[0, len(spaces) + 1])
    xs, labels = [], []
    for j, space in enumerate(spaces):
        sig = shape[(shape["space_name"] == space) & (shape["anova_p_value"] < 0.01)]
        n = len(sig)
        total = int((shape["space_name"] == space).sum())
        for k, (col, name, color) in enumerate((("gpr_y_is_bellshaped", "bell-shaped", "tab:purple"),
                                                 ("gpr_y_is_monotonic", "monotonic", "tab:olive"))):
            cnt = int(sig[col].astype(bool).sum())
            frac = cnt / n if n else float("nan")
            lo, hi = wilson(cnt, n)
            pos = j + (k - 0.5) * 0.35
            ax.bar(pos, frac if n else 0, 0.35, color=color, label=name if j == 0 else None,
                   yerr=[[frac - lo], [hi - frac]] if n else None, capsize=3)
            print(f"  E {space}: {name} {cnt}/{n} = {frac:.2f} [Wilson 95% {lo:.2f}, {hi:.2f}] of axes with "
                  f"ANOVA p < .01 ({n}/{total} axes significant)")
        xs.append(j)
        labels.append(f"{space}\n(n = {n})")
        bell = sig[sig["gpr_y_is_bellshaped"].astype(bool)]["gpr_peak_loc"].to_numpy(float)
        if bell.size:
            ax2.hist(bell, bins=np.linspace(shape["gpr_peak_loc"].min(), shape["gpr_peak_loc"].max(), 13),
                     alpha=0.5, label=space)
            print(f"  E {space}: bell-shaped peaks at step {np.mean(bell):.2f} +/- {np.std(bell):.2f} "
                  f"(0 = the evolved prototype)")
    ax.set_xticks(xs, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of tuned axes")
    ax.set_title("E  tuning shape (ANOVA p < .01)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax2.set_xlabel("peak location of bell-shaped tuning (step)")
    ax2.set_ylabel("axes")
    ax2.set_title("E  where tuning peaks", fontsize=9)
    if ax2.has_data():
        ax2.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    save(fig, args.out, "Figure6_reproduction")
    return 0


if __name__ == "__main__":
    sys.exit(main())

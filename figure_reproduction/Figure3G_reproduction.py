#!/usr/bin/env python
"""Figure 3G (in silico): do prototypes that look more different drive the neuron more differently?

For every paired evolution, the distance between the two threads' prototypes (x: feature
cosine distance and RF-focused pixel distance) against how differently the neuron responds
to them (y: PSTH MAE and activation MAE); Pearson r over the valid experiments where both
threads succeeded (p < .05 and the response went up), as in the reference script.
(``Fig3G_proto_imdist_psth_covstr_sim_df.csv`` joined to ``Fig3_meta_df.csv`` on Exp.) The paper's
download has the same two files; they are joined by row when they have no ``Exp`` column (the
paper's script masks one with the other by position), and without the t statistics
``t_maxinit_0/1`` success is p < .05 alone, as in the paper.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy.stats import pearsonr

import pandas as pd

from _figcommon import Stats, arguments, as_bool, fail, fmt_p, plt, read_csv, save

X_COLS = {"cosine_reevol_resnet_avgpool": "feature cosine distance",
          "reevol_pix_RNrobust_L4focus": "RF pixel distance (1 - r)"}
Y_COLS = {"psth_MAE": "PSTH MAE (max-normalised)", "act_MAE": "activation MAE (normalised)"}
AREA_COLORS = {"V1": "tab:green", "V4": "tab:purple", "IT": "tab:orange"}


def _load(d) -> pd.DataFrame:
    """One row per experiment: the distances, visual_area, valid and whether both threads succeeded."""
    meta = read_csv(d / "Fig3_meta_df.csv")
    dist = read_csv(d / "Fig3G_proto_imdist_psth_covstr_sim_df.csv")
    if "Exp" in meta and "Exp" in dist:
        meta = meta.set_index("Exp").reindex(dist["Exp"]).reset_index(drop=True)
    elif len(meta) != len(dist):
        fail(f"Fig3_meta_df.csv has {len(meta)} rows but the distance table {len(dist)}, and no Exp column to join on")
    both = np.ones(len(dist), dtype=bool)
    for t in (0, 1):
        both &= meta[f"p_maxinit_{t}"].to_numpy(float) < 0.05
        if f"t_maxinit_{t}" in meta:
            both &= meta[f"t_maxinit_{t}"].to_numpy(float) > 0
    return dist.assign(valid=as_bool(meta["valid"]), both=both)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "Fig3"
    df = _load(d)
    sel = df[df["valid"] & df["both"]]
    paper = "Exp" not in df          # ours are keyed by Exp; the paper's areas are real ones
    print(f"statistics (Figure 3G): {len(sel)} of {len(df)} experiments valid with both threads successful "
          f"({', '.join(f'{a}: {n}' for a, n in sel['visual_area'].value_counts().sort_index().items())})")
    stats = Stats("Figure3G")
    fig, axes = plt.subplots(len(Y_COLS), len(X_COLS), figsize=(8, 6.5))
    for i, (ycol, ylab) in enumerate(Y_COLS.items()):
        for j, (xcol, xlab) in enumerate(X_COLS.items()):
            ax = axes[i, j]
            for area, g in sel.groupby("visual_area"):
                ax.scatter(g[xcol], g[ycol], s=14, color=AREA_COLORS.get(area, "k"), label=area if paper else f"{area}-like",
                           alpha=0.8)
            x, y = sel[xcol].to_numpy(float), sel[ycol].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                r, p = pearsonr(x[ok], y[ok])
                stats.add("3G", f"pearsonr {ycol} vs {xcol}", r, p, int(ok.sum()), bool(p < 0.05), area="all",
                          correction="none (p < .05)", subset="valid & both p_maxinit < .05")
                text = f"r = {r:.2f}, p = {fmt_p(p)}, n = {ok.sum()}"
                slope, icpt = np.polyfit(x[ok], y[ok], 1)
                xs = np.linspace(x[ok].min(), x[ok].max(), 2)
                ax.plot(xs, slope * xs + icpt, color="k", lw=0.8)
            else:
                text = f"n = {ok.sum()}: too few for a correlation"
            print(f"  {ycol} vs {xcol}: {text}")
            ax.set_title(text, fontsize=8)
            ax.set_xlabel(xlab, fontsize=8)
            ax.set_ylabel(ylab, fontsize=8)
            if i == 0 and j == 0 and len(sel):
                ax.legend(fontsize=7, frameon=False)
    fig.suptitle("G  prototype image distance vs response difference (both threads successful)", fontsize=10)
    fig.tight_layout()
    save(fig, args.out, "Figure3G_reproduction")
    stats.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

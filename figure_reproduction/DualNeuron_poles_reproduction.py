#!/usr/bin/env python
"""DualNeuron-style pole figure (in silico): MEI/LEI pairs and activation curves around the baseline.

For every model neuron: the gradient MEI and LEI (``actmax.core.synthesize``), its most and least
activating natural patches (MAI/LAI), and its activation curve over natural patches (sorted
responses, adaptively sampled) with the baseline (response to grey) and the MEI/LEI
responses beyond the natural range. Bidirectional neurons (the dual-feature, V4-like units)
sit at an elevated baseline and are driven both above and below it.
(``source_data/DualNeuron/``: pole_images.npz, poles_units.csv, activation_curves.csv.)
"""
from __future__ import annotations

import sys

import numpy as np

from _figcommon import Stats, arguments, need, plt, read_csv, save

COLUMNS = (("mei", "MEI"), ("lei", "LEI"), ("mai", "best natural"), ("lai", "worst natural"))


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "DualNeuron"
    with np.load(need(d / "pole_images.npz"), allow_pickle=False) as z:
        images = {k: z[k] if k == "units" else z[k].astype(np.float32) for k in z.files}
    units = read_csv(d / "poles_units.csv").set_index("unit")
    curves = read_csv(d / "activation_curves.csv")
    order = list(images["units"])
    if order != list(units.index):
        raise SystemExit("pole_images.npz and poles_units.csv list different units")
    n = len(order)
    fig, axes = plt.subplots(n, len(COLUMNS) + 1, figsize=(10, 1.75 * n),
                             gridspec_kw={"width_ratios": [1] * len(COLUMNS) + [2.4]})
    axes = np.atleast_2d(axes)
    print("statistics (DualNeuron poles): unit, kind, baseline, MEI/LEI response, natural range, "
          "similarity to the known optimum, bidirectionality")
    for i, u in enumerate(order):
        row = units.loc[u]
        for j, (key, title) in enumerate(COLUMNS):
            ax = axes[i, j]
            ax.imshow(images[key][i], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
        axes[i, 0].set_ylabel(f"unit {u}\n{row['kind']} ({row['visual_area']})", fontsize=8)
        ax = axes[i, -1]
        c = curves[curves["unit"] == u].sort_values("rank_fraction")
        ax.plot(c["rank_fraction"], c["response"], ".-", color="0.3", ms=2, lw=0.8, label="natural patches")
        ax.axhline(row["baseline"], color="tab:green", lw=1, ls="--", label="baseline (grey)")
        ax.axhline(row["mei_resp"], color="tab:red", lw=1, label="MEI")
        ax.axhline(row["lei_resp"], color="tab:blue", lw=1, label="LEI")
        ax.fill_between([0, 1], row["lei_resp"], row["baseline"], color="tab:blue", alpha=0.06)
        ax.fill_between([0, 1], row["baseline"], row["mei_resp"], color="tab:red", alpha=0.06)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("response", fontsize=7)
        if i == 0:
            ax.set_title("activation curve (sorted natural responses)", fontsize=9)
            ax.legend(fontsize=6, frameon=False, ncol=2)
        if i == n - 1:
            ax.set_xlabel("rank fraction", fontsize=8)
        print(f"  unit {u} {row['kind']:7s}: baseline {row['baseline']:.3g}, MEI {row['mei_resp']:.3g} "
              f"(optimum {row['optimum_high_resp']:.3g}), LEI {row['lei_resp']:.3g} (optimum {row['optimum_low_resp']:.3g}), "
              f"natural [{row['nat_min']:.3g}, {row['nat_max']:.3g}], similarity MEI {row['mei_similarity']:.2f} "
              f"LEI {row['lei_similarity']:.2f}, bidirectionality {row['bidirectionality']:.2f}")
    print("  per kind (mean): " + "; ".join(
        f"{k}: bidirectionality {g['bidirectionality'].mean():.2f}, excitation {g['excitation'].mean():.3g}, "
        f"suppression {g['suppression'].mean():.3g}, MEI beyond natural {(g['mei_resp'] > g['nat_max']).mean():.0%}, "
        f"LEI below natural {(g['lei_resp'] < g['nat_min']).mean():.0%}"
        for k, g in units.groupby("kind")))
    print("  (complex cells' least exciting input is not unique — grey is one of many — so their LEI "
          "similarity is not meaningful)")
    fig.tight_layout()
    save(fig, args.out, "DualNeuron_poles_reproduction")
    Stats("DualNeuron_poles").write(args.out)   # no statistical test in this figure: the contract's file, no rows
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""MEI vs Gabor (in silico): how Gabor-like are the MEIs, and does the fit recover the receptive field?

Each MEI (and, for comparison, the known optimum and the best natural patch) is fitted with
a 2-D Gabor by least squares (``actmax.core.apps.analysis.compare_to_gabor``). Shown: MEI, fitted Gabor
and residual per unit; the fit's R^2 per image type; the fitted centre and orientation
against the model neuron's true receptive field. (``source_data/MEIvsGabor/``.)
"""
from __future__ import annotations

import sys

import numpy as np

from _figcommon import Stats, arguments, need, plt, read_csv, save

IMAGE_TYPES = (("optimum", "known optimum"), ("mei", "MEI"), ("mai", "best natural patch"))


def _angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orientation difference in degrees, modulo 180."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % np.pi
    return np.degrees(np.minimum(d, np.pi - d))


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "MEIvsGabor"
    fits = read_csv(d / "gabor_fits.csv")
    with np.load(need(d / "mei_and_gabor.npz"), allow_pickle=False) as z:
        units, mei, gabor = list(z["units"]), z["mei"].astype(np.float32), z["gabor_fit"].astype(np.float32)
    n = len(units)
    fig = plt.figure(figsize=(12, 2 + 1.1 * n))
    grid = fig.add_gridspec(n, 6)
    for i, u in enumerate(units):
        kind = fits[(fits["unit"] == u)]["kind"].iloc[0]
        for j, (img, title, cmap, lim) in enumerate(((mei[i], "MEI", "gray", (0, 1)), (gabor[i], "Gabor fit", "gray", (0, 1)),
                                                     (mei[i] - gabor[i], "residual", "RdBu_r", (-0.25, 0.25)))):
            ax = fig.add_subplot(grid[i, j])
            ax.imshow(img, cmap=cmap, vmin=lim[0], vmax=lim[1])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"unit {u}\n{kind}", fontsize=7)
    print("statistics (MEI vs Gabor):")
    ax = fig.add_subplot(grid[: n // 2 or 1, 3:])
    kinds = sorted(fits["kind"].unique())
    for k, (key, name) in enumerate(IMAGE_TYPES):
        sub = fits[fits["image"] == key]
        for m, kind in enumerate(kinds):
            vals = sub[sub["kind"] == kind]["gabor_r2"].to_numpy(float)
            pos = m + (k - 1) * 0.27
            ax.scatter(np.full(vals.size, pos), vals, s=12, color=f"C{k}", label=name if m == 0 else None)
            if vals.size:
                ax.plot([pos - 0.1, pos + 0.1], [np.median(vals)] * 2, color="k", lw=1)
            print(f"  Gabor R^2 of the {name}, {kind} cells: median {np.median(vals):.3f} "
                  f"(min {vals.min():.3f}, n = {vals.size})")
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel("Gabor fit R^2")
    ax.set_ylim(min(0, fits["gabor_r2"].min()) - 0.05, 1.05)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("how Gabor-like is each image", fontsize=9)
    ax = fig.add_subplot(grid[n // 2 or 1:, 3:])
    meis = fits[fits["image"] == "mei"]
    centre_err = np.hypot(meis["gabor_x0"] - meis["rf_x0"], meis["gabor_y0"] - meis["rf_y0"])
    theta_err = _angle_error(meis["gabor_theta"], meis["rf_theta"])
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(len(kinds), 2)))
    for i, kind in enumerate(kinds):
        sel = (meis["kind"] == kind).to_numpy()
        if sel.any():
            ax.scatter(centre_err[sel], theta_err[sel], color=colours[i], s=20, label=f"{kind} cells (n = {sel.sum()})")
    ax.legend(fontsize=7, frameon=False, title="model-neuron kind (labels: unit)", title_fontsize=7)
    for _, row in meis.iterrows():
        ax.annotate(str(int(row["unit"])), (np.hypot(row["gabor_x0"] - row["rf_x0"], row["gabor_y0"] - row["rf_y0"]),
                                            _angle_error(row["gabor_theta"], row["rf_theta"])), fontsize=6)
    ax.set_xlabel("fitted centre - true RF centre (px)")
    ax.set_ylabel("orientation error (deg)")
    ax.set_title("MEI Gabor fit vs the true receptive field", fontsize=9)
    print(f"  MEI fits vs true RF: centre error median {np.median(centre_err):.2f} px (max {centre_err.max():.2f}), "
          f"orientation error median {np.median(theta_err):.1f} deg (max {theta_err.max():.1f})")
    ratio = (meis["gabor_sigma"] / meis["rf_sigma"]).to_numpy(float)
    print(f"  fitted / true envelope sigma: median {np.median(ratio):.2f}; MEI spectrum peak "
          f"{meis['spectrum_peak'].median():.3f} cycles/px; 2-fold symmetry median {meis['symmetry_2'].median():.2f}")
    fig.tight_layout()
    save(fig, args.out, "MEI_vs_Gabor_reproduction")
    Stats("MEI_vs_Gabor").write(args.out)   # no statistical test in this figure: the contract's file, no rows
    return 0


if __name__ == "__main__":
    sys.exit(main())

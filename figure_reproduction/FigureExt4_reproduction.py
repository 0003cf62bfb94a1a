#!/usr/bin/env python
"""Extended Figure 4: when in the response does the evolution's activation gain arise?

B: per bin size (5, 10, 20, 25, 50 ms) the share of each experiment's activation gain that
falls in each time bin (``FigureExt4B_{DeePSim,BigGAN}_diff_attrib_norm_bin_tsr_{N}ms.csv``),
mean +- SEM over the experiments whose thread succeeded (``p_maxinit < .01``), per area;
per bin DeePSim vs BigGAN by ``ttest_ind`` with Benjamini-Hochberg FDR (alpha .05) across bins.
C: per window length (10, 20, 25, 50 ms) the block-by-block trajectories of the response in
every consecutive window, normalised by the experiment's maximum over both threads and all
blocks (``FigureExtended4C_src_normresp_wdw_{start}-{stop}_{DeePSim,BigGAN}_mean.csv``), over
experiments where both threads succeeded; per block ``ttest_rel`` with BH-FDR (alpha .05).
Masks come from ``FigureExt4_meta_df.csv`` (``visual_area``, ``valid``, ``p_maxinit_0/1``).
Reads the paper's tables or the in-silico ones (``make_source_data.py``; there the time courses
come from a declared temporal model, not from data). Bin sizes and window lengths without
tables, and areas without experiments, are named and skipped.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, ttest_ind, ttest_rel

from _figcommon import SPACE_COLORS, Stats, arguments, fail, fmt_p, label, plt, read_csv, save

SPACES = ("DeePSim", "BigGAN")
AREAS = ("V1", "V4", "IT")
BIN_SIZES = (5, 10, 20, 25, 50)
WINDOW_LENGTHS = (10, 20, 25, 50)
SUCCESS_P = 0.01
FDR_ALPHA = 0.05
SPAN_MS = 200
STATS = Stats("FigureExt4")
PAPER = {"file_set": False}      # set in main: the paper's tables (real labels) or ours (stand-in names)


def space_label(space: str) -> str:
    return label(space, PAPER["file_set"])


def bh_reject(pvals: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg rejections at ``FDR_ALPHA`` among the finite p-values (NaN = not tested)."""
    reject = np.zeros(pvals.shape, dtype=bool)
    ok = np.isfinite(pvals)
    if ok.any():
        reject[ok] = false_discovery_control(pvals[ok], method="bh") < FDR_ALPHA
    return reject


def read_meta(d: Path) -> pd.DataFrame:
    meta = read_csv(d / "FigureExt4_meta_df.csv", index_col=0)
    missing = {"visual_area", "valid", "p_maxinit_0", "p_maxinit_1"} - set(meta.columns)
    if missing:
        fail(f"{d / 'FigureExt4_meta_df.csv'} lacks columns {sorted(missing)}")
    meta["valid"] = meta["valid"].astype(bool)
    return meta


def panel_b(ax: plt.Axes, tsr: np.ndarray, meta: pd.DataFrame, area: str, bin_ms: int) -> str:
    """One area's attribution curves and per-bin tests; returns its statistics line."""
    ticks = np.arange(0, SPAN_MS, bin_ms) + bin_ms / 2
    base = (meta["visual_area"] == area).to_numpy() & meta["valid"].to_numpy()
    groups, parts = [], []
    for t, space in enumerate(SPACES):
        rows = tsr[base & (meta[f"p_maxinit_{t}"] < SUCCESS_P).to_numpy(), :, t]
        rows = rows[np.isfinite(rows).all(1)]          # no gain to attribute: nothing to average
        groups.append(rows)
        if len(rows):
            m, se = rows.mean(0), rows.std(0) / np.sqrt(len(rows))
            ax.plot(ticks, m, color=SPACE_COLORS[space], label=f"{space_label(space)} n = {len(rows)}")
            ax.fill_between(ticks, m - se, m + se, color=SPACE_COLORS[space], alpha=0.3)
            k = int(np.argmax(m))
            parts.append(f"{space} n = {len(rows)}, peak share {m[k]:.4f} in bin {ticks[k] - bin_ms / 2:g}-"
                         f"{ticks[k] + bin_ms / 2:g} ms, share before 50 ms {m[ticks < 50].sum():.4f}")
        else:
            parts.append(f"{space} n = 0")
    a, b = groups
    tests = [ttest_ind(a[:, i], b[:, i]) if len(a) > 1 and len(b) > 1 else None for i in range(len(ticks))]
    pvals = np.array([float(r.pvalue) if r is not None else np.nan for r in tests])
    tvals = np.array([float(r.statistic) if r is not None else np.nan for r in tests])
    fdr = bh_reject(pvals)
    for i in range(len(ticks)):
        STATS.add("Ext4B", "ttest_ind DeePSim vs BigGAN (successful threads)", tvals[i], pvals[i],
                  len(a) + len(b), bool(fdr[i]), area=area, window_ms=f"{ticks[i] - bin_ms / 2:g}-{ticks[i] + bin_ms / 2:g}",
                  correction="BH-FDR .05 across bins", subset="valid & thread p_maxinit < .01",
                  note=("" if not fdr[i] else "DeePSim > BigGAN" if tvals[i] > 0 else "BigGAN > DeePSim"))
    top = max([g.mean(0).max() for g in groups if len(g)], default=1.0)
    for k, (sig, name) in enumerate(((np.nan_to_num(pvals, nan=1) < 0.05, "p < .05"), (fdr, "FDR < .05"))):
        y = top * (1.08 + 0.08 * k)
        for sign, color in ((1, SPACE_COLORS["DeePSim"]), (-1, SPACE_COLORS["BigGAN"])):
            hit = sig & (np.sign(tvals) == sign)
            ax.plot(ticks[hit], np.full(hit.sum(), y), ".", color=color, ms=4)
    ax.axhline(0, color="k", ls="--", lw=0.8)
    ax.set_xlim(0, SPAN_MS)
    ax.set_ylim(top=top * 1.45)          # room for the legend above the significance dots
    ax.set_title(f"B  {area}{'' if PAPER['file_set'] else '-like'}, {bin_ms} ms bins", fontsize=9)
    ax.set_xlabel("time after image onset (ms)")
    ax.set_ylabel("share of activation gain")
    if any(len(g) for g in groups):
        ax.legend(fontsize=6, frameon=False, loc="upper left")
    where = ", ".join(f"{ticks[i] - bin_ms / 2:g}-{ticks[i] + bin_ms / 2:g}"
                      f"({'D' if tvals[i] > 0 else 'B'})" for i in np.flatnonzero(fdr)) or "none"
    best = fmt_p(np.nanmin(pvals)) if np.isfinite(pvals).any() else "nan"
    return (f"  B {bin_ms} ms {area}: " + "; ".join(parts) +
            f"; bins DeePSim != BigGAN at FDR .05 (D = DeePSim larger): {where}; smallest p = {best}")


def figure_b(d: Path, meta: pd.DataFrame, areas: list[str], out: Path) -> None:
    sizes = [n for n in BIN_SIZES if all((d / f"FigureExt4B_{s}_diff_attrib_norm_bin_tsr_{n}ms.csv").exists()
                                         for s in SPACES)]
    absent = [n for n in BIN_SIZES if n not in sizes]
    print(f"  B bin sizes shown: {sizes or 'none'} ms; absent (no tables): {absent or 'none'}")
    if not sizes:
        return
    fig, axes = plt.subplots(len(sizes), len(areas), figsize=(3.6 * len(areas), 2.9 * len(sizes)), squeeze=False)
    for i, n in enumerate(sizes):
        frames = [read_csv(d / f"FigureExt4B_{s}_diff_attrib_norm_bin_tsr_{n}ms.csv", index_col=0) for s in SPACES]
        if any(f.shape != (len(meta), SPAN_MS // n) for f in frames):
            fail(f"FigureExt4B {n} ms tables must be {len(meta)} experiments x {SPAN_MS // n} bins, "
                 f"got {[f.shape for f in frames]}")
        tsr = np.stack([f.to_numpy(float) for f in frames], axis=-1)      # (experiments, bins, thread)
        for j, area in enumerate(areas):
            print(panel_b(axes[i, j], tsr, meta, area, n))
    fig.suptitle(f"Extended Fig. 4B: activation gain attributed to time bins (thread success p < {SUCCESS_P}; "
                 "dots: DeePSim vs BigGAN, lower row p < .05, upper row FDR < .05)", fontsize=9)
    fig.tight_layout()
    save(fig, out, "FigureExt4B_reproduction")


def figure_c(d: Path, meta: pd.DataFrame, areas: list[str], out: Path) -> None:
    both = (meta["valid"] & (meta["p_maxinit_0"] < SUCCESS_P) & (meta["p_maxinit_1"] < SUCCESS_P)).to_numpy()

    def path(a: int, b: int, space: str) -> Path:
        return d / f"FigureExtended4C_src_normresp_wdw_{a}-{b}_{space}_mean.csv"

    counts = {a: int((both & (meta["visual_area"] == a).to_numpy()).sum()) for a in areas}
    print(f"  C experiments where both threads succeeded: {counts}")
    areas = [a for a in areas if counts[a]]
    if PAPER["file_set"]:     # the paper's script draws and tests V4 and IT only
        areas = [a for a in areas if a != "V1"]
    lengths = [n for n in WINDOW_LENGTHS
               if all(path(a, a + n, s).exists() for a in range(0, SPAN_MS, n) for s in SPACES)]
    absent = [n for n in WINDOW_LENGTHS if n not in lengths]
    print(f"  C window lengths shown: {lengths or 'none'} ms; absent (no tables): {absent or 'none'}")
    if not areas:
        print("  C not drawn: no area has an experiment where both threads succeeded")
        return
    for n in lengths:
        starts = list(range(0, SPAN_MS, n))
        fig, axes = plt.subplots(len(areas), len(starts), figsize=(2.4 * len(starts), 2.6 * len(areas) + 0.5),
                                 squeeze=False, sharey=True)
        for c, a in enumerate(starts):
            arr = [read_csv(path(a, a + n, s)).to_numpy(float) for s in SPACES]    # (experiments, blocks)
            if any(x.shape[0] != len(meta) for x in arr):
                fail(f"{path(a, a + n, 'DeePSim').name}: {arr[0].shape[0]} rows, the meta table has {len(meta)}")
            for r, area in enumerate(areas):
                ax = axes[r, c]
                msk = both & (meta["visual_area"] == area).to_numpy()
                fc, bg = arr[0][msk], arr[1][msk]
                blocks = np.arange(fc.shape[1])
                for x, space in ((fc, "DeePSim"), (bg, "BigGAN")):
                    m, se = np.nanmean(x, 0), np.nanstd(x, 0) / np.sqrt(len(x))
                    ax.plot(blocks, m, color=SPACE_COLORS[space], lw=1.5, label=space_label(space))
                    ax.fill_between(blocks, m - se, m + se, color=SPACE_COLORS[space], alpha=0.25)
                if len(fc) > 1:
                    res = ttest_rel(fc, bg, axis=0, nan_policy="omit")
                    pvals, tvals = np.asarray(res.pvalue, float), np.asarray(res.statistic, float)
                else:
                    pvals = tvals = np.full(len(blocks), np.nan)
                sig = bh_reject(pvals)
                for k in range(len(blocks)):
                    STATS.add("Ext4C", "ttest_rel DeePSim vs BigGAN", tvals[k], pvals[k], int(msk.sum()), bool(sig[k]),
                              area=area, block=k, window_ms=f"{a}-{a + n}", correction="BH-FDR .05 across blocks",
                              subset="valid & both p_maxinit < .01",
                              note=("" if not sig[k] else "DeePSim > BigGAN" if tvals[k] > 0 else "BigGAN > DeePSim"))
                for sign, space in ((1, "DeePSim"), (-1, "BigGAN")):
                    hit = sig & (np.sign(tvals) == sign)
                    ax.plot(blocks[hit], np.full(hit.sum(), 1.22), ".", color=SPACE_COLORS[space], ms=3)
                ax.set_ylim(0, 1.3)
                ax.set_xlim(-0.5, len(blocks) - 0.5)
                ax.set_title(f"[{a}, {a + n}) ms", fontsize=8)
                if c == 0:
                    ax.set_ylabel(f"{area}{'' if PAPER['file_set'] else '-like'} (n = {msk.sum()})\nmax-normalised response", fontsize=8)
                if r == len(areas) - 1:
                    ax.set_xlabel("block")
                last = f"last block DeePSim {np.nanmean(fc[:, -1]):.3f}, BigGAN {np.nanmean(bg[:, -1]):.3f}"
                print(f"  C {n} ms [{a}-{a + n}) {area} (n = {msk.sum()}): blocks with DeePSim > BigGAN at FDR .05: "
                      f"{int((sig & (tvals > 0)).sum())}, BigGAN > DeePSim: {int((sig & (tvals < 0)).sum())}; {last}")
        axes[0, 0].legend(fontsize=6, frameon=False, loc="lower right")
        fig.suptitle(f"Extended Fig. 4C: max-normalised trajectories in {n} ms windows (both threads succeeded, "
                     f"p < {SUCCESS_P}; dots: blocks DeePSim != BigGAN, paired t, FDR < .05)", fontsize=9)
        fig.tight_layout()
        save(fig, out, f"FigureExt4C_{n}ms_reproduction")


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "ExtendedFig4"
    meta = read_meta(d)
    PAPER["file_set"] = "kind" not in meta      # ours carry the model neuron's kind
    areas = [a for a in AREAS if ((meta["visual_area"] == a) & meta["valid"]).any()]
    if not areas:
        fail(f"no valid experiment in V1, V4 or IT in {d / 'FigureExt4_meta_df.csv'}")
    print(f"statistics (Extended Figure 4): {len(meta)} experiments, {int(meta['valid'].sum())} valid; "
          f"areas shown {areas}, absent (no experiments): {[a for a in AREAS if a not in areas] or 'none'}")
    figure_b(d, meta, areas, args.out)
    figure_c(d, meta, areas, args.out)
    STATS.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Figure 5: when in the response does one space's prototype beat the other's?

By default every number is what the paper's own script (Dynamic-Neuron-GAN-Alignment,
``figure_reproduction/Figure5_reproduction.py``) computes from the same files:

A: max-normalised mean PSTHs (+/- SEM, ddof 0) at the first and the last block, per area and space,
over ``valid & anysucc005`` experiments
(``Figure5A_src_all_exps_maxnorm_mean_psth_per_block{NN}_{DeePSim,BigGAN}_mean.csv``).
C: for each 10 ms window (0-200 ms), per area and *per block* (column of
``Figure5C_src_normresp_wdw_{start}-{end}_{DeePSim,BigGAN}_mean.csv``, experiments x blocks, padded past
the last recorded block), a paired t-test DeePSim vs BigGAN over ``valid & bothsucc005`` experiments,
Benjamini-Hochberg FDR (alpha .05) across the blocks of that window and area; a significant block is
drawn blue (DeePSim > BigGAN, t > 0) or red (BigGAN > DeePSim), as the paper plots it.

The paper's experiments and areas come from ``Figure5_src_exp_masks_and_succ_labels.csv`` (rows
matched by position, as its script does). Our in-silico tables (``make_source_data.py``; time
courses from the declared temporal model, not data) hold one column per window, the mean of the
last two blocks (``Figure5C_src_normresp_wdw_{start}-{end}_last2blocks.csv``): there the same test
runs on that single column (block ``last``), and 5A takes ``anysucc005`` from ``../Fig4``'s masks.

``--extras`` adds our earlier summary as labelled extra rows: each window collapsed to the mean of
its last two blocks, one paired t-test per window, FDR across the 20 windows (both-successful and
all-valid experiments). Labels are the paper's on its file set, "DeePSim (fourier)" ... on ours.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from _figcommon import (SPACE_COLORS, Stats, arguments, as_bool, bh_fdr, fail, fmt_p, label, matrix, need, plt,
                        read_csv, save)

SPACES = ("DeePSim", "BigGAN")


def _windows(d: Path) -> list[tuple[int, int, str]]:
    """(start, end, file tail) of every 10 ms window: ``last2blocks`` (ours) or ``{space}_mean`` (the paper's)."""
    found = set()
    for path in need(d).glob("Figure5C_src_normresp_wdw_*.csv"):
        m = re.fullmatch(r"Figure5C_src_normresp_wdw_(\d+)-(\d+)_(last2blocks|DeePSim_mean)\.csv", path.name)
        if m:
            found.add((int(m.group(1)), int(m.group(2)), m.group(3)))
    if not found:
        fail(f"no Figure5C_src_normresp_wdw_<start>-<end>_... tables in {d}")
    return sorted(found)


def _experiments(d: Path, windows: list[tuple[int, int, str]]) -> pd.DataFrame:
    """One row per experiment: Exp (when known), visual_area, valid, bothsucc005."""
    masks_path = d / "Figure5_src_exp_masks_and_succ_labels.csv"
    if windows[0][2] == "last2blocks":
        first = read_csv(d / f"Figure5C_src_normresp_wdw_{windows[0][0]}-{windows[0][1]}_last2blocks.csv")
        exps = first[["Exp", "visual_area", "valid", "bothsucc005"]].assign(
            valid=lambda f: as_bool(f["valid"]), bothsucc005=lambda f: as_bool(f["bothsucc005"]))
        fig4 = d.parent / "Fig4" / "Figure4_src_exp_masks_and_succ_labels.csv"
        if fig4.exists():   # the same experiments; our 5C tables carry no anysucc005
            anys = read_csv(fig4).set_index("Exp")["anysucc005"].reindex(exps["Exp"])
            exps["anysucc005"] = as_bool(anys.fillna(False).to_numpy())
        else:
            exps["anysucc005"] = exps["bothsucc005"]
            print(f"  (no {fig4}: 5A uses both-successful experiments for 'any success')")
        return exps
    masks = read_csv(masks_path)
    area = np.full(len(masks), "", dtype=object)
    for a in ("V1", "V4", "IT"):
        area[as_bool(masks[f"{a}msk"])] = a
    return pd.DataFrame({"visual_area": area, "valid": as_bool(masks["valid"]),
                         "anysucc005": as_bool(masks["anysucc005"]), "bothsucc005": as_bool(masks["bothsucc005"])})


def _load(d: Path):
    """Experiments, 5A PSTHs ((block, space) -> experiments x ms) and 5C tables (start, end, per-experiment frame)."""
    windows = _windows(d)
    exps = _experiments(d, windows)
    blocks = sorted({int(m.group(1)) for p in need(d).glob("Figure5A_src_*_per_block*_DeePSim_mean.csv")
                     if (m := re.search(r"per_block(\d+)_", p.name))})
    if len(blocks) < 2:
        fail(f"expected Figure5A tables for a first and a last block in {d}")
    psth = {}
    for b in (blocks[0], blocks[-1]):
        for s in SPACES:
            path = d / f"Figure5A_src_all_exps_maxnorm_mean_psth_per_block{b:02d}_{s}_mean.csv"
            rows, values = matrix(path)
            if rows is not None and "Exp" in exps:
                values = pd.DataFrame(values, index=rows).reindex(exps["Exp"]).to_numpy(float)
            if len(values) != len(exps):
                fail(f"{path.name} has {len(values)} rows for {len(exps)} experiments")
            psth[(b, s)] = values
    tables = []      # (start, end, {space: experiments x blocks})
    for start, end, tail in windows:
        stem = f"Figure5C_src_normresp_wdw_{start}-{end}"
        if tail == "last2blocks":   # ours: one column, the mean of the last two blocks
            df = read_csv(d / f"{stem}_last2blocks.csv").set_index("Exp").reindex(exps["Exp"])
            values = {s: df[s].to_numpy(float)[:, None] for s in SPACES}
        else:                       # the paper's: whole (padded) trajectories
            values = {s: matrix(d / f"{stem}_{s}_mean.csv")[1] for s in SPACES}
            if any(len(v) != len(exps) for v in values.values()):
                fail(f"{stem}_*_mean.csv: {len(values['DeePSim'])} rows, the masks file has {len(exps)}")
        tables.append((start, end, values))
    paper = windows[0][2] != "last2blocks"
    return exps, blocks[0], blocks[-1], psth, tables, paper


def per_block_tests(fc: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired t (DeePSim - BigGAN) and p at every block (column), and BH-FDR rejections across the blocks."""
    if len(fc) >= 2:
        res = ttest_rel(fc, bg, axis=0)
        t, p = np.atleast_1d(np.asarray(res.statistic, float)), np.atleast_1d(np.asarray(res.pvalue, float))
    else:
        t = p = np.full(fc.shape[1], np.nan)
    return t, p, bh_fdr(p)[1]


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "Fig5"
    exps, first, last, psth, tables, paper = _load(d)
    stats = Stats("Figure5")
    windows = [(start, end) for start, end, _ in tables]
    areas = [a for a in ("V1", "V4", "IT") if (exps["visual_area"] == a).any()]
    c_areas = [a for a in areas if a != "V1"] if paper else areas     # the paper tests V4 and IT
    fig, axes = plt.subplots(2, len(areas), figsize=(5 * len(areas), 6.5), squeeze=False)
    print(f"statistics (Figure 5): blocks {first} and {last}; {len(windows)} windows of 10 ms")
    for j, area in enumerate(areas):
        ax = axes[0, j]
        sel = ((exps["visual_area"] == area) & exps["valid"] & exps["anysucc005"]).to_numpy()
        for s in SPACES:
            for b, ls in ((first, ":"), (last, "-")):
                arr = psth[(b, s)][sel]
                t = np.arange(arr.shape[1])
                m, se = arr.mean(0), arr.std(0) / np.sqrt(max(sel.sum(), 1))
                ax.plot(t, m, ls, color=SPACE_COLORS[s], label=f"{label(s, paper)} block {b}")
                ax.fill_between(t, m - se, m + se, color=SPACE_COLORS[s], alpha=0.15, lw=0)
                if sel.any():
                    print(f"  A {area} {label(s, paper)} block {b}: peak {m.max():.4f} at {int(t[m.argmax()])} ms "
                          f"(mean over n = {sel.sum()} valid & any-success experiments; SEM there {se[m.argmax()]:.4f})")
        ax.set_xlabel("time after image onset (ms)")
        ax.set_ylabel("max-normalised rate")
        ax.set_ylim(0, max(1.05, ax.get_ylim()[1]))   # at least the whole 0-1 scale: a flat PSTH must not look like structure
        ax.set_title(f"A  {area}: mean PSTH (valid & any success, n = {sel.sum()})", fontsize=9)
        ax.legend(fontsize=6, frameon=False)

        # C: per window, a paired t-test at every block, BH-FDR across the blocks; direction by the sign of t
        ax = axes[1, j]
        if area not in c_areas:
            ax.set_axis_off()
            ax.set_title(f"C  {area}: not tested (the paper tests V4 and IT)", fontsize=8)
            continue
        sel = ((exps["visual_area"] == area) & exps["valid"] & exps["bothsucc005"]).to_numpy()
        n_blocks = tables[0][2]["DeePSim"].shape[1]
        grid = np.zeros((len(windows), n_blocks))        # +1 DeePSim > BigGAN, -1 the reverse, 0 not significant
        for w, (start, end, values) in enumerate(tables):
            fc, bg = values["DeePSim"][sel], values["BigGAN"][sel]
            t, p, sig = per_block_tests(fc, bg)
            grid[w] = np.where(sig, np.sign(t), 0)
            for k in range(n_blocks):
                block = k if paper else "last"
                stats.add("5C", "ttest_rel DeePSim vs BigGAN", t[k], p[k], len(fc), bool(sig[k]), area=area,
                          block=block, window_ms=f"{start}-{end}", correction="BH-FDR .05 across blocks",
                          subset="valid & bothsucc005",
                          note=("" if not sig[k] else "DeePSim > BigGAN" if t[k] > 0 else "BigGAN > DeePSim")
                          + ("" if paper else "; in silico: mean of the last two blocks"))
            wins_d, wins_b = int((sig & (t > 0)).sum()), int((sig & (t < 0)).sum())
            print(f"  C {area} [{start}-{end}) ms (valid & both successful, n = {sel.sum()}): blocks DeePSim > "
                  f"BigGAN at FDR .05: {wins_d}, BigGAN > DeePSim: {wins_b} of {n_blocks}; smallest p = "
                  f"{fmt_p(np.nanmin(p)) if np.isfinite(p).any() else 'nan'}")
        from matplotlib.colors import ListedColormap
        ax.imshow(grid.T, aspect="auto", origin="lower", cmap=ListedColormap(["tab:red", "white", "tab:blue"]),
                  vmin=-1, vmax=1, extent=[0, 200, -0.5, n_blocks - 0.5])
        ax.set_xlabel("10 ms window (ms after onset)")
        ax.set_ylabel("block" if paper else "last two blocks")
        ax.set_title(f"C  {area} (n = {sel.sum()}): blue DeePSim > BigGAN, red BigGAN > DeePSim\n"
                     "(paired t per block, BH-FDR .05 across blocks)", fontsize=8)
        if args.extras:
            for subset, base in (("valid & bothsucc005 (extra)", sel),
                                 ("valid (extra)", ((exps["visual_area"] == area) & exps["valid"]).to_numpy())):
                res = [ttest_rel(np.nanmean(v["DeePSim"][base][:, -2:], 1), np.nanmean(v["BigGAN"][base][:, -2:], 1))
                       for _, _, v in tables] if base.sum() >= 2 else []
                p = np.array([float(r.pvalue) for r in res]) if res else np.full(len(tables), np.nan)
                t = np.array([float(r.statistic) for r in res]) if res else np.full(len(tables), np.nan)
                sig = bh_fdr(p)[1]
                for w, (start, end, _) in enumerate(tables):
                    stats.add("5C", "ttest_rel DeePSim vs BigGAN", t[w], p[w], int(base.sum()), bool(sig[w]),
                              area=area, block="last", window_ms=f"{start}-{end}",
                              correction="BH-FDR .05 across windows", subset=subset,
                              note="extra: mean of the last two blocks per window")
                where = ", ".join(f"{s}-{e}" for (s, e), k in zip(windows, sig) if k) or "none"
                print(f"  C {area} [extra: last two blocks, FDR across windows; {subset}, n = {base.sum()}]: "
                      f"windows DeePSim != BigGAN: {where}")
    fig.tight_layout()
    save(fig, args.out, "Figure5_reproduction")
    stats.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

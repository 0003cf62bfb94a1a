#!/usr/bin/env python
"""Figure 5 (in silico): when in the response does one space's prototype beat the other's?

A: max-normalised mean PSTHs at the first and the last block, per area and space
(``Figure5A_src_all_exps_maxnorm_mean_psth_per_block{NN}_{DeePSim,BigGAN}_mean.csv``).
C: for each 10 ms window (0-200 ms) the max-normalised response over the last two blocks,
DeePSim vs BigGAN stand-in, paired t-test per window with Benjamini-Hochberg FDR (alpha .05)
across the 20 windows, per area, over experiments where both threads succeeded
(``Figure5C_src_normresp_wdw_{start}-{end}_last2blocks.csv``). The time courses come from the
declared temporal model of the model neurons (see ``source_data/README.md``), not from data.

The paper's download is read too (``_load`` gives both one form): its experiments and areas come
from ``Figure5_src_exp_masks_and_succ_labels.csv`` (rows matched by position, as its script does),
its 5A tables have no ``Exp`` index, and its 5C files hold whole trajectories per window
(``Figure5C_src_normresp_wdw_{start}-{end}_{DeePSim,BigGAN}_mean.csv``, experiments x blocks, padded
past the last recorded block with the mean of the last two): the mean of their last two columns is
the last-two-blocks response used here. A uses the valid experiments of each area (the paper also
requires a successful thread; our 5A tables carry no success labels, the paper's masks file does).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, ttest_rel

from _figcommon import SPACE_COLORS, arguments, as_bool, fail, fmt_p, label, matrix, need, plt, read_csv, save

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
        return first[["Exp", "visual_area", "valid", "bothsucc005"]].assign(
            valid=lambda f: as_bool(f["valid"]), bothsucc005=lambda f: as_bool(f["bothsucc005"]))
    masks = read_csv(masks_path)
    area = np.full(len(masks), "", dtype=object)
    for a in ("V1", "V4", "IT"):
        area[as_bool(masks[f"{a}msk"])] = a
    return pd.DataFrame({"visual_area": area, "valid": as_bool(masks["valid"]),
                         "bothsucc005": as_bool(masks["bothsucc005"])})


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
    tables = []
    for start, end, tail in windows:
        stem = f"Figure5C_src_normresp_wdw_{start}-{end}"
        if tail == "last2blocks":
            df = read_csv(d / f"{stem}_last2blocks.csv").set_index("Exp").reindex(exps["Exp"])
            values = {s: df[s].to_numpy(float) for s in SPACES}
        else:   # the paper's trajectories: mean of the last two (padded) blocks
            values = {s: np.nanmean(matrix(d / f"{stem}_{s}_mean.csv")[1][:, -2:], axis=1) for s in SPACES}
        tables.append((start, end, exps.assign(**values).reset_index(drop=True)))
    return exps, blocks[0], blocks[-1], psth, tables


def _paired_fdr(tables, area, subset):
    diffs, pvals, ns = [], [], []
    for start, end, df in tables:
        sel = df[(df["visual_area"] == area) & df["valid"]]
        if subset == "both successful":
            sel = sel[sel["bothsucc005"]]
        a, b = sel["DeePSim"].to_numpy(float), sel["BigGAN"].to_numpy(float)
        diffs.append(a - b)
        ns.append(len(a))
        p = float(ttest_rel(a, b).pvalue) if len(a) >= 2 and np.any(a != b) else float("nan")
        pvals.append(p)
    pvals = np.array(pvals)
    q = np.full_like(pvals, np.nan)
    ok = np.isfinite(pvals)
    if ok.any():
        q[ok] = false_discovery_control(pvals[ok], method="bh")
    return diffs, pvals, q, ns


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "Fig5"
    exps, first, last, psth, tables = _load(d)
    windows = [(start, end) for start, end, _ in tables]
    areas = [a for a in ("V1", "V4", "IT") if (exps["visual_area"] == a).any()]
    fig, axes = plt.subplots(2, len(areas), figsize=(5 * len(areas), 6.5), squeeze=False)
    print(f"statistics (Figure 5): blocks {first} and {last}; {len(windows)} windows of 10 ms")
    for j, area in enumerate(areas):
        ax = axes[0, j]
        for s in SPACES:
            for b, ls in ((first, ":"), (last, "-")):
                arr = psth[(b, s)][((exps["visual_area"] == area) & exps["valid"]).to_numpy()]
                t = np.arange(arr.shape[1])
                m = np.nanmean(arr, 0)
                ax.plot(t, m, ls, color=SPACE_COLORS[s], label=f"{label(s)} block {b}")
                print(f"  A {area} {label(s)} block {b}: peak {m.max():.3f} at {int(t[m.argmax()])} ms (n = {len(arr)})")
        ax.set_xlabel("time after image onset (ms)")
        ax.set_ylabel("max-normalised rate")
        ax.set_ylim(0, max(1.05, ax.get_ylim()[1]))   # at least the whole 0-1 scale: a flat PSTH must not look like structure
        ax.set_title(f"A  {area}-like: mean PSTH", fontsize=9)
        ax.legend(fontsize=6, frameon=False)
        ax = axes[1, j]
        centres = np.array([(s + e) / 2 for s, e in windows])
        marks = []
        for subset, color in (("both successful", "k"), ("all valid", "0.6")):
            diffs, pvals, q, ns = _paired_fdr(tables, area, subset)
            m = np.array([np.mean(x) if len(x) else np.nan for x in diffs])
            se = np.array([np.std(x, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan for x in diffs])
            ax.errorbar(centres, m, yerr=se, color=color, fmt="o-", ms=3, lw=1, capsize=2,
                        label=f"{subset} (n = {ns[0]})")
            sig = np.isfinite(q) & (q < 0.05)
            marks.append((sig, color))
            where = ", ".join(f"{int(c - 5)}-{int(c + 5)}" for c in centres[sig]) or "none"
            print(f"  C {area} ({subset}, n = {ns[0]}): windows with DeePSim != BigGAN at FDR .05: {where}; "
                  f"smallest p = {fmt_p(np.nanmin(pvals)) if np.isfinite(pvals).any() else 'nan'}")
        lo, hi = ax.get_ylim()
        for k, (sig, color) in enumerate(marks):   # one row of stars per subset above the data
            ax.scatter(centres[sig], np.full(sig.sum(), hi + (0.04 + 0.06 * k) * (hi - lo)), marker="*", color=color, s=25)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("window centre (ms)")
        ax.set_ylabel("DeePSim - BigGAN (norm. response)")
        ax.set_title(f"C  {area}-like: per-window difference, last 2 blocks (* FDR < .05)", fontsize=9)
        ax.legend(fontsize=6, frameon=False)
    lims = [ax.get_ylim() for ax in axes[1]]        # one scale for every area: small differences look small
    for ax in axes[1]:
        ax.set_ylim(min(lo for lo, _ in lims), max(hi for _, hi in lims))
    fig.tight_layout()
    save(fig, args.out, "Figure5_reproduction")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Figure 5 (in silico): when in the response does one space's prototype beat the other's?

A: max-normalised mean PSTHs at the first and the last block, per area and space
(``Figure5A_src_all_exps_maxnorm_mean_psth_per_block{NN}_{DeePSim,BigGAN}_mean.csv``).
C: for each 10 ms window (0-200 ms) the max-normalised response over the last two blocks,
DeePSim vs BigGAN stand-in, paired t-test per window with Benjamini-Hochberg FDR (alpha .05)
across the 20 windows, per area, over experiments where both threads succeeded
(``Figure5C_src_normresp_wdw_{start}-{end}_last2blocks.csv``). The time courses come from the
declared temporal model of the model neurons (see ``source_data/README.md``), not from data.
"""
from __future__ import annotations

import re
import sys

import numpy as np
from scipy.stats import false_discovery_control, ttest_rel

from _figcommon import SPACE_COLORS, arguments, fmt_p, label, need, plt, read_csv, save

SPACES = ("DeePSim", "BigGAN")


def _windows(d):
    found = []
    for path in need(d).glob("Figure5C_src_normresp_wdw_*_last2blocks.csv"):
        m = re.search(r"wdw_(\d+)-(\d+)_", path.name)
        found.append((int(m.group(1)), int(m.group(2)), path))
    return sorted(found)


def _paired_fdr(tables, area, subset):
    diffs, pvals, ns = [], [], []
    for start, end, df in tables:
        sel = df[(df["visual_area"] == area) & df["valid"].astype(bool)]
        if subset == "both successful":
            sel = sel[sel["bothsucc005"].astype(bool)]
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
    blocks = sorted({int(m.group(1)) for p in need(d).glob("Figure5A_src_*_per_block*_DeePSim_mean.csv")
                     if (m := re.search(r"per_block(\d+)_", p.name))})
    if len(blocks) < 2:
        raise SystemExit(f"expected Figure5A tables for a first and a last block in {d}")
    first, last = blocks[0], blocks[-1]
    psth = {(b, s): read_csv(d / f"Figure5A_src_all_exps_maxnorm_mean_psth_per_block{b:02d}_{s}_mean.csv", index_col=0)
            for b in (first, last) for s in SPACES}
    windows = _windows(d)
    tables = [(s, e, read_csv(p)) for s, e, p in windows]
    areas = [a for a in ("V1", "V4", "IT") if (tables[0][2]["visual_area"] == a).any()]
    area_of = tables[0][2].set_index("Exp")["visual_area"]
    fig, axes = plt.subplots(2, len(areas), figsize=(5 * len(areas), 6.5), squeeze=False)
    print(f"statistics (Figure 5): blocks {first} and {last}; {len(windows)} windows of 10 ms")
    for j, area in enumerate(areas):
        ax = axes[0, j]
        for s in SPACES:
            for b, ls in ((first, ":"), (last, "-")):
                df = psth[(b, s)]
                arr = df[df.index.map(area_of) == area].to_numpy(float)
                t = np.arange(arr.shape[1])
                m = arr.mean(0)
                ax.plot(t, m, ls, color=SPACE_COLORS[s], label=f"{label(s)} block {b}")
                print(f"  A {area} {label(s)} block {b}: peak {m.max():.3f} at {int(t[m.argmax()])} ms (n = {len(arr)})")
        ax.set_xlabel("time after image onset (ms)")
        ax.set_ylabel("max-normalised rate")
        ax.set_ylim(0, 1.05)        # the whole 0-1 scale: a flat PSTH must not look like structure
        ax.set_title(f"A  {area}-like: mean PSTH", fontsize=9)
        ax.legend(fontsize=6, frameon=False)
        ax = axes[1, j]
        centres = np.array([(s + e) / 2 for s, e, _ in windows])
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

#!/usr/bin/env python
"""Figure 2 (in silico): one paired evolution — response per generation (B) and PSTHs per block (D).

B: mean +/- SE per generation of the evolved images of each thread, the natural reference
images and the pre-stimulus baseline (``Figure2B_src_resp_<exp>_thread{0,1}_{evol,natref}.csv``,
columns gen, resp, bsl). D: the mean PSTH of every block stacked bottom (first) to top (last)
for each thread (``Figure2D_src_psth_<exp>_{DeePSim,BigGAN}_{mean,sem}.csv``, blocks x 200 ms).
Files are read by name, never by position (the reference stacked the four PSTH slices in one
order and read them in another).
"""
from __future__ import annotations

import sys

import numpy as np
from scipy.stats import ttest_ind

from _figcommon import SPACE_COLORS, arguments, first_file, fmt_p, label, plt, read_csv, read_json, save

THREAD_LABELS = {0: "DeePSim", 1: "BigGAN"}


def _mean_se(df, column):
    g = df.groupby("gen")[column]
    return g.mean(), g.std(ddof=1) / np.sqrt(g.count())


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "Fig2"
    meta = read_json(first_file(d, "Figure2D_src_psth_*_meta.txt"))
    exp = meta["exp"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    ax = axes[0]
    print(f"statistics (Figure 2, {meta['expstr']}):")
    bsl_all = []
    for t, name in THREAD_LABELS.items():
        evol = read_csv(d / f"Figure2B_src_resp_{exp}_thread{t}_evol.csv")
        natref = read_csv(d / f"Figure2B_src_resp_{exp}_thread{t}_natref.csv")
        color = SPACE_COLORS[name]
        m, se = _mean_se(evol, "resp")
        ax.plot(m.index, m, color=color, label=f"{label(name)} evolved")
        ax.fill_between(m.index, m - se, m + se, color=color, alpha=0.25, lw=0)
        if t == 0:  # the reference images are shared by both threads in silico: draw them once
            mr, ser = _mean_se(natref, "resp")
            ax.plot(mr.index, mr, color="k", ls="--", label="natural reference")
            ax.fill_between(mr.index, mr - ser, mr + ser, color="k", alpha=0.12, lw=0)
            print(f"  natural references: mean {natref['resp'].mean():.2f} Hz over {natref['gen'].nunique()} generations")
        bsl_all.append(evol["bsl"].to_numpy())
        last = evol["gen"].max()
        init = evol[evol["gen"] <= 1]["resp"]
        final = evol[evol["gen"] >= last - 1]["resp"]
        res = ttest_ind(final, init)
        print(f"  thread {t} {label(name)}: generations 0-1 {init.mean():.2f} Hz -> last two {final.mean():.2f} Hz "
              f"(t = {res.statistic:.2f}, p = {fmt_p(res.pvalue)}, n = {len(init)}/{len(final)})")
    bsl = np.concatenate(bsl_all)
    ax.axhline(bsl.mean(), color="0.5", lw=1, ls=":", label="baseline (0-45 ms)")
    print(f"  baseline: {bsl.mean():.2f} +/- {bsl.std(ddof=1) / np.sqrt(bsl.size):.2f} Hz (mean +/- SE, {bsl.size} trials)")
    ax.set_xlabel("generation (block)")
    ax.set_ylabel("response (spikes/s)")
    ax.set_title(f"B  {exp}: {meta['kind']} cell ({meta['visual_area']}-like)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    for ax, (t, name) in zip(axes[1:], THREAD_LABELS.items()):
        mean = read_csv(d / f"Figure2D_src_psth_{exp}_{name}_mean.csv").to_numpy()
        sem = read_csv(d / f"Figure2D_src_psth_{exp}_{name}_sem.csv").to_numpy()
        time_ms = np.arange(mean.shape[1]) + meta.get("offset_ms", 0)
        step = max(np.nanmax(mean), 1e-9) * 0.25
        cmap = plt.get_cmap("Reds" if name == "BigGAN" else "Blues")
        for b in range(mean.shape[0]):
            c = cmap(0.3 + 0.7 * b / max(mean.shape[0] - 1, 1))
            ax.plot(time_ms, mean[b] + b * step, color=c, lw=0.8)
            ax.fill_between(time_ms, mean[b] - sem[b] + b * step, mean[b] + sem[b] + b * step, color=c, alpha=0.3, lw=0)
        ax.set_xlabel("time after image onset (ms)")
        ax.set_yticks([])
        ax.set_ylabel(f"spikes/s (block b drawn {step:.2g} higher per block)")
        bar = float(f"{step:.1g}")                      # scale bar: a round number of spikes/s
        x_bar = time_ms[0] + 0.03 * (time_ms[-1] - time_ms[0])
        ax.plot([x_bar, x_bar], [0, bar], color="k", lw=2)
        ax.text(x_bar, bar / 2, f" {bar:g} spikes/s", fontsize=6, va="center")
        ax.set_title(f"D  {label(name)}: PSTH per block (first at bottom)", fontsize=9)
        peak0, peak1 = mean[0].max(), mean[-1].max()
        print(f"  PSTH {label(name)}: peak {peak0:.2f} Hz at {int(time_ms[mean[0].argmax()])} ms in block 0, "
              f"{peak1:.2f} Hz at {int(time_ms[mean[-1].argmax()])} ms in block {mean.shape[0] - 1}")
    fig.tight_layout()
    save(fig, args.out, "Figure2_reproduction")
    return 0


if __name__ == "__main__":
    sys.exit(main())

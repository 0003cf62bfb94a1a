#!/usr/bin/env python
"""Figure 2 (in silico): one paired evolution — response per generation (B) and PSTHs per block (D).

B: mean +/- SE per generation of the evolved images of each thread, the natural reference
images and the pre-stimulus baseline (columns gen, resp, bsl). D: the mean PSTH of every block
stacked bottom (first) to top (last) for each thread (blocks x 200 ms, mean and SEM).

Two file sets are read into the same form (``_load``): ours
(``Figure2B_src_resp_<exp>_thread{0,1}_{evol,natref}.csv``) and the paper's
(``Figure2B_src_resp_<exp>_{DeePSim,BigGAN}_thread_{evol,natref}.csv`` or ``Figure2B_src_resp_<exp>.pkl``;
``Figure2D_src_psth_<exp>.pkl``); both write ``Figure2D_src_psth_<exp>_{DeePSim,BigGAN}_{mean,sem}.csv`` and
``Figure2D_src_psth_<exp>_meta.txt``. CSVs are preferred; pickles are read only with ``--allow-pickle``.
PSTH slices are taken by name, never by position (the reference stacked the four CSV slices in one
order and read them in another). The paper's ``psth_arr`` is (blocks, 4, 200) in the order its
plotting code reads it: DeePSim mean, BigGAN mean, DeePSim SEM, BigGAN SEM. Like the paper's script,
Figure 2 runs no statistical test (``stats.csv`` has no rows); ``--extras`` adds a t-test of the last
two generations against the first two for each thread. Labels are the paper's on its file set.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ttest_ind

from _figcommon import (SPACE_COLORS, Stats, arguments, fail, fmt_p, label, need, plt, read_csv, read_json, read_pickle,
                        save)

THREAD_LABELS = {0: "DeePSim", 1: "BigGAN"}
PSTH_ARR_ORDER = ("DeePSim_mean", "BigGAN_mean", "DeePSim_sem", "BigGAN_sem")   # axis 1 of the paper's psth_arr


@dataclass
class Example:
    """One experiment in the internal form: per thread (evolved, natural-reference) tables and PSTH slices."""
    exp: str
    title: str
    paper: bool                            # the paper's file set (labels "DeePSim", "BigGAN")
    resp: dict[int, tuple[pd.DataFrame, pd.DataFrame]]
    psth: dict[str, np.ndarray]            # "<space>_<mean|sem>" -> blocks x time
    time0_ms: float                        # time of PSTH column 0
    stack_step: float | None               # vertical offset between blocks (the paper's ``offset``), None = automatic


def _experiment(d: Path) -> str:
    """The example's id from whichever of its files is there (``InSilicoExp000`` here, ``Exp155`` in the paper)."""
    for pattern in (r"Figure2D_src_psth_(.+)_meta\.txt", r"Figure2D_src_psth_(.+)\.pkl", r"Figure2B_src_resp_(.+)\.pkl",
                    r"Figure2D_src_psth_(.+)_DeePSim_mean\.csv"):
        found = sorted(m.group(1) for p in need(d).iterdir() if (m := re.fullmatch(pattern, p.name)))
        if found:
            return found[0]
    fail(f"no Figure 2 source files (Figure2D_src_psth_<exp>_meta.txt or the paper's .pkl) in {d}")


def _responses(d: Path, exp: str, allow_pickle: bool) -> dict[int, tuple[pd.DataFrame, pd.DataFrame]]:
    out = {}
    ours = d / f"Figure2B_src_resp_{exp}_thread0_evol.csv"
    paper_pkl = d / f"Figure2B_src_resp_{exp}.pkl"
    for t, name in THREAD_LABELS.items():
        paper = [d / f"Figure2B_src_resp_{exp}_{name}_thread_{kind}.csv" for kind in ("evol", "natref")]
        if ours.exists():
            out[t] = tuple(read_csv(d / f"Figure2B_src_resp_{exp}_thread{t}_{kind}.csv") for kind in ("evol", "natref"))
        elif paper[0].exists() or not paper_pkl.exists():
            out[t] = tuple(read_csv(p) for p in paper)
        else:
            data = read_pickle(paper_pkl, allow_pickle)
            out[t] = (data[f"thread{t}_resp_df"], data[f"thread{t}_natref_resp_df"])
    for t, tables in out.items():
        for df in tables:
            if not {"gen", "resp", "bsl"} <= set(df.columns):
                fail(f"Figure 2B table of thread {t} lacks gen/resp/bsl columns (has {list(df.columns)})")
    return out


def _load(d: Path, allow_pickle: bool) -> Example:
    """Our or the paper's Figure 2 files, in one form."""
    exp = _experiment(d)
    meta_path, pkl = d / f"Figure2D_src_psth_{exp}_meta.txt", d / f"Figure2D_src_psth_{exp}.pkl"
    slices = {s: d / f"Figure2D_src_psth_{exp}_{s}.csv" for s in PSTH_ARR_ORDER}
    meta = read_json(meta_path) if meta_path.exists() else {}
    if all(p.exists() for p in slices.values()) or not pkl.exists():
        psth = {s: read_csv(p).to_numpy(float) for s, p in slices.items()}
    else:
        data = read_pickle(pkl, allow_pickle)
        arr = np.asarray(data["psth_arr"], dtype=float)
        if arr.ndim != 3 or arr.shape[1] != 4:
            fail(f"{pkl}: psth_arr has shape {arr.shape}, expected (blocks, 4, time)")
        psth = {s: arr[:, i, :] for i, s in enumerate(PSTH_ARR_ORDER)}
        meta = {"offset": data.get("offset"), "expstr": data.get("expstr", exp), **meta}
    if "kind" in meta:     # ours: say what the model neuron is
        title = f"{exp}: {meta['kind']} cell ({meta['visual_area']}-like)"
    else:
        title = str(meta.get("expstr", exp))
    return Example(exp=exp, title=title, paper="kind" not in meta, resp=_responses(d, exp, allow_pickle), psth=psth,
                   time0_ms=float(meta.get("offset_ms", 0)), stack_step=meta.get("offset"))


def _mean_se(df, column):
    g = df.groupby("gen")[column]
    return g.mean(), g.std(ddof=1) / np.sqrt(g.count())


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    ex = _load(args.source_data / "Fig2", args.allow_pickle)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    print(f"statistics (Figure 2, {ex.title}):")
    stats = Stats("Figure2")
    ax = axes[0]
    bsl_all = []
    shared_natref = ex.resp[0][1]["resp"].equals(ex.resp[1][1]["resp"])
    for t, name in THREAD_LABELS.items():
        evol, natref = ex.resp[t]
        color = SPACE_COLORS[name]
        m, se = _mean_se(evol, "resp")
        ax.plot(m.index, m, color=color, label=f"{label(name, ex.paper)} evolved")
        ax.fill_between(m.index, m - se, m + se, color=color, alpha=0.25, lw=0)
        if t == 0 or not shared_natref:  # in silico both threads show the same references: drawn once
            mr, ser = _mean_se(natref, "resp")
            ref_color, who = ("k", "") if shared_natref else (color, f" ({name} thread)")
            ax.plot(mr.index, mr, color=ref_color, ls="--", label=f"natural reference{who}")
            ax.fill_between(mr.index, mr - ser, mr + ser, color=ref_color, alpha=0.12, lw=0)
            print(f"  natural references{who}: mean {natref['resp'].mean():.2f} Hz over "
                  f"{natref['gen'].nunique()} generations")
        bsl_all.append(evol["bsl"].to_numpy())
        last = evol["gen"].max()
        init = evol[evol["gen"] <= 1]["resp"]
        final = evol[evol["gen"] >= last - 1]["resp"]
        line = (f"  thread {t} {label(name, ex.paper)}: generations 0-1 {init.mean():.2f} Hz -> last two "
                f"{final.mean():.2f} Hz")
        if args.extras:     # the paper's Figure 2 draws these curves without a test
            res = ttest_ind(final, init)
            stats.add("2B", f"ttest_ind last two vs first two generations ({name})", res.statistic, res.pvalue,
                      len(init) + len(final), bool(res.pvalue < 0.05), area=str(ex.title), block="last",
                      correction="none (p < .05)", subset=f"thread {t} evolved images",
                      note="extra: the paper's Figure 2 script draws these curves without a test")
            line += f" [extra: ttest_ind t = {res.statistic:.2f}, p = {fmt_p(res.pvalue)}, n = {len(init)}/{len(final)}]"
        print(line)
    bsl = np.concatenate(bsl_all)
    ax.axhline(bsl.mean(), color="0.5", lw=1, ls=":", label="baseline (0-45 ms)")
    print(f"  baseline: {bsl.mean():.2f} +/- {bsl.std(ddof=1) / np.sqrt(bsl.size):.2f} Hz (mean +/- SE, {bsl.size} trials)")
    ax.set_xlabel("generation (block)")
    ax.set_ylabel("response (spikes/s)")
    ax.set_title(f"B  {ex.title}", fontsize=9, wrap=True)
    ax.legend(fontsize=7, frameon=False)
    for ax, (t, name) in zip(axes[1:], THREAD_LABELS.items()):
        mean, sem = ex.psth[f"{name}_mean"], ex.psth[f"{name}_sem"]
        time_ms = np.arange(mean.shape[1]) + ex.time0_ms
        step = float(ex.stack_step) if ex.stack_step else max(np.nanmax(mean), 1e-9) * 0.25
        cmap = plt.get_cmap("Reds" if name == "BigGAN" else "Blues")
        for b in range(mean.shape[0]):
            c = cmap(0.3 + 0.7 * b / max(mean.shape[0] - 1, 1))
            ax.plot(time_ms, mean[b] + b * step, color=c, lw=0.8)
            ax.fill_between(time_ms, mean[b] - sem[b] + b * step, mean[b] + sem[b] + b * step, color=c, alpha=0.3, lw=0)
        ax.set_xlabel("time after image onset (ms)")
        ax.set_yticks([])
        ax.set_ylabel(f"spikes/s (block b drawn {step:.3g} higher per block)")
        bar = float(f"{step:.1g}")                      # scale bar: a round number of spikes/s
        x_bar = time_ms[0] + 0.03 * (time_ms[-1] - time_ms[0])
        ax.plot([x_bar, x_bar], [0, bar], color="k", lw=2)
        ax.text(x_bar, bar / 2, f" {bar:g} spikes/s", fontsize=6, va="center")
        ax.set_title(f"D  {label(name, ex.paper)}: PSTH per block (first at bottom)", fontsize=9)
        peak0, peak1 = mean[0].max(), mean[-1].max()
        print(f"  PSTH {label(name, ex.paper)}: peak {peak0:.2f} Hz at {int(time_ms[mean[0].argmax()])} ms in block 0, "
              f"{peak1:.2f} Hz at {int(time_ms[mean[-1].argmax()])} ms in block {mean.shape[0] - 1}")
    fig.tight_layout()
    save(fig, args.out, "Figure2_reproduction")
    stats.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Figure 4: success rates, first/last-block comparison, trajectories and time constants per area.

By default every number is what the paper's own script (Dynamic-Neuron-GAN-Alignment,
``figure_reproduction/Figure4_reproduction.py``) computes from the same files:

A: success rate of each space per area with 90 % CIs (``Fig4A_SuccessRate_maxinit.csv``).
B: paired t-test (``ttest_rel``) of DeePSim vs BigGAN max-normalised response at block 0 and at
the last *column* of the (padded) array, per area, over experiments that are ``valid`` and
``anysucc005`` (either thread succeeded); no correction (the paper prints each p).
C: mean +/- SEM (``std`` with ddof 0 / sqrt(n), padded blocks included) of the max-normalised
trajectories per area over ``valid & bothsucc005`` experiments.
D: convergence time constants of threads with ``p_maxinit < 0.01`` among valid experiments, mean
with 95 % CI (the paper draws a seaborn bootstrap CI, ours is t-based: the one difference).

``--extras`` adds our alternatives as labelled extra rows and lines, never instead: B at each
experiment's last *recorded* block over all valid experiments; C with padded blocks masked
(``Figure4_src_extrapolation_mask_arr.csv`` True = recorded, the opposite of the reference
notebook's comment) over all valid experiments and ddof 1; D without time constants beyond the
run length or fits that did not converge.

Ours and the paper's download use the same file names; ``_load`` brings both into one form. The
paper's tables have no ``Exp`` index (rows are matched by position, as its script does), its
extrapolation mask is read like its script (``header=None``; a header row of block numbers is
dropped), its success-rate rows are V1, V4, IT in that order, and its time-constant table has no
``valid``, ``t_maxinit`` or ``*_converged`` columns (valid comes from the masks file).
Labels are the paper's ("DeePSim", "BigGAN") on its file set, "DeePSim (fourier)" ... on ours.
"""
from __future__ import annotations

import sys

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from _figcommon import (SPACE_COLORS, Stats, arguments, as_bool, bool_matrix, fail, fmt_p, label, matrix, mean_ci,
                        plt, read_csv, read_json, save, split_index)

THREADS = ((0, "FC", "DeePSim"), (1, "BG", "BigGAN"))
AREAS = ("V1", "V4", "IT")


@dataclass
class Fig4Data:
    """Both file sets in one form; every per-experiment array has the rows of ``masks``."""
    rates: pd.DataFrame                     # index = area
    criterion: str                          # how success was defined (title of A)
    masks: pd.DataFrame                     # bool columns valid, V1msk, V4msk, ITmsk, anysucc005, bothsucc005
    recorded: np.ndarray                    # experiments x blocks, True = recorded block
    traj: dict[str, dict[str, np.ndarray]]  # space -> mean/sem -> experiments x blocks
    tc: pd.DataFrame                        # time constants with visual_area, valid, p/t_maxinit_t, *_converged
    paper: bool                             # the paper's file set (no Exp index)


def _load(d: Path) -> Fig4Data:
    labels_file = read_json(d / "Fig4A_sucs_labels.txt") if (d / "Fig4A_sucs_labels.txt").exists() else {}
    index, rates = split_index(read_csv(d / "Fig4A_SuccessRate_maxinit.csv"))
    if index is None:   # the paper's file: rows V1, V4, IT without a label column
        index = labels_file.get("labels", list(AREAS[:len(rates)]))
    rates = rates.set_axis(pd.Index(index, name="area"))
    criterion = labels_file.get("sucs_criterion_label", "p < .05")
    masks_raw = read_csv(d / "Figure4_src_exp_masks_and_succ_labels.csv")
    exp_index, masks = split_index(masks_raw)
    missing = {"valid", "anysucc005", "bothsucc005"} - set(masks)
    if missing:
        fail(f"Figure4_src_exp_masks_and_succ_labels.csv lacks columns {sorted(missing)}")
    masks = pd.DataFrame({c: as_bool(masks[c]) for c in ("valid", "V1msk", "V4msk", "ITmsk", "anysucc005",
                                                          "bothsucc005") if c in masks})
    recorded = bool_matrix(d / "Figure4_src_extrapolation_mask_arr.csv")
    traj = {}
    for _, _, name in THREADS:
        traj[name] = {}
        for stat in ("mean", "sem"):
            path = d / f"Figure4_src_maxnorm_resp_stats_all_exps_{name}_{stat}_data.csv"
            rows, values = matrix(path)
            if exp_index is not None and rows is not None and list(rows) != list(exp_index):
                fail(f"experiment order of {path.name} differs from the masks file")
            if values.shape != recorded.shape or len(values) != len(masks):
                fail(f"{path.name} is {values.shape}, the extrapolation mask {recorded.shape}, the masks file has "
                     f"{len(masks)} rows: they must describe the same experiments")
            traj[name][stat] = values
    tc = read_csv(d / "Figure4_src_evol_traj_time_constant_w_meta.csv")
    if "valid" not in tc:
        if len(tc) != len(masks):
            fail("the time-constant table has no valid column and not one row per experiment of the masks file")
        tc["valid"] = masks["valid"].to_numpy()
    tc["valid"] = as_bool(tc["valid"])
    for t, prefix, _ in THREADS:
        tc[f"t_maxinit_{t}"] = tc.get(f"t_maxinit_{t}", 1.0)
        tc[f"{prefix}_tc0_converged"] = as_bool(tc.get(f"{prefix}_tc0_converged", pd.Series(True, index=tc.index)))
    return Fig4Data(rates, criterion, masks, recorded, traj, tc, paper="Exp" not in masks_raw.columns)   # ours are indexed by Exp


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "Fig4"
    data = _load(d)
    rates, masks, recorded, traj, tc = data.rates, data.masks, data.recorded, data.traj, data.tc
    areas = [a for a in AREAS if f"{a}msk" in masks and masks[f"{a}msk"].any()]
    missing = [a for a in AREAS if a not in areas]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))

    # A: success rates with 90 % CIs
    print("statistics (Figure 4):")
    ax = axes[0]
    x = np.arange(len(rates))
    for k, (_, prefix, name) in enumerate(THREADS):
        r = rates[f"{prefix}_rate"].to_numpy()
        err = np.vstack([r - rates[f"{prefix}_CI_1"].to_numpy(), rates[f"{prefix}_CI_2"].to_numpy() - r])
        ax.bar(x + (k - 0.5) * 0.38, r, 0.38, yerr=err, color=SPACE_COLORS[name], label=label(name, data.paper), capsize=3)
    ax.set_xticks(x, [f"{a}{'' if data.paper else '-like'}\n(n={n})" for a, n in zip(rates.index, rates["total"])])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (90% CI)")
    ax.set_title(f"A  evolution success ({data.criterion})", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    for area, row in rates.iterrows():
        print(f"  A {area}: FC {int(row['FC_suc'])}/{int(row['total'])} = {row['FC_rate']:.2f} "
              f"[{row['FC_CI_1']:.2f}, {row['FC_CI_2']:.2f}]; BG {int(row['BG_suc'])}/{int(row['total'])} = "
              f"{row['BG_rate']:.2f} [{row['BG_CI_1']:.2f}, {row['BG_CI_2']:.2f}]")
    if missing:
        print(f"  (no experiments for {', '.join(missing)}: nothing stands in for that area)")

    # B: first vs last block, paired t-test per area (the paper: valid & anysucc005, column 0 and column -1)
    stats = Stats("Figure4")
    ax = axes[1]
    rows = np.arange(recorded.shape[0])
    last_recorded = recorded.shape[1] - 1 - np.argmax(recorded[:, ::-1], axis=1)
    first_col, last_col = np.zeros_like(last_recorded), np.full_like(last_recorded, recorded.shape[1] - 1)
    variants = [("valid & anysucc005", masks["valid"] & masks["anysucc005"],
                 (("first", 0, first_col), ("last", recorded.shape[1] - 1, last_col)), "")]
    if args.extras:
        variants.append(("valid (extra)", masks["valid"], (("last", "last", last_recorded),),
                         "extra: each experiment's last recorded block, all valid experiments"))
    for i, area in enumerate(areas):
        for subset, base, blocks, note in variants:
            sel = (masks[f"{area}msk"] & base).to_numpy()
            for which, block, cols in blocks:
                fc = traj["DeePSim"]["mean"][rows, cols][sel]
                bg = traj["BigGAN"]["mean"][rows, cols][sel]
                if len(fc) >= 2:
                    res = ttest_rel(fc, bg)
                    stat, p = float(res.statistic), float(res.pvalue)
                else:
                    stat, p = float("nan"), float("nan")
                stats.add("4B", "ttest_rel DeePSim vs BigGAN", stat, p, len(fc), bool(p < 0.05), area=area,
                          block=block, correction="none (p < .05)", subset=subset,
                          note=note)
                tag = "" if not note else " [extra: last recorded block, valid]"
                print(f"  B {area} {which} block{tag}: DeePSim {np.mean(fc):.3f} vs BigGAN {np.mean(bg):.3f} "
                      f"(ttest_rel t = {stat:.2f}, p = {fmt_p(p)}, n = {len(fc)})")
                if note:
                    continue
                pos = i * 3 + (which == "last")
                ax.plot([pos - 0.2, pos + 0.2], [fc, bg], color="0.7", lw=0.5)
                ax.scatter(np.full(len(fc), pos - 0.2), fc, s=6, color=SPACE_COLORS["DeePSim"])
                ax.scatter(np.full(len(bg), pos + 0.2), bg, s=6, color=SPACE_COLORS["BigGAN"])
                ax.text(pos, 1.08, f"p={fmt_p(p)}", ha="center", fontsize=6)
    ax.set_xticks([i * 3 + j for i in range(len(areas)) for j in (0, 1)],
                  [f"{a}\n{w}" for a in areas for w in ("first", "last")], fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("max-normalised response")
    ax.set_title("B  first vs last block (paired; valid & any success)", fontsize=9)

    # C: mean trajectories per area (the paper: valid & bothsucc005, padded blocks included, ddof 0)
    ax = axes[2]
    styles = {"V1": "-", "V4": "--", "IT": ":"}
    for area in areas:
        for _, _, name in THREADS:
            sel = (masks[f"{area}msk"] & masks["valid"] & masks["bothsucc005"]).to_numpy()
            arr = traj[name]["mean"][sel]
            m, se = arr.mean(0), arr.std(0) / np.sqrt(sel.sum())
            blocks = np.arange(arr.shape[1])
            ax.plot(blocks, m, styles[area], color=SPACE_COLORS[name], label=f"{area} {label(name, data.paper)}")
            ax.fill_between(blocks, m - se, m + se, color=SPACE_COLORS[name], alpha=0.15, lw=0)
            if sel.any():
                print(f"  C {area} {label(name, data.paper)} (valid & both successful, n = {sel.sum()}): block 0 "
                      f"{m[0]:.4f} +/- {se[0]:.4f}, last block {m[-1]:.4f} +/- {se[-1]:.4f} (mean +/- SEM, ddof 0)")
            if args.extras:
                sel = (masks[f"{area}msk"] & masks["valid"]).to_numpy()
                arr = np.where(recorded, traj[name]["mean"], np.nan)[sel]
                n = np.isfinite(arr).sum(0)
                m = np.nanmean(arr, 0)
                se = np.nanstd(arr, 0, ddof=1) / np.sqrt(np.maximum(n, 1))
                ax.plot(blocks, m, styles[area], color=SPACE_COLORS[name], lw=0.8, alpha=0.6,
                        label=f"{area} {label(name, data.paper)} [extra: valid, padding masked]")
                print(f"  C {area} {label(name, data.paper)} [extra: valid, padding masked, ddof 1] (n = {sel.sum()}): "
                      f"block 0 {m[0]:.4f} +/- {se[0]:.4f}, last block {m[-1]:.4f} +/- {se[-1]:.4f}")
    ax.set_xlabel("block")
    ax.set_ylabel("max-normalised response")
    ax.set_title("C  trajectories (mean +/- SEM; valid & both successful)", fontsize=9)
    ax.legend(fontsize=6, frameon=False)

    # D: time constants of threads that succeeded at p < 0.01, all of them averaged (the paper's). An
    # exponential fit can return a time constant far beyond the run (a trajectory still rising at the end):
    # those are drawn as triangles at the run length; --extras also prints the mean without them.
    ax = axes[3]
    run_length = recorded.shape[1]
    for i, area in enumerate(areas):
        for k, (t, prefix, name) in enumerate(THREADS):
            sel = tc[(tc["visual_area"] == area) & tc["valid"].astype(bool) & (tc[f"p_maxinit_{t}"] < 0.01)
                     & (tc[f"t_maxinit_{t}"] > 0)]
            all_vals = sel[f"{prefix}_tc0_bslinit"].to_numpy(float)
            m, lo, hi = mean_ci(all_vals)          # the paper's set: every successful thread
            print(f"  D {area} {label(name, data.paper)}: tau = {m:.4f} blocks [95% t-CI {lo:.2f}, {hi:.2f}], "
                  f"n = {len(all_vals)} successful (p < .01) threads")
            kept = sel[f"{prefix}_tc0_converged"].astype(bool).to_numpy()
            beyond = all_vals > run_length
            vals = all_vals[kept & ~beyond]
            if args.extras:
                m, lo, hi = mean_ci(vals)
            pos = i + (k - 0.5) * 0.35
            ax.scatter(np.full(len(vals), pos), vals, s=6, color=SPACE_COLORS[name], alpha=0.5)
            if beyond.any():
                ax.scatter(np.full(int(beyond.sum()), pos), np.full(int(beyond.sum()), run_length), marker="^", s=14,
                           facecolors="none", edgecolors=SPACE_COLORS[name])
            if np.isfinite(m) and m <= run_length:
                ax.errorbar(pos, m, yerr=[[m - lo], [hi - m]] if np.isfinite(lo) else None, fmt="o",
                            color="k", ms=4, capsize=3)
            elif np.isfinite(m):     # a mean beyond the run (taus that never level off): named at the top
                ax.annotate(f"mean {m:.0f}", (pos, run_length), textcoords="offset points", xytext=(0, 2),
                            ha="center", fontsize=6)
            if args.extras:
                print(f"  D {area} {label(name, data.paper)} [extra: converged, tau <= run length]: tau = {m:.2f} "
                      f"blocks [95% CI {lo:.2f}, {hi:.2f}], n = {len(vals)}; {int(beyond.sum())} with tau > the "
                      f"run's {run_length} blocks" + (f" (max {all_vals.max():.0f})" if beyond.any() else ""))
    ax.set_xticks(range(len(areas)), [a if data.paper else f"{a}-like" for a in areas])
    ax.set_ylabel("time constant (blocks)")
    ax.set_ylim(0, run_length * 1.08)
    ax.set_title(f"D  time constant, threads with p < .01\n(\u25b3: tau > run length of {run_length} blocks"
                 + (", not in the extra mean)" if args.extras else ")"), fontsize=8)
    fig.tight_layout()
    save(fig, args.out, "Figure4_reproduction")
    stats.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

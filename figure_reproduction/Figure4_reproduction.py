#!/usr/bin/env python
"""Figure 4 (in silico): success rates, first/last-block comparison, trajectories and time constants per area.

A: success rate of each space per area with 90 % CIs (``Fig4A_SuccessRate_maxinit.csv``).
B: paired t-test (``ttest_rel``) of the DeePSim- vs BigGAN-stand-in max-normalised response at
the first and the last recorded block, per area, over valid experiments.
C: mean +/- SEM of the max-normalised trajectories per area (blocks beyond an experiment's
last recorded block, ``Figure4_src_extrapolation_mask_arr.csv`` False, are left out — in that
file True means *recorded*, the opposite of the reference notebook's comment).
D: convergence time constants of threads that succeeded at p < 0.01, mean with 95 % CI; time
   constants beyond the run length are marked and not averaged.

Ours and the paper's download use the same file names; ``_load`` brings both into one form. The
paper's tables have no ``Exp`` index (rows are matched by position, as its script does), its
extrapolation mask is read like its script (``header=None``; a header row of block numbers is
dropped), its success-rate rows are V1, V4, IT in that order, and its time-constant table has no
``valid``, ``t_maxinit`` or ``*_converged`` columns (valid comes from the masks file; success is then
p < .01 alone and every fit counts as converged, as in the paper).
"""
from __future__ import annotations

import sys

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from _figcommon import (SPACE_COLORS, arguments, as_bool, bool_matrix, fail, fmt_p, label, matrix, mean_ci, plt,
                        read_csv, read_json, save, split_index)

THREADS = ((0, "FC", "DeePSim"), (1, "BG", "BigGAN"))
AREAS = ("V1", "V4", "IT")


@dataclass
class Fig4Data:
    """Both file sets in one form; every per-experiment array has the rows of ``masks``."""
    rates: pd.DataFrame                     # index = area
    criterion: str                          # how success was defined (title of A)
    masks: pd.DataFrame                     # bool columns valid, V1msk, V4msk, ITmsk
    recorded: np.ndarray                    # experiments x blocks, True = recorded block
    traj: dict[str, dict[str, np.ndarray]]  # space -> mean/sem -> experiments x blocks
    tc: pd.DataFrame                        # time constants with visual_area, valid, p/t_maxinit_t, *_converged


def _load(d: Path) -> Fig4Data:
    labels_file = read_json(d / "Fig4A_sucs_labels.txt") if (d / "Fig4A_sucs_labels.txt").exists() else {}
    index, rates = split_index(read_csv(d / "Fig4A_SuccessRate_maxinit.csv"))
    if index is None:   # the paper's file: rows V1, V4, IT without a label column
        index = labels_file.get("labels", list(AREAS[:len(rates)]))
    rates = rates.set_axis(pd.Index(index, name="area"))
    criterion = labels_file.get("sucs_criterion_label", "p < .05")
    exp_index, masks = split_index(read_csv(d / "Figure4_src_exp_masks_and_succ_labels.csv"))
    masks = pd.DataFrame({c: as_bool(masks[c]) for c in ("valid", "V1msk", "V4msk", "ITmsk") if c in masks})
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
    return Fig4Data(rates, criterion, masks, recorded, traj, tc)


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
        ax.bar(x + (k - 0.5) * 0.38, r, 0.38, yerr=err, color=SPACE_COLORS[name], label=label(name), capsize=3)
    ax.set_xticks(x, [f"{a}-like\n(n={n})" for a, n in zip(rates.index, rates["total"])])
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

    # B: first vs last block, paired t-test per area
    ax = axes[1]
    last_index = recorded.shape[1] - 1 - np.argmax(recorded[:, ::-1], axis=1)   # last recorded block per experiment
    rows = np.arange(recorded.shape[0])
    for i, area in enumerate(areas):
        sel = (masks[f"{area}msk"] & masks["valid"]).to_numpy()
        for j, (which, cols) in enumerate((("first", np.zeros_like(last_index)), ("last", last_index))):
            fc = traj["DeePSim"]["mean"][rows, cols][sel]
            bg = traj["BigGAN"]["mean"][rows, cols][sel]
            ok = np.isfinite(fc) & np.isfinite(bg)
            pos = i * 3 + j
            ax.plot([pos - 0.2, pos + 0.2], [fc[ok], bg[ok]], color="0.7", lw=0.5)
            ax.scatter(np.full(ok.sum(), pos - 0.2), fc[ok], s=6, color=SPACE_COLORS["DeePSim"])
            ax.scatter(np.full(ok.sum(), pos + 0.2), bg[ok], s=6, color=SPACE_COLORS["BigGAN"])
            if ok.sum() >= 2 and np.any(fc[ok] != bg[ok]):
                res = ttest_rel(fc[ok], bg[ok])
                stat, p = float(res.statistic), float(res.pvalue)
            else:
                stat, p = float("nan"), float("nan")
            ax.text(pos, 1.08, f"p={fmt_p(p)}", ha="center", fontsize=6)
            print(f"  B {area} {which} block: DeePSim {np.mean(fc[ok]):.3f} vs BigGAN {np.mean(bg[ok]):.3f} "
                  f"(ttest_rel t = {stat:.2f}, p = {fmt_p(p)}, n = {ok.sum()})")
    ax.set_xticks([i * 3 + j for i in range(len(areas)) for j in (0, 1)],
                  [f"{a}\n{w}" for a in areas for w in ("first", "last")], fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("max-normalised response")
    ax.set_title("B  first vs last block (paired)", fontsize=9)

    # C: mean trajectories per area
    ax = axes[2]
    styles = {"V1": "-", "V4": "--", "IT": ":"}
    for area in areas:
        sel = (masks[f"{area}msk"] & masks["valid"]).to_numpy()
        for _, _, name in THREADS:
            arr = np.where(recorded, traj[name]["mean"], np.nan)[sel]
            n = np.isfinite(arr).sum(0)
            m = np.nanmean(arr, 0)
            se = np.nanstd(arr, 0, ddof=1) / np.sqrt(np.maximum(n, 1))
            blocks = np.arange(arr.shape[1])
            ax.plot(blocks, m, styles[area], color=SPACE_COLORS[name], label=f"{area} {label(name)}")
            ax.fill_between(blocks, m - se, m + se, color=SPACE_COLORS[name], alpha=0.15, lw=0)
    ax.set_xlabel("block")
    ax.set_ylabel("max-normalised response")
    ax.set_title("C  trajectories (mean +/- SEM)", fontsize=9)
    ax.legend(fontsize=6, frameon=False)

    # D: time constants of threads that succeeded at p < 0.01. An exponential fit can return a time
    # constant far beyond the run (a trajectory still rising at the end): those are drawn as triangles
    # at the run length and left out of the mean, which would otherwise be an extrapolation.
    ax = axes[3]
    run_length = recorded.shape[1]
    for i, area in enumerate(areas):
        for k, (t, prefix, name) in enumerate(THREADS):
            sel = tc[(tc["visual_area"] == area) & tc["valid"].astype(bool) & (tc[f"p_maxinit_{t}"] < 0.01)
                     & (tc[f"t_maxinit_{t}"] > 0) & tc[f"{prefix}_tc0_converged"].astype(bool)]
            all_vals = sel[f"{prefix}_tc0_bslinit"].to_numpy(float)
            beyond = all_vals > run_length
            vals = all_vals[~beyond]
            m, lo, hi = mean_ci(vals)
            pos = i + (k - 0.5) * 0.35
            ax.scatter(np.full(len(vals), pos), vals, s=6, color=SPACE_COLORS[name], alpha=0.5)
            if beyond.any():
                ax.scatter(np.full(int(beyond.sum()), pos), np.full(int(beyond.sum()), run_length), marker="^", s=14,
                           facecolors="none", edgecolors=SPACE_COLORS[name])
            if np.isfinite(m):
                ax.errorbar(pos, m, yerr=[[m - lo], [hi - m]] if np.isfinite(lo) else None, fmt="o",
                            color="k", ms=4, capsize=3)
            print(f"  D {area} {label(name)}: tau = {m:.2f} blocks [95% CI {lo:.2f}, {hi:.2f}], "
                  f"n = {len(vals)} successful (p < .01) converged threads; {int(beyond.sum())} more with "
                  f"tau > the run's {run_length} blocks" + (f" (max {all_vals.max():.0f})" if beyond.any() else "")
                  + ", not averaged")
    ax.set_xticks(range(len(areas)), [f"{a}-like" for a in areas])
    ax.set_ylabel("time constant (blocks)")
    ax.set_ylim(0, run_length * 1.08)
    ax.set_title(f"D  time constant, threads with p < .01\n(\u25b3: tau > run length of {run_length} blocks, "
                 "not in the mean)", fontsize=8)
    fig.tight_layout()
    save(fig, args.out, "Figure4_reproduction")
    return 0


if __name__ == "__main__":
    sys.exit(main())

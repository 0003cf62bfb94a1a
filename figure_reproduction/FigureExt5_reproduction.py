#!/usr/bin/env python
"""Extended Figure 5: how optimizers cope with depth and dimension; how linear are the latent codes?

Panels, each drawn only when its table is in ``source_data/ExtendedFig5/`` (the others are named
and skipped):

* C (paper): optimised score (``gaussian_value``) vs RealNVP depth (``stack_size``), one line
  per ``dimension``, for Adam (``FigureExt5C_Adam_optim_score_as_function_of_depth_and_dim_logscale_quad_case.csv``)
  and CMA-ES (``FigureExt5C_realnvp_layer_dim_cmaes_optim_result_logscale_quad_case.csv``);
  with ``--extras`` also the Spearman correlation of score with depth per dimension (the paper's
  script draws the lines without a test).
* C (in-silico analogue, ``FigureExt5C_insilico_optimizer_score_vs_dimension.csv`` from
  ``make_source_data.py``): fraction of a model neuron's known optimum each optimizer reaches
  in ``fourier:size=N`` spaces of growing dimension, for a fixed budget; Spearman correlation
  of that fraction with dimension per optimizer. It stands in for the dimension axis of C only;
  nothing here stands in for RealNVP depth.
* D/E (paper): test R^2 of CaffeNet layer activations predicted linearly from BigGAN (D,
  ``FigureExt6D_BigGAN_Caffenet_latent_code_linearity_results.csv``) or DeePSim fc6 (E,
  ``FigureExt6E_DeePSim_FC6_Caffenet_latent_code_linearity_results.csv``) codes, per layer,
  non-ReLU and ReLU layers apart; Spearman correlation of R^2 with ``Layer_index``, averaged
  over 100 draws of the same number of units per layer (the paper's unit matching).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from _figcommon import Stats, arguments, fail, fmt_p, plt, read_csv, save

PAPER_C = {"Adam": "FigureExt5C_Adam_optim_score_as_function_of_depth_and_dim_logscale_quad_case.csv",
           "CMA-ES": "FigureExt5C_realnvp_layer_dim_cmaes_optim_result_logscale_quad_case.csv"}
INSILICO_C = "FigureExt5C_insilico_optimizer_score_vs_dimension.csv"
LINEARITY = {"D": ("BigGAN", "FigureExt6D_BigGAN_Caffenet_latent_code_linearity_results.csv",
                   ("Test_R2", "Test_R2_class", "Test_R2_noise")),
             "E": ("DeePSim", "FigureExt6E_DeePSim_FC6_Caffenet_latent_code_linearity_results.csv",
                   ("Test_R2", "Test_R2_top_Hess512", "Test_R2_null_Hess512"))}
MATCHED_UNITS = 96       # units drawn per layer in the paper's unit matching
DRAWS = 100
STATS = Stats("FigureExt5")


def require(df: pd.DataFrame, cols: set[str], name: str) -> None:
    missing = cols - set(df.columns)
    if missing:
        fail(f"{name} lacks columns {sorted(missing)}")


def paper_c(ax: plt.Axes, df: pd.DataFrame, optimizer: str, extras: bool = False) -> list[str]:
    """Score vs RealNVP depth, one line per dimension; Spearman of score with depth per dimension."""
    lines = []
    for k, (dim, g) in enumerate(df.groupby("dimension", sort=True)):
        m = g.groupby("stack_size")["gaussian_value"].agg(["mean", "sem"])
        ax.errorbar(m.index, m["mean"], yerr=m["sem"].fillna(0), fmt="o-", ms=3, capsize=2, color=f"C{k}",
                    label=f"dim {dim}")
        if not extras:      # the paper's script draws these lines without a test
            lines.append(f"  C paper {optimizer} dimension {dim}: score {m['mean'].iloc[0]:.4g} at depth {m.index[0]}, "
                         f"{m['mean'].iloc[-1]:.4g} at depth {m.index[-1]} ({len(g)} runs)")
            continue
        rho, p = spearmanr(g["stack_size"], g["gaussian_value"])
        STATS.add("Ext5C", f"spearmanr depth vs score ({optimizer}, dimension {dim})", rho, p, len(g), bool(p < 0.05),
                  correction="none (p < .05)", note="extra: the paper's script draws these lines without a test")
        lines.append(f"  C paper {optimizer} dimension {dim}: score {m['mean'].iloc[0]:.4g} at depth {m.index[0]}, "
                     f"{m['mean'].iloc[-1]:.4g} at depth {m.index[-1]}; Spearman rho(depth, score) = {rho:.4f}, "
                     f"p = {fmt_p(p)} ({len(g)} runs)")
    ax.set_xlabel("RealNVP network depth (stack_size)")
    ax.set_ylabel("optimised score (gaussian_value)")
    ax.set_title(f"C  {optimizer}: score vs depth and dimension", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return lines


def insilico_c(ax: plt.Axes, df: pd.DataFrame) -> list[str]:
    """Fraction of the known optimum vs dimension, one line per optimizer (mean +- SEM over units)."""
    lines = []
    for k, (opt, g) in enumerate(df.groupby("optimizer", sort=False)):
        m = g.groupby("dimension")["fraction_of_optimum"].agg(["mean", "sem", "count"])
        ax.errorbar(m.index, m["mean"], yerr=m["sem"].fillna(0), fmt="o-", ms=3, capsize=2, color=f"C{k}", label=opt)
        rho, p = spearmanr(g["dimension"], g["fraction_of_optimum"])
        STATS.add("Ext5C", f"spearmanr dimension vs fraction of optimum ({opt})", rho, p, len(g), bool(p < 0.05),
                  correction="none (p < .05)", note="in-silico analogue")
        per_dim = ", ".join(f"{d}-d {v:.4f}" for d, v in m["mean"].items())
        lines.append(f"  C in silico {opt}: mean fraction of optimum {per_dim}; Spearman rho(dimension, fraction) = "
                     f"{rho:.4f}, p = {fmt_p(p)} ({len(g)} runs, {int(m['count'].iloc[0])} units per dimension)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("search-space dimension (fourier:size=N; image resolution grows with N)")
    ax.set_ylabel("best response / known optimum")
    budget = int(df["evaluations"].max())
    ax.set_title(f"C  in silico: optimizers vs dimension ({budget} evaluations, model neurons)", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return lines


def unit_matched_spearman(df: pd.DataFrame, metric: str, rng: np.random.Generator) -> tuple[float, float, int]:
    """Mean Spearman r (and mean p) of ``metric`` with ``Layer_index`` over draws of equal units per layer."""
    n = min(MATCHED_UNITS, int(df.groupby("Layer").size().min()))
    groups = [g[["Layer_index", metric]].to_numpy(float) for _, g in df.groupby("Layer")]
    rs, ps = [], []
    for _ in range(DRAWS):
        sample = np.concatenate([g[rng.choice(len(g), n, replace=False)] for g in groups])
        r, p = spearmanr(sample[:, 0], sample[:, 1])
        rs.append(r)
        ps.append(p)
    return float(np.mean(rs)), float(np.mean(ps)), n


def linearity(axes: np.ndarray, df: pd.DataFrame, panel: str, gan: str, metrics: list[str]) -> list[str]:
    """Box plots of R^2 per layer and metric (non-ReLU and ReLU layers apart), with unit-matched Spearman r."""
    relu = df["Layer"].astype(str).str.contains("relu")
    rng = np.random.default_rng(0)
    lines = []
    for ax, (name, part) in zip(axes, (("non-ReLU", df[~relu]), ("ReLU", df[relu]))):
        if part.empty:
            ax.set_axis_off()
            lines.append(f"  {panel} {gan} {name} layers: none in the table")
            continue
        layers = part.drop_duplicates("Layer").sort_values("Layer_index")["Layer"].tolist()
        width = 0.8 / len(metrics)
        for k, metric in enumerate(metrics):
            data = [part.loc[part["Layer"] == layer, metric].dropna().to_numpy() for layer in layers]
            pos = np.arange(len(layers)) + (k - (len(metrics) - 1) / 2) * width
            box = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=False)
            for patch in box["boxes"]:
                patch.set_facecolor(f"C{k}")
            r, p, n = unit_matched_spearman(part, metric, rng)
            STATS.add(f"Ext5{panel}", f"spearmanr Layer_index vs {metric} ({gan}, {name} layers)", r, p,
                      n * len(layers), bool(p < 0.05), correction="none; mean r and mean p over draws",
                      subset=f"{n} units per layer, {DRAWS} draws")
            ax.text(0.02, 0.97 - 0.06 * k, f"{metric}: r = {r:.3f}", color=f"C{k}", transform=ax.transAxes,
                    fontsize=7, va="top")
            lines.append(f"  {panel} {gan} {name} layers: Spearman r(Layer_index, {metric}) = {r:.4f} "
                         f"(mean p = {fmt_p(p)}; {n} units per layer, {DRAWS} draws)")
        ax.set_xticks(np.arange(len(layers)), layers, rotation=45, fontsize=7)
        ax.axhline(0, color="k", ls="--", lw=0.8)
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(-0.3, lo), min(1.05, hi))
        ax.set_xlabel("CaffeNet layer")
        ax.set_ylabel("test R^2")
        ax.set_title(f"{panel}  {gan} code -> CaffeNet units, {name} layers", fontsize=9)
    return lines


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    d = args.source_data / "ExtendedFig5"
    shown, absent, stats = [], [], []
    c_tables = []
    for optimizer, name in PAPER_C.items():
        if (d / name).exists():
            df = read_csv(d / name)
            require(df, {"gaussian_value", "stack_size", "dimension"}, name)
            c_tables.append((f"C paper {optimizer} (RealNVP depth x dimension)", lambda ax, df=df, o=optimizer:
                             paper_c(ax, df, o, args.extras)))
        else:
            absent.append(f"C paper {optimizer} ({name})")
    if (d / INSILICO_C).exists():
        df = read_csv(d / INSILICO_C)
        require(df, {"optimizer", "dimension", "fraction_of_optimum", "evaluations"}, INSILICO_C)
        c_tables.append(("C in-silico analogue (optimizers x fourier dimension on model neurons; stands in for "
                         "the dimension axis only, nothing stands in for RealNVP depth)", lambda ax, df=df: insilico_c(ax, df)))
    if c_tables:
        fig, axes = plt.subplots(1, len(c_tables), figsize=(5 * len(c_tables), 4), squeeze=False)
        for ax, (what, draw) in zip(axes[0], c_tables):
            shown.append(what)
            stats += draw(ax)
        fig.tight_layout()
        save(fig, args.out, "FigureExt5C_reproduction")
    for panel, (gan, name, metrics) in LINEARITY.items():
        if not (d / name).exists():
            absent.append(f"{panel} {gan} latent-code linearity ({name})")
            continue
        df = read_csv(d / name)
        require(df, {"Layer", "Layer_index", "Test_R2"}, name)
        present = [m for m in metrics if m in df.columns]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.5, 1]})
        shown.append(f"{panel} {gan} latent-code linearity")
        stats += linearity(axes, df, panel, gan, present)
        fig.tight_layout()
        save(fig, args.out, f"FigureExt5{panel}_reproduction")
    if not shown:
        fail(f"no Extended Fig. 5 table in {d}")
    print("statistics (Extended Figure 5)")
    print("  panels shown: " + "; ".join(shown))
    print("  panels absent (no table): " + ("; ".join(absent) or "none"))
    print("\n".join(stats))
    STATS.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

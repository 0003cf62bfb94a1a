"""Extended Figures 4 and 5: the scripts run on the committed source_data and on fixtures in the paper's layout.

The fixtures are written with the paper's file names, index columns and column names (taken from
the paper's figure scripts); each test recomputes a printed statistic independently.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr, ttest_ind, ttest_rel

from tests.conftest import REPO
from tests.conftest import run_script as run_figure_script

FIG_DIR = REPO / "figure_reproduction"
SOURCE = REPO / "source_data"


def run_script(name: str, out: Path, source: Path, *extra: str) -> subprocess.CompletedProcess:
    """The figure script, in this interpreter (tests/conftest.py: run_script), as `python SCRIPT ...` would run it."""
    return run_figure_script(FIG_DIR / f"{name}.py", "--source-data", str(source), "--out", str(out), *extra,
                             env={"MPLBACKEND": "Agg"})


def assert_figures(out: Path, names: list[str]) -> None:
    for name in names:
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 2000, f"{path} missing or empty"


def line(stdout: str, start: str) -> str:
    hits = [x for x in stdout.splitlines() if x.strip().startswith(start)]
    assert hits, f"no line starting {start!r} in:\n{stdout}"
    return hits[0]


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, written out (independent of the script's scipy call)."""
    order = np.argsort(p)
    ranked = p[order] * len(p) / (np.arange(len(p)) + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
    out = np.empty_like(adj)
    out[order] = adj
    return out


# ============================================================================================
# Extended Figure 4
# ============================================================================================
def write_paper_ext4(d: Path, rng: np.random.Generator, blocks: int = 12) -> pd.DataFrame:
    """The paper's ExtendedFig4 layout: integer Expi index, per-experiment attribution rows, 4C without index."""
    d.mkdir(parents=True)
    areas = ["V1"] * 5 + ["V4"] * 5 + ["IT"] * 5
    n = len(areas)
    meta = pd.DataFrame({"Animal": "Beto", "visual_area": areas, "valid": [True] * (n - 1) + [False],
                         "p_maxinit_0": rng.uniform(0, 0.005, n), "p_maxinit_1": rng.uniform(0, 0.005, n)},
                        index=pd.RangeIndex(1, n + 1, name="Expi"))
    meta.loc[2, "p_maxinit_1"] = 0.3                 # one BigGAN failure
    meta.to_csv(d / "FigureExt4_meta_df.csv")
    for bin_ms in (5, 10, 20, 25, 50):
        for space in ("DeePSim", "BigGAN"):
            x = rng.gamma(2.0, size=(n, 200 // bin_ms))
            pd.DataFrame(x / x.sum(1, keepdims=True), index=meta.index).to_csv(
                d / f"FigureExt4B_{space}_diff_attrib_norm_bin_tsr_{bin_ms}ms.csv")
    for length in (10, 20, 25, 50):
        for a in range(0, 200, length):
            base = rng.uniform(0.2, 0.9, size=(n, blocks))
            slices = {"DeePSim_mean": base + (0.3 if a == 0 else 0.0), "BigGAN_mean": base + rng.normal(0, 0.01, (n, blocks)),
                      "DeePSim_sem": np.full((n, blocks), 0.05), "BigGAN_sem": np.full((n, blocks), 0.05)}
            for name, arr in slices.items():
                pd.DataFrame(arr).to_csv(d / f"FigureExtended4C_src_normresp_wdw_{a}-{a + length}_{name}.csv",
                                         index=False)
    return meta


def test_ext4_runs_on_the_papers_layout(tmp_path):
    root = tmp_path / "sd"
    meta = write_paper_ext4(root / "ExtendedFig4", np.random.default_rng(0))
    res = run_script("FigureExt4_reproduction", tmp_path / "figs", root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "statistics" in res.stdout and "Traceback" not in res.stderr
    assert_figures(tmp_path / "figs", ["FigureExt4B_reproduction"] + [f"FigureExt4C_{n}ms_reproduction" for n in (10, 20, 25, 50)])
    # B: mean share of the V4 DeePSim successes, recomputed from the fixture
    att = pd.read_csv(root / "ExtendedFig4" / "FigureExt4B_DeePSim_diff_attrib_norm_bin_tsr_50ms.csv", index_col=0)
    msk = (meta["visual_area"] == "V4") & meta["valid"] & (meta["p_maxinit_0"] < 0.01)
    mean = att[msk.to_numpy()].to_numpy().mean(0)
    b = line(res.stdout, "B 50 ms V4:")
    assert f"DeePSim n = {msk.sum()}, peak share {mean.max():.4f}" in b
    # C: blocks where DeePSim beats BigGAN (paired t, BH-FDR .05), IT, 0-50 ms window
    both = meta["valid"] & (meta["p_maxinit_0"] < 0.01) & (meta["p_maxinit_1"] < 0.01) & (meta["visual_area"] == "IT")
    fc = pd.read_csv(root / "ExtendedFig4" / "FigureExtended4C_src_normresp_wdw_0-50_DeePSim_mean.csv").to_numpy()[both]
    bg = pd.read_csv(root / "ExtendedFig4" / "FigureExtended4C_src_normresp_wdw_0-50_BigGAN_mean.csv").to_numpy()[both]
    t, p = ttest_rel(fc, bg, axis=0)
    wins = int(((bh(p) < 0.05) & (t > 0)).sum())
    assert wins > 0
    c = line(res.stdout, "C 50 ms [0-50) IT")
    assert f"(n = {both.sum()}): blocks with DeePSim > BigGAN at FDR .05: {wins}," in c
    # stats.csv: every test of the paper's script, one row each, with its BH-FDR family
    from tests.test_figures import read_stats

    stats = read_stats(tmp_path / "figs", "FigureExt4")
    rows = stats[(stats["panel"] == "Ext4C") & (stats["area"] == "IT") & (stats["window_ms"] == "0-50")]
    assert list(rows["block"]) == [str(k) for k in range(12)]
    assert np.allclose(rows["statistic"], t) and np.allclose(rows["pvalue"], p)
    assert list(rows["significant"]) == [str(x) for x in bh(p) <= 0.05]
    assert set(stats.loc[stats["panel"] == "Ext4C", "area"]) <= {"V4", "IT"}     # the paper tests V4 and IT
    n_c = sum(200 // n for n in (10, 20, 25, 50)) * 12
    assert len(stats[stats["panel"] == "Ext4C"]) == n_c * stats.loc[stats["panel"] == "Ext4C", "area"].nunique()
    att = {s: pd.read_csv(root / "ExtendedFig4" / f"FigureExt4B_{s}_diff_attrib_norm_bin_tsr_25ms.csv",
                          index_col=0).to_numpy() for s in ("DeePSim", "BigGAN")}
    base = ((meta["visual_area"] == "V1") & meta["valid"]).to_numpy()
    a = att["DeePSim"][base & (meta["p_maxinit_0"] < 0.01).to_numpy()]
    b = att["BigGAN"][base & (meta["p_maxinit_1"] < 0.01).to_numpy()]
    t, p = ttest_ind(a, b, axis=0)
    rows = stats[(stats["panel"] == "Ext4B") & (stats["area"] == "V1") & stats["window_ms"].isin(
        [f"{k * 25}-{k * 25 + 25}" for k in range(8)])]
    assert len(rows) == 8 and np.allclose(rows["statistic"], t) and np.allclose(rows["pvalue"], p)
    assert list(rows["significant"]) == [str(x) for x in bh(p) <= 0.05]
    assert len(stats[stats["panel"] == "Ext4B"]) == 3 * sum(200 // n for n in (5, 10, 20, 25, 50))


def test_ext4_names_what_is_absent(tmp_path):
    root = tmp_path / "sd"
    write_paper_ext4(root / "ExtendedFig4", np.random.default_rng(1), blocks=6)
    for p in (root / "ExtendedFig4").glob("*_10ms.csv"):
        p.unlink()
    (root / "ExtendedFig4" / "FigureExtended4C_src_normresp_wdw_190-200_BigGAN_mean.csv").unlink()
    res = run_script("FigureExt4_reproduction", tmp_path / "figs", root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "absent (no tables): [10]" in line(res.stdout, "B bin sizes shown")
    assert "absent (no tables): [10]" in line(res.stdout, "C window lengths shown")
    assert not (tmp_path / "figs" / "FigureExt4C_10ms_reproduction.png").exists()


def test_ext4_runs_on_committed_data_and_its_bins_add_up(tmp_path):
    d = SOURCE / "ExtendedFig4"
    res = run_script("FigureExt4_reproduction", tmp_path, SOURCE)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "statistics" in res.stdout and re.search(r"\d\.\d", res.stdout)
    lengths = sorted({int(m.group(2)) - int(m.group(1)) for p in d.glob("FigureExtended4C_*_DeePSim_mean.csv")
                      if (m := re.search(r"wdw_(\d+)-(\d+)_", p.name))})
    assert lengths
    assert_figures(tmp_path, ["FigureExt4B_reproduction"] + [f"FigureExt4C_{n}ms_reproduction" for n in lengths])
    assert "absent (no experiments): ['IT']" in res.stdout
    meta = pd.read_csv(d / "FigureExt4_meta_df.csv", index_col=0)
    for space in ("DeePSim", "BigGAN"):
        fine = pd.read_csv(d / f"FigureExt4B_{space}_diff_attrib_norm_bin_tsr_5ms.csv", index_col=0)
        for n in (10, 20, 25, 50):
            att = pd.read_csv(d / f"FigureExt4B_{space}_diff_attrib_norm_bin_tsr_{n}ms.csv", index_col=0)
            assert list(att.index) == list(meta.index) and att.shape[1] == 200 // n
            rows = att.dropna()
            assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-3)                   # shares of the gain
            summed = fine.to_numpy().reshape(len(fine), -1, n // 5).sum(2)     # 5 ms bins merged
            ok = np.isfinite(summed).all(1)
            assert np.allclose(att.to_numpy()[ok], summed[ok], atol=1e-3)
    # the script averages the V1 DeePSim successes that have a gain to attribute (finite rows)
    succ = ((meta["visual_area"] == "V1") & meta["valid"] & (meta["p_maxinit_0"] < 0.01)).to_numpy()
    fine = pd.read_csv(d / "FigureExt4B_DeePSim_diff_attrib_norm_bin_tsr_5ms.csv", index_col=0).to_numpy()[succ]
    fine = fine[np.isfinite(fine).all(1)]
    assert len(fine) >= succ.sum() - 2
    assert f"DeePSim n = {len(fine)}, peak share {fine.mean(0).max():.4f}" in line(res.stdout, "B 5 ms V1:")


# ============================================================================================
# Extended Figure 5
# ============================================================================================
def write_paper_ext5(d: Path, rng: np.random.Generator) -> None:
    """The paper's ExtendedFig5 layout (written without an index, read without index_col)."""
    d.mkdir(parents=True)
    for name in ("FigureExt5C_Adam_optim_score_as_function_of_depth_and_dim_logscale_quad_case.csv",
                 "FigureExt5C_realnvp_layer_dim_cmaes_optim_result_logscale_quad_case.csv"):
        rows = [{"stack_size": depth, "dimension": dim, "rep": rep,
                 "gaussian_value": 1.0 / (1 + 0.1 * depth * np.log2(dim)) + rng.normal(0, 0.02)}
                for depth in (1, 2, 4, 8) for dim in (2, 16, 128) for rep in range(3)]
        pd.DataFrame(rows).to_csv(d / name, index=False)
    layers = ["conv1", "conv1_relu", "conv3", "conv3_relu", "fc6", "fc6_relu"]
    for name, extra in (("FigureExt6D_BigGAN_Caffenet_latent_code_linearity_results.csv", ("Test_R2_class", "Test_R2_noise")),
                        ("FigureExt6E_DeePSim_FC6_Caffenet_latent_code_linearity_results.csv",
                         ("Test_R2_top_Hess512", "Test_R2_null_Hess512"))):
        rows = []
        for i, layer in enumerate(layers):
            for unit in range(96):
                r2 = 0.9 - 0.1 * i + rng.normal(0, 0.1)
                rows.append({"Layer": layer, "Layer_index": i, "unit": unit, "Test_R2": r2,
                             extra[0]: r2 - 0.1, extra[1]: rng.normal(0, 0.05)})
        pd.DataFrame(rows).to_csv(d / name, index=False)


def test_ext5_runs_on_the_papers_layout(tmp_path):
    root = tmp_path / "sd"
    write_paper_ext5(root / "ExtendedFig5", np.random.default_rng(0))
    res = run_script("FigureExt5_reproduction", tmp_path / "figs", root, "--extras")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "statistics" in res.stdout and "Traceback" not in res.stderr
    assert_figures(tmp_path / "figs", ["FigureExt5C_reproduction", "FigureExt5D_reproduction", "FigureExt5E_reproduction"])
    assert "panels absent (no table): none" in res.stdout
    # 96 units in every layer: each unit-matched draw holds all of them, so r is the full-table Spearman
    lin = pd.read_csv(root / "ExtendedFig5" / "FigureExt6D_BigGAN_Caffenet_latent_code_linearity_results.csv")
    non_relu = lin[~lin["Layer"].str.contains("relu")]
    r = spearmanr(non_relu["Layer_index"], non_relu["Test_R2"])[0]
    assert f"D BigGAN non-ReLU layers: Spearman r(Layer_index, Test_R2) = {r:.4f}" in res.stdout
    cma = pd.read_csv(root / "ExtendedFig5" / "FigureExt5C_realnvp_layer_dim_cmaes_optim_result_logscale_quad_case.csv")
    g = cma[cma["dimension"] == 128]
    rho = spearmanr(g["stack_size"], g["gaussian_value"])[0]
    assert "C paper CMA-ES dimension 128: " in res.stdout
    assert f"Spearman rho(depth, score) = {rho:.4f}" in line(res.stdout, "C paper CMA-ES dimension 128")
    from tests.test_figures import read_stats

    stats = read_stats(tmp_path / "figs", "FigureExt5")
    assert len(stats) == 6 + 12         # C: 2 optimizers x 3 dimensions (our extra); D, E: 2 splits x 3 metrics
    row = stats[stats["test"] == "spearmanr Layer_index vs Test_R2 (BigGAN, non-ReLU layers)"].iloc[0]
    assert row["panel"] == "Ext5D" and np.isclose(row["statistic"], r) and row["n"] == 96 * 3
    row = stats[stats["test"] == "spearmanr depth vs score (CMA-ES, dimension 128)"].iloc[0]
    assert np.isclose(row["statistic"], rho) and "extra" in row["note"]


def test_ext5_runs_on_committed_data_and_says_what_is_missing(tmp_path):
    res = run_script("FigureExt5_reproduction", tmp_path, SOURCE)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_figures(tmp_path, ["FigureExt5C_reproduction"])
    assert not (tmp_path / "FigureExt5D_reproduction.png").exists()
    absent = line(res.stdout, "panels absent")
    for what in ("C paper Adam", "C paper CMA-ES", "D BigGAN", "E DeePSim"):
        assert what in absent
    assert "C in-silico analogue" in line(res.stdout, "panels shown")
    df = pd.read_csv(SOURCE / "ExtendedFig5" / "FigureExt5C_insilico_optimizer_score_vs_dimension.csv")
    opt = df["optimizer"].iloc[0]
    g = df[df["optimizer"] == opt]
    rho = spearmanr(g["dimension"], g["fraction_of_optimum"])[0]
    assert f"Spearman rho(dimension, fraction) = {rho:.4f}" in line(res.stdout, f"C in silico {opt}:")
    assert ((df["fraction_of_optimum"] > 0) & (df["fraction_of_optimum"] <= 1 + 1e-6)).all()


@pytest.mark.parametrize("name", ["FigureExt4_reproduction", "FigureExt5_reproduction"])
def test_ext_scripts_fail_cleanly_without_tables(name, tmp_path):
    (tmp_path / "sd" / "ExtendedFig4").mkdir(parents=True)
    (tmp_path / "sd" / "ExtendedFig5").mkdir(parents=True)
    res = run_script(name, tmp_path / "figs", tmp_path / "sd")
    assert res.returncode != 0 and "Traceback" not in res.stderr

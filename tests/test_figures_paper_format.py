"""Figure scripts on the paper's own source-data file set (names, columns, pickle keys as its scripts read them).

Every fixture is written here, in tmp_path, with small random but plausible numbers (IT rows
included where the paper has them); nothing is committed as data.
"""
from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, f_oneway, linregress, pearsonr, ttest_ind, ttest_rel

from tests.conftest import run_script
from tests.test_figures import FIG_DIR, read_stats
from tests.test_figures_ext import bh

EXP = "Exp155"
AREAS = ["V1"] * 4 + ["V4"] * 5 + ["IT"] * 6
N_EXP, BLOCKS = len(AREAS), 12


def run(name: str, source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """The figure script, in this interpreter (tests/conftest.py: run_script), as `python SCRIPT ...` would run it."""
    return run_script(FIG_DIR / f"{name}.py", "--source-data", str(source), "--out", str(out), *extra,
                      env={"MPLBACKEND": "Agg"})


def assert_figure(res: subprocess.CompletedProcess, out: Path, name: str) -> None:
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "statistics" in res.stdout
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        assert path.exists() and path.stat().st_size > 2000, f"{path} missing or empty"


class Marker:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# -- Figure 2 --------------------------------------------------------------------------------
def _fig2_tables(rng) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    tables = {}
    for t, name in enumerate(("DeePSim", "BigGAN")):
        gen = np.repeat(np.arange(BLOCKS), 20)
        tables[f"thread{t}_resp_df"] = pd.DataFrame({"gen": gen, "resp": rng.poisson(20 + 3 * gen + 10 * t).astype(float),
                                                     "bsl": rng.poisson(8, gen.size).astype(float)})
        ref = np.repeat(np.arange(BLOCKS), 5)
        tables[f"thread{t}_natref_resp_df"] = pd.DataFrame({"gen": ref, "resp": rng.poisson(25, ref.size).astype(float),
                                                            "bsl": rng.poisson(8, ref.size).astype(float)})
    t_ms = np.arange(200)
    bump = np.exp(-0.5 * ((t_ms - 90) / 20) ** 2)
    psth = np.zeros((BLOCKS, 4, 200))      # the paper's order: DeePSim mean, BigGAN mean, DeePSim sem, BigGAN sem
    for b in range(BLOCKS):
        psth[b, 0] = 10 + (40 + 5 * b) * bump
        psth[b, 1] = 10 + (30 + 2 * b) * bump
        psth[b, 2:] = 3.0
    return tables, psth


def write_fig2_csv(root: Path, rng) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    d = root / "Fig2"
    d.mkdir(parents=True)
    tables, psth = _fig2_tables(rng)
    for t, name in enumerate(("DeePSim", "BigGAN")):
        tables[f"thread{t}_resp_df"].to_csv(d / f"Figure2B_src_resp_{EXP}_{name}_thread_evol.csv", index=False)
        tables[f"thread{t}_natref_resp_df"].to_csv(d / f"Figure2B_src_resp_{EXP}_{name}_thread_natref.csv", index=False)
    for i, s in enumerate(("DeePSim_mean", "BigGAN_mean", "DeePSim_sem", "BigGAN_sem")):
        pd.DataFrame(psth[:, i, :]).to_csv(d / f"Figure2D_src_psth_{EXP}_{s}.csv", index=False)
    (d / f"Figure2D_src_psth_{EXP}_meta.txt").write_text(json.dumps({"offset": 100, "expstr": "Exp 155 PIT ch 21"}))
    return tables, psth


def write_fig2_pickles(root: Path, rng, payload=None) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    d = root / "Fig2"
    d.mkdir(parents=True)
    tables, psth = _fig2_tables(rng)
    with open(d / f"Figure2B_src_resp_{EXP}.pkl", "wb") as fh:
        pickle.dump(payload if payload is not None else tables, fh)
    with open(d / f"Figure2D_src_psth_{EXP}.pkl", "wb") as fh:
        pickle.dump(payload if payload is not None else {"psth_arr": psth, "offset": 100, "expstr": "Exp 155 PIT"}, fh)
    return tables, psth


def _fig2_expected(tables, psth) -> list[str]:
    out = []
    for t in (0, 1):
        evol = tables[f"thread{t}_resp_df"]
        init, final = evol[evol.gen <= 1].resp, evol[evol.gen >= BLOCKS - 2].resp
        out.append(f"generations 0-1 {init.mean():.2f} Hz -> last two {final.mean():.2f} Hz")
    # D is read by name: BigGAN's last-block peak comes from slice 1 of psth_arr / the BigGAN_mean CSV
    out.append(f"PSTH BigGAN: peak {psth[0, 1].max():.2f} Hz at 90 ms in block 0, "
               f"{psth[-1, 1].max():.2f} Hz at 90 ms in block {BLOCKS - 1}")
    out.append(f"PSTH DeePSim: peak {psth[0, 0].max():.2f} Hz")
    return out


def test_figure2_paper_csv(tmp_path):
    tables, psth = write_fig2_csv(tmp_path / "sd", np.random.default_rng(0))
    res = run("Figure2_reproduction", tmp_path / "sd", tmp_path / "out", "--extras")
    assert_figure(res, tmp_path / "out", "Figure2_reproduction")
    for line in _fig2_expected(tables, psth):
        assert line in res.stdout, res.stdout
    assert "Exp 155 PIT ch 21" in res.stdout
    assert "(fourier)" not in res.stdout and "(gabor)" not in res.stdout      # the paper's files: real labels
    stats = read_stats(tmp_path / "out", "Figure2")
    assert len(stats) == 2
    for t, name in enumerate(("DeePSim", "BigGAN")):
        evol = tables[f"thread{t}_resp_df"]
        want = ttest_ind(evol[evol.gen >= BLOCKS - 2].resp, evol[evol.gen <= 1].resp)
        row = stats[stats["test"].str.contains(f"({name})", regex=False)].iloc[0]
        assert row["panel"] == "2B" and row["n"] == 80 and "extra" in row["note"]
        assert f"[extra: ttest_ind t = {want.statistic:.2f}, p = " in res.stdout
        assert np.isclose(row["statistic"], want.statistic) and np.isclose(row["pvalue"], want.pvalue)


def test_figure2_paper_pickles_with_allow_pickle(tmp_path):
    tables, psth = write_fig2_pickles(tmp_path / "sd", np.random.default_rng(1))
    res = run("Figure2_reproduction", tmp_path / "sd", tmp_path / "out", "--allow-pickle")
    assert_figure(res, tmp_path / "out", "Figure2_reproduction")
    for line in _fig2_expected(tables, psth):
        assert line in res.stdout, res.stdout
    assert read_stats(tmp_path / "out", "Figure2").empty and "extra" not in res.stdout   # the paper runs no test


def test_figure2_pickle_without_flag_is_refused_unread(tmp_path):
    marker = tmp_path / "unpickled"
    write_fig2_pickles(tmp_path / "sd", np.random.default_rng(2), payload=Marker(marker))
    with open(tmp_path / "sd" / "Fig2" / f"Figure2D_src_psth_{EXP}.pkl", "rb") as fh:   # the marker works
        pickle.load(fh)
    assert marker.exists()
    marker.unlink()
    res = run("Figure2_reproduction", tmp_path / "sd", tmp_path / "out")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and ".pkl" in lines[0] and "--allow-pickle" in lines[0]
    assert "Traceback" not in res.stderr
    assert not marker.exists()
    assert not (tmp_path / "out" / "Figure2_reproduction.png").exists()


# -- Figure 3G -------------------------------------------------------------------------------
def write_fig3(root: Path, rng) -> pd.DataFrame:
    d = root / "Fig3"
    d.mkdir(parents=True)
    n = 24
    x = rng.uniform(0.1, 0.9, n)
    dist = pd.DataFrame({"Expi": np.arange(1, n + 1), "cosine_reevol_resnet_avgpool": x,
                         "reevol_pix_RNrobust_L4focus": rng.uniform(0.2, 0.8, n),
                         "psth_MAE": 0.5 * x + rng.normal(0, 0.05, n), "act_MAE": rng.uniform(0, 1, n),
                         "visual_area": rng.choice(["V1", "V4", "IT"], n)})
    meta = pd.DataFrame({"Expi": np.arange(1, n + 1), "Animal": "Alfa", "valid": rng.random(n) > 0.15,
                         "p_maxinit_0": rng.uniform(0, 0.08, n), "p_maxinit_1": rng.uniform(0, 0.08, n),
                         "visual_area": dist["visual_area"]})
    dist.to_csv(d / "Fig3G_proto_imdist_psth_covstr_sim_df.csv", index=False)
    meta.to_csv(d / "Fig3_meta_df.csv", index=False)
    sel = dist[meta.valid & (meta.p_maxinit_0 < 0.05) & (meta.p_maxinit_1 < 0.05)]
    return sel


def test_figure3g_paper_csv(tmp_path):
    sel = write_fig3(tmp_path / "sd", np.random.default_rng(3))
    res = run("Figure3G_reproduction", tmp_path / "sd", tmp_path / "out")
    assert_figure(res, tmp_path / "out", "Figure3G_reproduction")
    r, _ = pearsonr(sel["cosine_reevol_resnet_avgpool"], sel["psth_MAE"])
    assert f"psth_MAE vs cosine_reevol_resnet_avgpool: r = {r:.2f}" in res.stdout
    assert f"statistics (Figure 3G): {len(sel)} of 24" in res.stdout
    stats = read_stats(tmp_path / "out", "Figure3G")
    assert len(stats) == 4 and set(stats["panel"]) == {"3G"}
    for x in ("cosine_reevol_resnet_avgpool", "reevol_pix_RNrobust_L4focus"):
        for y in ("psth_MAE", "act_MAE"):
            want = pearsonr(sel[x], sel[y])
            row = stats[stats["test"] == f"pearsonr {y} vs {x}"].iloc[0]
            assert np.isclose(row["statistic"], want[0]) and np.isclose(row["pvalue"], want[1])
            assert row["n"] == len(sel)


# -- Figure 4 --------------------------------------------------------------------------------
def write_fig4(root: Path, rng, mask_header: bool = True) -> dict:
    d = root / "Fig4"
    d.mkdir(parents=True)
    lengths = rng.integers(8, BLOCKS + 1, N_EXP)
    recorded = np.arange(BLOCKS)[None, :] < lengths[:, None]
    valid = np.ones(N_EXP, bool)
    valid[[1, 7]] = False
    any_s, both_s = rng.random(N_EXP) > 0.2, rng.random(N_EXP) > 0.4
    any_s |= both_s
    rise = 1 - np.exp(-np.arange(BLOCKS) / 4)
    mean = {"DeePSim": 0.3 + 0.6 * rise[None, :] * rng.uniform(0.5, 1, (N_EXP, 1)) + rng.normal(0, 0.03, (N_EXP, BLOCKS)),
            "BigGAN": 0.3 + 0.5 * rise[None, :] * rng.uniform(0.5, 1, (N_EXP, 1)) + rng.normal(0, 0.03, (N_EXP, BLOCKS))}
    for m in mean.values():     # the paper pads a short run with the mean of its last two recorded blocks
        for i, n in enumerate(lengths):
            m[i, n:] = m[i, n - 2:n].mean()
    for name, m in mean.items():
        pd.DataFrame(m).to_csv(d / f"Figure4_src_maxnorm_resp_stats_all_exps_{name}_mean_data.csv", index=False)
        pd.DataFrame(np.full_like(m, 0.05)).to_csv(d / f"Figure4_src_maxnorm_resp_stats_all_exps_{name}_sem_data.csv",
                                                   index=False)
    area = np.array(AREAS)
    pd.DataFrame({"Expi": np.arange(N_EXP) + 1, "visual_area": area, "valid": valid, "V1msk": area == "V1",
                  "V4msk": area == "V4", "ITmsk": area == "IT", "anysucc005": any_s, "bothsucc005": both_s}
                 ).to_csv(d / "Figure4_src_exp_masks_and_succ_labels.csv", index=False)
    # with or without a header row 0..n-1 (DataFrame.to_csv writes one; the paper's script reads header=None)
    pd.DataFrame(recorded).to_csv(d / "Figure4_src_extrapolation_mask_arr.csv", index=False, header=mask_header)
    rates = pd.DataFrame({"FC_rate": [0.6, 0.7, 0.8], "BG_rate": [0.5, 0.6, 0.3], "FC_CI_1": [0.4, 0.5, 0.6],
                          "FC_CI_2": [0.8, 0.85, 0.9], "BG_CI_1": [0.3, 0.4, 0.1], "BG_CI_2": [0.7, 0.8, 0.5],
                          "FC_suc": [3, 7, 16], "BG_suc": [2, 6, 6], "total": [5, 10, 20]})
    rates.to_csv(d / "Fig4A_SuccessRate_maxinit.csv", index=False)
    (d / "Fig4A_sucs_labels.txt").write_text(json.dumps({"sucs_criterion_label": "p_maxinit < 0.05",
                                                         "sucs_label": "maxinit"}))
    tc = pd.DataFrame({"Expi": np.arange(N_EXP) + 1, "visual_area": area, "FC_tc0_bslinit": rng.uniform(2, 8, N_EXP),
                       "BG_tc0_bslinit": rng.uniform(2, 8, N_EXP), "p_maxinit_0": rng.uniform(0, 0.02, N_EXP),
                       "p_maxinit_1": rng.uniform(0, 0.02, N_EXP)})
    tc.to_csv(d / "Figure4_src_evol_traj_time_constant_w_meta.csv", index=False)
    return {"mean": mean, "valid": valid, "area": area, "lengths": lengths, "any": any_s, "both": both_s,
            "tc": tc, "recorded": recorded}


def test_figure4_paper_csv(tmp_path):
    """4B and 4C by the paper's definitions (valid & anysucc005; block 0 and the last padded column; C over
    valid & bothsucc005 with padding and ddof 0); --extras adds the last recorded block as a labelled extra."""
    f = write_fig4(tmp_path / "sd", np.random.default_rng(4))
    res = run("Figure4_reproduction", tmp_path / "sd", tmp_path / "out", "--extras")
    assert_figure(res, tmp_path / "out", "Figure4_reproduction")
    assert "A IT: FC 16/20 = 0.80" in res.stdout            # third row = IT, by position
    assert "(fourier)" not in res.stdout
    stats = read_stats(tmp_path / "out", "Figure4")
    paper = stats[stats["subset"] == "valid & anysucc005"]
    assert len(paper) == 6 and set(paper["panel"]) == {"4B"}
    fc_all, bg_all = f["mean"]["DeePSim"], f["mean"]["BigGAN"]
    for area in ("V1", "V4", "IT"):
        sel = (f["area"] == area) & f["valid"] & f["any"]
        for block, col in (("0", 0), (str(BLOCKS - 1), BLOCKS - 1)):
            want = ttest_rel(fc_all[sel, col], bg_all[sel, col])
            row = paper[(paper["area"] == area) & (paper["block"] == block)].iloc[0]
            assert row["n"] == sel.sum()
            assert np.isclose(row["statistic"], want.statistic) and np.isclose(row["pvalue"], want.pvalue)
            assert row["significant"] == str(want.pvalue < 0.05)
        # the extra: each experiment's last recorded block, over all valid experiments
        sel = (f["area"] == area) & f["valid"]
        rows = np.where(sel)[0]
        last = f["lengths"][rows] - 1
        want = ttest_rel(fc_all[rows, last], bg_all[rows, last])
        row = stats[(stats["subset"] == "valid (extra)") & (stats["area"] == area)].iloc[0]
        assert row["block"] == "last" and row["n"] == sel.sum() and "extra" in row["note"]
        assert np.isclose(row["statistic"], want.statistic)
        # C: mean and SEM (ddof 0) of the padded arrays over valid & bothsucc005
        sel = (f["area"] == area) & f["valid"] & f["both"]
        m, se = fc_all[sel].mean(0), fc_all[sel].std(0) / np.sqrt(sel.sum())
        assert (f"C {area} DeePSim (valid & both successful, n = {sel.sum()}): block 0 {m[0]:.4f} +/- {se[0]:.4f}, "
                f"last block {m[-1]:.4f} +/- {se[-1]:.4f}") in res.stdout
        # D: mean time constant of every valid thread with p_maxinit < .01 (none left out)
        tc = f["tc"]
        for t, (prefix, name) in enumerate((("FC", "DeePSim"), ("BG", "BigGAN"))):
            sel = (tc["visual_area"] == area).to_numpy() & f["valid"] & (tc[f"p_maxinit_{t}"] < 0.01).to_numpy()
            assert f"D {area} {name}: tau = {tc.loc[sel, f'{prefix}_tc0_bslinit'].mean():.4f} blocks" in res.stdout


# -- Figure 5 --------------------------------------------------------------------------------
def write_fig5(root: Path, rng) -> dict:
    d = root / "Fig5"
    d.mkdir(parents=True)
    area = np.array(AREAS)
    valid = np.ones(N_EXP, bool)
    valid[3] = False
    both = rng.random(N_EXP) > 0.3
    any_s = both | (rng.random(N_EXP) > 0.5)
    pd.DataFrame({"Expi": np.arange(N_EXP) + 1, "visual_area": area, "V1msk": area == "V1", "V4msk": area == "V4",
                  "ITmsk": area == "IT", "valid": valid, "anysucc005": any_s, "bothsucc005": both}
                 ).to_csv(d / "Figure5_src_exp_masks_and_succ_labels.csv", index=False)
    t_ms = np.arange(200)
    for block in (0, 55):
        for k, name in enumerate(("DeePSim", "BigGAN")):
            peak = 60 + 20 * k + (block > 0) * 10
            psth = np.exp(-0.5 * ((t_ms - peak) / 15) ** 2)[None, :] * rng.uniform(0.5, 1, (N_EXP, 1))
            pd.DataFrame(psth).to_csv(d / f"Figure5A_src_all_exps_maxnorm_mean_psth_per_block{block:02d}_{name}_mean.csv",
                                      index=False)
    last2, trajs = {}, {}
    for start in range(0, 200, 10):
        shift = 0.25 * np.tanh((start - 100) / 40)        # DeePSim ahead early, BigGAN ahead late
        for name in ("DeePSim", "BigGAN"):
            sign = -1 if name == "DeePSim" else 1
            traj = rng.uniform(0.2, 0.8, (N_EXP, BLOCKS)) + sign * shift * np.linspace(0, 1, BLOCKS)[None, :]
            last2[(start, name)] = traj[:, -2:].mean(1)
            trajs[(start, name)] = traj
            for stat, arr in (("mean", traj), ("sem", np.full_like(traj, 0.05))):
                pd.DataFrame(arr).to_csv(d / f"Figure5C_src_normresp_wdw_{start}-{start + 10}_{name}_{stat}.csv",
                                         index=False)
    return {"area": area, "valid": valid, "both": both, "any": any_s, "last2": last2, "traj": trajs}


def test_figure5_paper_csv(tmp_path):
    """5C: per window and area (V4, IT), a paired t-test at every block, BH-FDR across the blocks, direction."""
    f = write_fig5(tmp_path / "sd", np.random.default_rng(5))
    res = run("Figure5_reproduction", tmp_path / "sd", tmp_path / "out", "--extras")
    assert_figure(res, tmp_path / "out", "Figure5_reproduction")
    assert "blocks 0 and 55; 20 windows" in res.stdout
    stats = read_stats(tmp_path / "out", "Figure5")
    extra = stats[stats["subset"].str.endswith("(extra)")]
    stats = stats[stats["subset"] == "valid & bothsucc005"]
    # the extra: last two blocks per window, one test per window, FDR across the 20 windows
    assert len(extra) == 2 * 2 * 20 and (extra["block"] == "last").all()
    sel = (f["area"] == "IT") & f["valid"] & f["both"]
    p_win = np.array([ttest_rel(f["last2"][(s, "DeePSim")][sel], f["last2"][(s, "BigGAN")][sel]).pvalue
                      for s in range(0, 200, 10)])
    rows = extra[(extra["area"] == "IT") & (extra["subset"] == "valid & bothsucc005 (extra)")]
    assert np.allclose(rows["pvalue"], p_win) and list(rows["significant"]) == [str(x) for x in bh(p_win) <= 0.05]
    assert set(stats["panel"]) == {"5C"} and set(stats["area"]) == {"V4", "IT"}
    assert len(stats) == 2 * 20 * BLOCKS
    n_sig = 0
    for area in ("V4", "IT"):
        sel = (f["area"] == area) & f["valid"] & f["both"]
        for start in range(0, 200, 10):
            t, p = ttest_rel(f["traj"][(start, "DeePSim")][sel], f["traj"][(start, "BigGAN")][sel], axis=0)
            sig = bh(p) <= 0.05
            rows = stats[(stats["area"] == area) & (stats["window_ms"] == f"{start}-{start + 10}")]
            rows = rows.iloc[np.argsort(rows["block"].astype(int).to_numpy())]
            assert list(rows["block"]) == [str(k) for k in range(BLOCKS)] and (rows["n"] == sel.sum()).all()
            assert np.allclose(rows["statistic"], t) and np.allclose(rows["pvalue"], p)
            assert list(rows["significant"]) == [str(x) for x in sig]
            for (_, row), tk, sk in zip(rows.iterrows(), t, sig):
                assert row["note"] == ("" if not sk else "DeePSim > BigGAN" if tk > 0 else "BigGAN > DeePSim")
            n_sig += sig.sum()
    assert n_sig > 0                                          # the fixture has effects in both directions
    # 5A: valid & anysucc005
    sel = (f["area"] == "IT") & f["valid"] & f["any"]
    assert "A IT DeePSim block 0: peak " in res.stdout and f"(mean over n = {sel.sum()} valid & any-success" in res.stdout


# -- Figure 6 --------------------------------------------------------------------------------
def write_fig6(root: Path, rng) -> dict:
    d = root / "Fig6"
    d.mkdir(parents=True)
    dist = np.linspace(-1, 1, 9)
    rows = []
    for space in ("class", "noise"):
        for eig in (0, 1, 2):
            for x in dist[dist != 0]:                      # the origin is stored once, below
                for trial in range(4):
                    rows.append((space, eig, x, trial, float(rng.poisson(30 * np.exp(-x ** 2) + 5))))
    for trial in range(4):
        rows.append(("class", 0, 0.0, trial, float(rng.poisson(35))))
    sgtr = pd.DataFrame(rows, columns=["space_name", "eig_id", "lin_dist", "trial", "pref_unit_resp"])
    sgtr.to_csv(d / "Figure6C_src_B07092020_sgtr_resp_df.csv", index=False)
    for suffix in ("", "_failevol"):
        avg = sgtr.groupby(["space_name", "eig_id", "lin_dist"])["pref_unit_resp"].mean().reset_index()
        avg = avg.assign(ephysFN="Beto-07092020-003", prefchan_str="5B")
        avg.to_csv(d / f"Figure6D_src_prefchan_avgresp_df{suffix}.csv", index=False)
    n = 60
    fits = pd.DataFrame({"Expi": rng.integers(1, 40, n), "space_name": rng.choice(["class", "noise"], n),
                         "eig_id": rng.integers(0, 10, n), "anova_p_value": rng.uniform(0, 0.03, n),
                         "is_common_axis": rng.random(n) > 0.2, "is_BigGAN_evol_success": rng.random(n) > 0.5,
                         "gpr_y_is_bellshaped": rng.random(n) > 0.5, "gpr_y_is_monotonic": rng.random(n) > 0.6,
                         "gpr_y_is_unimodal": rng.random(n) > 0.4})
    fits.to_csv(d / "Figure6E_src_tuning_shape_fitting_stats_synopsis_selcolumn.csv", index=False)
    bins = ["(-1.0, -0.5]", "(-0.5, 0.0]", "(0.0, 0.5]", "(0.5, 1.0]"]
    stats = pd.DataFrame({"Expi": rng.integers(1, 40, n), "space_name": rng.choice(["class", "noise"], n),
                          "eig_id": rng.integers(0, 10, n), "p_value": rng.uniform(0, 0.03, n),
                          "is_BigGAN_evol_success": rng.random(n) > 0.5, "max_resp_lin_dist_bin": rng.choice(bins, n)})
    stats.to_csv(d / "Figure6E_src_tuning_stats_synopsis_selcolumn.csv", index=False)
    return {"sgtr": sgtr, "fits": fits}


def test_figure6_paper_csv(tmp_path):
    """6C: ANOVA, Gaussian+baseline, OLS and GP fits on the example axis (class 0); 6E: shape fractions of
    common axes with ANOVA p < .01 per BigGAN success, and Wilson intervals of the peak-location bins."""
    from scipy.optimize import curve_fit
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    f = write_fig6(tmp_path / "sd", np.random.default_rng(6))
    res = run("Figure6_reproduction", tmp_path / "sd", tmp_path / "out", "--extras")
    assert_figure(res, tmp_path / "out", "Figure6_reproduction")
    assert "example B07092020" in res.stdout
    stats = read_stats(tmp_path / "out", "Figure6")
    anova = stats[stats["test"] == "one-way ANOVA across positions"]
    assert len(anova) == 6 and (anova["note"] == "").sum() == 1      # the paper's test; 5 extras (--extras)
    sgtr = f["sgtr"]
    axis = pd.concat([sgtr.query("space_name == 'noise' and eig_id == 1"), sgtr.query("lin_dist == 0")])
    p = f_oneway(*[g["pref_unit_resp"] for _, g in axis.groupby("lin_dist")]).pvalue   # origin trials added
    p_text = f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"
    assert [x for x in res.stdout.splitlines() if x.startswith("  C noise axis 1: ANOVA F = ") and f"p = {p_text};" in x]
    # the example axis, class 0 (its origin trials are in the table)
    ex = sgtr.query("space_name == 'class' and eig_id == 0")
    x, y = ex["lin_dist"].to_numpy(float), ex["pref_unit_resp"].to_numpy(float)
    c = stats[(stats["panel"] == "6C") & (stats["area"] == "class") & (stats["block"] == "0")].set_index("test")
    anova = f_oneway(*[g["pref_unit_resp"] for _, g in ex.groupby("lin_dist")])
    assert np.isclose(c.loc["one-way ANOVA across positions", "statistic"], anova.statistic)
    assert np.isclose(c.loc["one-way ANOVA across positions", "pvalue"], anova.pvalue)
    assert c.loc["one-way ANOVA across positions", "note"] == ""          # the paper's own test
    means = ex.groupby("lin_dist")["pref_unit_resp"].mean()
    span = x.max() - x.min()

    def gauss(v, a, mu, sd, b):
        return a * np.exp(-((v - mu) ** 2) / (2 * sd ** 2)) + b

    params, _ = curve_fit(gauss, x, y, p0=[means.max() - means.min(), means.idxmax(), span / 4, means.min()],
                          bounds=([0, x.min(), 0.01, 0], [1.25 * means.max(), x.max(), 2 * span, means.max()]))
    assert np.isclose(c.loc["Gaussian+baseline fit R2", "statistic"],
                      1 - np.var(y - gauss(x, *params)) / np.var(y), atol=1e-6)
    assert np.isclose(c.loc["OLS fit R2", "statistic"], linregress(x, y).rvalue ** 2)
    noise = ex.groupby("lin_dist")["pref_unit_resp"].var().mean()
    kernel = (ConstantKernel(y.var(), (y.var() * 1e-2, y.var() * 1e2)) * RBF(span / 10, (1e-2, 1e2))
              + WhiteKernel(noise * 0.1, (noise * 1e-2, noise * 1e1)))
    gpr = GaussianProcessRegressor(kernel, alpha=0.0, n_restarts_optimizer=10, random_state=0).fit(x[:, None], y)
    assert np.isclose(c.loc["GPR fit R2", "statistic"], 1 - np.var(y - gpr.predict(x[:, None])) / np.var(y), atol=1e-4)
    # E: shape fractions
    fits = f["fits"]
    for success, group in ((True, "BigGAN succeeded"), (False, "BigGAN failed")):
        sel = fits[fits.is_common_axis & (fits.anova_p_value < 0.01) & (fits.is_BigGAN_evol_success == success)]
        for col in ("gpr_y_is_bellshaped", "gpr_y_is_monotonic"):
            row = stats[(stats["area"] == group) & (stats["test"] == f"fraction {col} (Wilson 95%)")].iloc[0]
            assert row["n"] == len(sel) and np.isclose(row["statistic"], sel[col].mean())
            ci = binomtest(int(sel[col].sum()), len(sel)).proportion_ci(method="wilson")
            assert np.isclose(row["ci_low"], ci.low, atol=1e-9) and np.isclose(row["ci_high"], ci.high)
    # E: peak locations of axes with p_value < .01, Wilson intervals per bin
    syn = pd.read_csv(tmp_path / "sd" / "Fig6" / "Figure6E_src_tuning_stats_synopsis_selcolumn.csv")
    sig = syn[(syn.p_value < 0.01) & syn.is_BigGAN_evol_success]
    counts = sig["max_resp_lin_dist_bin"].value_counts()
    peaks = stats[(stats["test"] == "peak location proportion (Wilson 95%)") & (stats["area"] == "BigGAN succeeded")]
    assert len(peaks) == len(set(syn["max_resp_lin_dist_bin"]))
    for bin_label, k in counts.items():
        row = peaks[peaks["block"] == bin_label].iloc[0]
        ci = binomtest(int(k), len(sig)).proportion_ci(method="wilson")
        assert row["n"] == len(sig) and np.isclose(row["statistic"], k / len(sig))
        assert np.isclose(row["ci_low"], ci.low) and np.isclose(row["ci_high"], ci.high)


@pytest.mark.parametrize("stem", ["Figure6D_src_prefchan_avgresp_df"])
def test_figure6_pickled_table_needs_the_flag(tmp_path, stem):
    write_fig6(tmp_path / "sd", np.random.default_rng(7))
    d = tmp_path / "sd" / "Fig6"
    table = pd.read_csv(d / f"{stem}.csv")
    (d / f"{stem}.csv").unlink()
    table.to_pickle(d / f"{stem}.pkl")
    refused = run("Figure6_reproduction", tmp_path / "sd", tmp_path / "out")
    assert refused.returncode == 2 and f"{stem}.pkl" in refused.stderr and "Traceback" not in refused.stderr
    allowed = run("Figure6_reproduction", tmp_path / "sd", tmp_path / "out", "--allow-pickle")
    assert_figure(allowed, tmp_path / "out", "Figure6_reproduction")

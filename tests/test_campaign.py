"""Campaigns: grid expansion, deterministic folders, local process pool, kill + re-run, submitit local mode."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from actmax.core.apps.campaign import (CampaignSpec, campaign_log, cell_status, executions, gather, load_spec, run_campaign)
from tests.conftest import REPO, run_cli

TINY = {"scorer": "model:kind=mixed,n=5,size=16", "spaces": ["gabor:size=16", "fourier:size=16"],
        "optimizers": ["cma:popsize=4", "random:popsize=4"], "generations": 2, "plots": False}


def _manifests(root: Path) -> dict[str, dict]:
    out = {}
    for path in (root / "runs").glob("*/manifest.json"):
        try:
            out[path.parent.name] = {**json.loads(path.read_text()), "_mtime": path.stat().st_mtime_ns}
        except (json.JSONDecodeError, OSError):
            continue  # being written right now
    return out


def _finished(root: Path) -> dict[str, dict]:
    return {k: v for k, v in _manifests(root).items() if v.get("status") == "finished"}


# -- spec parsing and the grid ---------------------------------------------------------------
def test_spec_formats_agree_and_grid_is_deterministic(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('scorer = "model:kind=mixed,n=5,size=16"\nunits = [0, 3]\n'
                    'spaces = ["gabor:size=16", ["gabor:size=16", "fourier:size=16"]]\n'
                    'optimizers = ["cma:popsize=4"]\nseeds = 3\ngenerations = 2\n[reference]\nn = 2\n')
    yaml = tmp_path / "c.yaml"
    yaml.write_text("scorer: 'model: kind=mixed, n=5, size=16'\nunits: [0, 3]\n"
                    "spaces: ['gabor:size=16', ['gabor:size=16', 'fourier:size=16']]\n"
                    "optimizers: [{name: cma, popsize: 4}]\nseeds: [0, 1, 2]\ngenerations: 2\nreference: {n: 2}\n")
    a, b = load_spec(toml).cells(), load_spec(yaml).cells()
    assert len(a) == 2 * 2 * 1 * 3                      # units x spaces x optimizers x seeds
    assert [c.name for c in a] == [c.name for c in b]   # same grid -> same folder names
    assert len({c.name for c in a}) == len(a)
    paired = [c for c in a if len(c.spaces) == 2]
    assert len(paired) == 6
    assert all(c.spaces == ("gabor:size=16", "fourier:size=16") and c.reference == {"n": 2} for c in paired)
    # a change that shapes the numbers changes the folder; the same cell keeps its folder
    c2 = CampaignSpec.from_mapping({**TINY, "units": [0], "seeds": [0], "generations": 3}).cells()
    c1 = CampaignSpec.from_mapping({**TINY, "units": [0], "seeds": [0]}).cells()
    assert {c.name for c in c1}.isdisjoint(c.name for c in c2)
    assert [c.name for c in c1] == [c.name for c in CampaignSpec.from_mapping({**TINY, "units": [0], "seeds": [0]}).cells()]


@pytest.mark.parametrize("bad, message", [
    ({"spaces": ["gabor"]}, "missing required key 'scorer'"),
    ({**TINY, "unit": [0]}, "unknown key"),
    ({**TINY, "poles": ["up"]}, "poles"),
    ({**TINY, "seeds": [1, 1]}, "repeated"),
    ({**TINY, "kind": "synthesize", "spaces": [["gabor", "fourier"]]}, "paired"),
    ({**TINY, "units": [99]}, "unit"),
])
def test_bad_specs_get_one_clear_error(bad, message):
    with pytest.raises((ValueError, IndexError), match=message):
        CampaignSpec.from_mapping(bad).cells()


def test_unparsable_spec_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("scorer = [unclosed\n")
    with pytest.raises(ValueError, match="could not be parsed"):
        load_spec(bad)
    with pytest.raises(ValueError, match="unknown format"):
        (tmp_path / "c.txt").write_text("x")
        load_spec(tmp_path / "c.txt")


# -- failures, crash and resume (in this process: deterministic) ----------------------------
def test_failing_cells_are_reported_and_the_rest_finish(tmp_path):
    spec = {**TINY, "units": [0], "seeds": [0], "optimizers": ["cma:popsize=4", "genetic:popsize=4,n_conserve=4"]}
    report = run_campaign(spec, out=tmp_path, workers=1)
    table = report.table.set_index("optimizer")
    assert table.loc["cma:popsize=4", "action"].tolist() == ["ran", "ran"]
    assert table.loc["genetic:n_conserve=4,popsize=4", "action"].tolist() == ["failed", "failed"]
    assert table.loc["genetic:n_conserve=4,popsize=4", "error"].str.contains("n_conserve").all()
    tables = gather(tmp_path)
    runs = tables["runs"].set_index("optimizer")
    assert runs.loc["cma:popsize=4", "status"].tolist() == ["finished", "finished"]
    assert runs.loc["genetic:n_conserve=4,popsize=4", "status"].tolist() == ["new", "new"]   # failed before writing a record
    assert runs.loc["genetic:n_conserve=4,popsize=4", "last_action"].tolist() == ["failed", "failed"]
    assert runs.loc["genetic:n_conserve=4,popsize=4", "last_error"].str.contains("n_conserve").all()
    assert set(tables["scores"]["optimizer"]) == {"cma:popsize=4"}


def test_crash_then_rerun_skips_finished_and_resumes_the_killed_run(tmp_path, monkeypatch):
    from actmax.core.evolve import evolve
    from tests.helpers import slow_neurons

    scorer = "callable:fn=tests.helpers.slow_neurons:crashing,units=3"
    spec = {"scorer": scorer, "units": [0, 1, 2], "spaces": ["gabor:size=32"], "optimizers": ["cma:popsize=4"],
            "seeds": [0, 1], "generations": 4, "plots": False}
    cells = CampaignSpec.from_mapping(spec).cells()
    slow_neurons._CALLS["n"] = 0
    monkeypatch.setenv("CRASH_AT", str(4 * 3 + 3))   # the 4th cell dies in its 3rd generation
    with pytest.raises(KeyboardInterrupt):
        run_campaign(spec, out=tmp_path / "c", workers=1)
    runs = tmp_path / "c" / "runs"
    states = [cell_status(runs / c.name) for c in cells]
    assert states == ["finished"] * 3 + ["interrupted", "new", "new"]
    before = _finished(tmp_path / "c")
    monkeypatch.delenv("CRASH_AT")
    report = run_campaign(spec, out=tmp_path / "c", workers=1)
    assert report.counts() == {"ran": 2, "resumed": 1, "restarted": 0, "skipped": 3, "failed": 0}
    after = _finished(tmp_path / "c")
    assert len(after) == 6
    for name, m in before.items():                    # finished runs were not touched
        assert after[name]["_mtime"] == m["_mtime"] and after[name]["finished"] == m["finished"]
    killed = cells[3]
    assert after[killed.name]["resumed"] == 1
    # the resumed run ends exactly where an uninterrupted run ends
    fresh = evolve("gabor:size=32", scorer, "cma:popsize=4", unit=killed.units[0], generations=4,
                   seed=killed.seed, out_dir=tmp_path / "fresh")
    resumed = pd.read_parquet(runs / killed.name / "scores.parquet")
    pd.testing.assert_frame_equal(resumed, fresh.scores)
    assert executions(tmp_path / "c").to_dict() == {cells[i].name: 1 for i in (3, 4, 5)}
    # a third run does nothing
    assert run_campaign(spec, out=tmp_path / "c", workers=1).counts()["skipped"] == 6


# -- >= 100 runs with the local process pool, killed and re-run -----------------------------
@pytest.mark.slow
def test_hundred_run_campaign_killed_and_rerun_without_redoing_finished_runs(tmp_path):
    spec_path = tmp_path / "grid.toml"
    spec_path.write_text('scorer = "model:kind=mixed,n=5,size=16"\nunits = "all"\n'
                         'spaces = ["gabor:size=16", "fourier:size=16"]\n'
                         'optimizers = ["cma:popsize=4", "random:popsize=4"]\nseeds = 5\ngenerations = 2\n'
                         'plots = false\n')
    assert len(load_spec(spec_path).cells()) == 100
    root = tmp_path / "grid"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "actmax.core.cli", "campaign", str(spec_path), "--out", str(root),
                             "--workers", "2", "--no-progress", "--no-gather"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while len(_finished(root)) < 30:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.time() - t0 < 300, "campaign made no progress"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)           # the campaign and its worker processes
        proc.wait()
        deadline = time.time() + 30                   # the killed workers release their record locks on exit
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    killed_after = time.time() - t0
    before = _finished(root)
    assert 30 <= len(before) < 100
    t1 = time.time()
    report = run_campaign(spec_path, out=root, workers=1)
    rerun_s = time.time() - t1
    c = report.counts()
    failed = report.table[report.table["action"] == "failed"]
    assert c["failed"] == 0 and sum(c.values()) == 100, failed[["name", "error"]].to_string()
    assert c["skipped"] == len(before)                 # every finished run skipped ...
    assert c["resumed"] + c["restarted"] <= 2          # ... at most the 2 in-flight runs redone
    after = _finished(root)
    assert len(after) == 100
    assert all(after[n]["_mtime"] == m["_mtime"] for n, m in before.items())
    redone = set(executions(root).index)
    assert redone.isdisjoint(before) and len(redone) == 100 - len(before)
    tables = gather(root)
    assert len(tables["runs"]) == 100 and (tables["runs"]["status"] == "finished").all()
    assert len(tables["scores"]) == 100 * 2 * 4
    print(f"\n100-run campaign: killed after {killed_after:.1f} s with {len(before)} finished; "
          f"re-run of the rest {rerun_s:.1f} s ({c})")


# -- the distributed engine's local mode (submitit) -----------------------------------------
def test_submitit_local_executor_runs_a_campaign(tmp_path):
    pytest.importorskip("submitit")
    spec = {**TINY, "units": [0, 1, 2], "optimizers": ["cma:popsize=4"], "seeds": [0]}
    report = run_campaign(spec, out=tmp_path, backend="submitit", cluster="local", jobs=2,
                          cluster_params={"timeout_min": 10})
    assert report.counts()["ran"] == 6 and report.counts()["failed"] == 0
    pids = set(report.table["pid"])
    assert os.getpid() not in pids and len(pids) == 2   # two array jobs, each its own process
    assert any((tmp_path / "cluster").rglob("*_log.out"))
    assert len(_finished(tmp_path)) == 6
    again = run_campaign(spec, out=tmp_path, backend="submitit", cluster="local", jobs=2)
    assert again.counts()["skipped"] == 6
    log = campaign_log(tmp_path)
    assert (log["action"] == "ran").sum() == 6


def test_cli_campaign_runs_and_gathers(tmp_path):
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({**TINY, "units": [1], "optimizers": ["random:popsize=4"], "seeds": [0],
                                "reference": {"n": 2}}))
    res = run_cli("campaign", str(spec), "--out", str(tmp_path / "out"), "--no-progress",
                  "--tables", str(tmp_path / "tables"))
    assert res.returncode == 0, res.stderr
    assert "2 ran" in res.stdout and "tables: runs (2 rows)" in res.stdout
    scores = pd.read_parquet(tmp_path / "tables" / "scores.parquet")
    assert set(scores["space"]) == {"gabor", "fourier", "reference"}
    assert (scores[scores["space"] == "reference"].groupby("cell").size() == 2 * 2).all()
    bad = run_cli("campaign", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_synthesis_campaign_batches_units_per_cell_and_gathers_targets(tmp_path):
    spec = {"kind": "synthesize", "scorer": "model:kind=mixed,n=3,size=16", "units": [0, 2],
            "spaces": ["pixel:size=16"], "optimizers": ["ascent:steps=4", "ascent:steps=6"], "seeds": [0, 1],
            "poles": ["high", "low"]}
    cells = CampaignSpec.from_mapping(spec).cells()
    assert len(cells) == 4 and all(c.units == (0, 2) and c.poles == ("high", "low") for c in cells)
    report = run_campaign(spec, out=tmp_path, workers=1)
    assert report.counts()["ran"] == 4
    synth = gather(tmp_path)["synthesis"]
    assert len(synth) == 4 * 2 * 2                      # cells x units x poles
    assert set(synth["unit"]) == {0, 2} and set(synth["seed"]) == {0, 1}
    steps = {c.name: c.optimizer for c in cells}
    runs = gather(tmp_path)["runs"]
    assert sorted(runs["steps_done"]) == sorted(int(steps[n].split("=")[1]) for n in runs["cell"])
    assert run_campaign(spec, out=tmp_path, workers=1).counts()["skipped"] == 4


# -- SIGTERM to the campaign parent stops every worker; the re-run finishes the grid exactly ------
def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    for child in list(out):
        out |= _children(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)],
                         ids=["sigterm", "parent_killed"])   # each ~25 CPU-s of worker processes
def test_sigterm_stops_every_worker_and_the_rerun_equals_an_uninterrupted_campaign(tmp_path, monkeypatch, sig):
    import torch

    spec = {"scorer": "callable:fn=tests.helpers.slow_neurons:slow,units=3", "units": [0, 1, 2],
            "spaces": ["gabor:size=16"], "optimizers": ["cma:popsize=4"], "seeds": [0, 1], "generations": 6,
            "plots": False}
    monkeypatch.setenv("SLOW_NEURONS_DELAY", "0")
    run_campaign(spec, out=tmp_path / "ref", workers=1)
    spec_path = tmp_path / "c.json"
    spec_path.write_text(json.dumps(spec))
    root = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_NEURONS_DELAY": "0.4"}
    proc = subprocess.Popen([sys.executable, "-m", "actmax.core.cli", "campaign", str(spec_path), "--out", str(root),
                             "--workers", "2", "--no-progress", "--no-gather"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not list(root.glob("runs/*/checkpoint.pt")):     # workers are mid-cell
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        proc.send_signal(sig)                                   # the parent only, not its process group
        t0 = time.time()
        while any(_alive(p) for p in workers) and time.time() - t0 < 5:
            time.sleep(0.05)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"workers alive 5 s after {sig!r}: {survivors}"
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(_finished(root)) < 6                              # it really was interrupted
    report = run_campaign(spec, out=root, workers=1)
    c = report.counts()
    assert c["failed"] == 0 and c["ran"] + c["resumed"] + c["restarted"] + c["skipped"] == 6
    for cell in CampaignSpec.from_mapping(spec).cells():
        a, b = root / "runs" / cell.name, tmp_path / "ref" / "runs" / cell.name
        pd.testing.assert_frame_equal(pd.read_parquet(a / "scores.parquet"), pd.read_parquet(b / "scores.parquet"))
        from safetensors.torch import load_file
        ca, cb = load_file(a / "codes.safetensors"), load_file(b / "codes.safetensors")
        assert ca.keys() == cb.keys() and all(torch.equal(ca[k], cb[k]) for k in ca)


def test_campaign_with_a_bad_part_option_exits_before_any_cell_runs(tmp_path):
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({**TINY, "units": [0], "optimizers": ["cma:popsiz=4"]}))
    res = run_cli("campaign", str(spec), "--out", str(tmp_path / "out"), "--no-progress")
    assert res.returncode == 2 and "no option 'popsiz'" in res.stderr, res.stderr
    assert not (tmp_path / "out" / "runs").exists()
    spec.write_text(json.dumps({**TINY, "units": [0], "spaces": ["gabr:size=16"]}))
    res = run_cli("campaign", str(spec), "--out", str(tmp_path / "out"), "--no-progress")
    assert res.returncode == 2 and "unknown generator 'gabr'" in res.stderr, res.stderr


def test_campaign_exits_non_zero_when_a_cell_failed_and_warns_about_cluster_keys(tmp_path):
    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({**TINY, "units": [0], "seeds": [0], "optimizers": ["genetic:popsize=4,n_conserve=4"],
                                "cluster": {"slurm_partition": "gpu"}}))
    res = run_cli("campaign", str(spec), "--out", str(tmp_path / "out"), "--no-progress")
    assert res.returncode == 1, res.stderr
    assert "2 of 2 cells failed" in res.stderr
    assert "slurm_partition" in res.stderr and "ignored" in res.stderr


@pytest.mark.parametrize("bad, message", [
    ({"seeds": -1}, "seeds (a count) must be >= 1"),
    ({"seeds": [0, -2]}, "seeds must be >= 0"),
    ({"generations": 2.5}, "generations must be an integer"),
    ({"units": [0.5]}, "units must be an integer"),
    ({"threads": "2"}, "threads must be an integer"),
])
def test_campaign_spec_values_are_not_coerced(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CampaignSpec.from_mapping({**TINY, **bad})


@pytest.mark.slow   # a second submitit local run (~10 CPU-s); the executor test above stays fast
def test_submitit_local_run_leaves_no_percent_j_folder(tmp_path):
    pytest.importorskip("submitit")
    spec = {**TINY, "units": [0], "optimizers": ["cma:popsize=4"], "spaces": ["gabor:size=16"], "seeds": [0]}
    report = run_campaign(spec, out=tmp_path, backend="submitit", cluster="local", jobs=1,
                          cluster_params={"timeout_min": 10})
    assert report.counts()["ran"] == 1
    assert not [p for p in tmp_path.rglob("*") if "%" in p.name]

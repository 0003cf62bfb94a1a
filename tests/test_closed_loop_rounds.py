"""The closed loop as a run kind with rounds: kill and resume, the record contract, --json, bad input."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import actmax
from actmax.core.apps import closed_loop_run as clr
from actmax.core.apps.closed_loop_run import LoopConfig, closed_loop
from actmax.core.errors import InputError, RigTimeoutError

TINY = LoopConfig(neurons="model:kind=all,n=6,size=16,seed=1", rounds=1, n_natural=160, n_mapping=40, n_test=20,
                  repeats=3, members=2, architecture={"hidden_channels": 4, "layers": 1, "input_kernel": 5},
                  train={"max_epochs": 3, "lr": 0.01, "batch_size": 32}, retrain_epochs=2,
                  ascent="ascent:method='sgd',normalize=True,lr=0.01,jitter=0,precondition=1.0,steps=8",
                  synthesis_seeds=(0, 1), gabor_probes=2, min_gain=-1.0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop") / "run"
    return out, closed_loop(TINY, out_dir=out, progress=False)


def test_killed_mid_round_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path, monkeypatch):
    out_a, res_a = uninterrupted
    out_b = tmp_path / "killed"
    real = clr.design.record_block
    calls = {"n": 0}

    def timing_out(*args, **kwargs):     # round 1's show step: the rig stops answering
        calls["n"] += 1
        if calls["n"] == 4:
            raise RigTimeoutError("rig: block 7 got no responses within 1 s")
        return real(*args, **kwargs)

    monkeypatch.setattr(clr.design, "record_block", timing_out)
    with pytest.raises(RigTimeoutError):
        closed_loop(TINY, out_dir=out_b, progress=False)
    monkeypatch.setattr(clr.design, "record_block", real)
    state = torch.load(out_b / "checkpoint.pt", weights_only=True)   # the recorded state: round 1 up to its synthesis
    assert (out_b / "round_1" / "synthesis.safetensors").exists() and not (out_b / "round_1" / "manifest.json").exists()
    res_b = actmax.core.runs.resume(out_b, progress=False)
    assert state and res_b["round"] == res_a["round"] == 1
    a, b = actmax.load_run(out_a), actmax.load_run(out_b)
    assert torch.equal(a.stimuli["mei"], b.stimuli["mei"]) and torch.equal(a.stimuli["lei"], b.stimuli["lei"])
    assert [r["mei_response"] for r in res_a["neurons"]] == [r["mei_response"] for r in res_b["neurons"]]
    assert actmax.core.runs.resume(out_b, progress=False)["neurons"] == res_b["neurons"]   # finished: re-verified


def test_load_run_returns_final_meis_and_leis_in_unit_order(uninterrupted):
    out, res = uninterrupted
    run = actmax.load_run(out)
    neurons = actmax.core.registry.scorers.create(TINY.neurons)
    for pole, key in (("mei", "mei_response"), ("lei", "lei_response")):
        imgs = run.stimuli[pole]
        assert imgs.shape == (6, 3, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1
        with torch.no_grad():
            own = neurons(imgs).diagonal().double().numpy()     # image u is unit u's
        assert np.allclose(own, [r[key] for r in res["neurons"]], rtol=1e-4, atol=1e-5)
    for r in range(2):                                      # one sealed record per round
        assert actmax.load_run(out / f"round_{r}").manifest["kind"] == "closed_loop_round"
    saved = json.loads((out / "closed_loop.json").read_text())
    assert saved["round"] == 1 and [k["round"] for k in saved["rounds"]] == [0, 1]
    for row in saved["neurons"]:        # every neuron is a row; the MEI is the best *measured* of its seeds
        assert row["mei_response"] <= row["optimum_response"] * 1.0001
        assert row["lei_below_grey"] == (row["lei_response"] <= row["grey_response"])
        assert 0 <= row["mei_mean_luminance"] <= 1 and row["mei_rms_contrast"] > 0
    for k in saved["per_kind"]:
        lo, hi = k["median_mei_fraction_of_optimum_ci95"]
        assert lo <= k["median_mei_fraction_of_optimum"] <= hi


def _cli(argv, capsys):
    from actmax.core.cli import main
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_has_the_contract_keys(tmp_path, capsys):
    code, out, err = _cli(["twin", "closed-loop", "--neurons", "model:kind=simple,n=2,size=16,seed=0", "--rounds", "1",
                           "--natural", "120", "--mapping", "0", "--n-test", "16", "--repeats", "2", "--epochs", "2",
                           "--retrain-epochs", "1", "--steps", "4", "--seeds", "1", "--probes", "1",
                           "--out", str(tmp_path / "cl"), "--json"], capsys)
    assert code in (0, None), err
    doc = json.loads(out)
    for row in doc["neurons"]:
        for key in ("unit", "mei_response", "lei_response", "best_gabor_response", "best_masked_natural_response",
                    "best_natural_response", "grey_response", "mei_fraction_of_optimum", "lei_to_floor",
                    "readout_error_px", "twin_over_prediction", "mei_mean_luminance", "mei_rms_contrast"):
            assert key in row
    assert [r["unit"] for r in doc["neurons"]] == [0, 1]


@pytest.mark.parametrize("argv, words", [
    (["--rounds", "0"], "--rounds must be an integer >= 1"),
    (["--neurons", "pixel:size=16"], "pixel"),
    (["--neurons", "callable:fn=tests.helpers.bad_scorers:flat,units=2", "--size", "16"], "no reliable neuron"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, argv, words):
    code, out, err = _cli(["twin", "closed-loop", "--out", str(tmp_path / "x"), "--natural", "40", "--mapping", "0",
                           "--n-test", "8", *argv], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], err


def test_config_refuses_zero_rounds():
    with pytest.raises(InputError, match="rounds"):
        replace(TINY, rounds=0)

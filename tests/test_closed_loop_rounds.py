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

    def timing_out(*args, **kwargs):     # round 1's show step (calls: round 0 record, show, blank; round 1
        calls["n"] += 1                  # record, show): the rig stops answering
        if calls["n"] == 5:
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
                           "--hidden-channels", "4", "--surround", "1", "--retrain-position-warmup", "1",
                           "--out", str(tmp_path / "cl"), "--json"], capsys)
    assert code in (0, None), err
    doc = json.loads(out)
    from actmax.scorers.twin.model import read_twin_config
    assert read_twin_config(tmp_path / "cl" / "round_1" / "twin")["config"]["hidden_channels"] == 4   # --hidden-channels
    recorded = json.loads((tmp_path / "cl" / "manifest.json").read_text())["spec"]["config"]
    assert recorded["surround_probes"] == 1 and recorded["retrain_position_warmup"] == 1
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


@pytest.mark.parametrize("kind, channels", [("dual", 1), ("colour", 3)])
def test_the_tuning_block_drives_cells_at_their_rf_and_not_8_px_away(kind, channels):
    from actmax.core.apps import closed_loop_design as design
    from actmax.core.registry import scorers

    neurons = scorers.create(f"model:kind={kind},n=4,size=32,seed=3").eval()
    rf = np.array([p[:2] for p in neurons.receptive_fields])
    per = design.TUNING_THETAS * design.TUNING_PHASES * (3 if channels == 3 else 1)
    grey = neurons(torch.full((1, channels, 32, 32), 0.5))[0].detach()
    span = neurons.optimal_response("high") - grey

    def drive(centres):
        imgs, owner = design.tuning_probes(centres, size=32, channels=channels, norm=3.0, seed=0)
        assert imgs.shape == (4 * per, channels, 32, 32) and list(owner) == [u for u in range(4) for _ in range(per)]
        norms = (imgs - 0.5).flatten(1).norm(dim=1)   # at the contrast budget; clipping to [0, 1] loses < 5 %
        assert float(norms.max()) <= 3.0 + 1e-3 and float(norms.min()) >= 0.95 * 3.0
        energy = (imgs - 0.5).pow(2).sum(1)
        yy, xx = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
        cx, cy = [(energy * g).sum((1, 2)) / energy.sum((1, 2)) for g in (xx, yy)]
        target = torch.as_tensor(centres, dtype=torch.float32)[owner]
        assert float(torch.hypot(cx - target[:, 0], cy - target[:, 1]).max()) < 1.0    # centred on the given RF
        with torch.no_grad():
            r = neurons(imgs)
        return torch.stack([(r[torch.as_tensor(owner) == u, u].max() - grey[u]) / span[u] for u in range(4)])

    assert bool((drive(rf) > 0.1).all())          # at the RF every cell is driven well above its baseline
    assert bool((drive(rf + 8) < 0.05).all())     # 8 px away, none is


def test_rf_start_and_records_from_before_the_tuning_block():
    with pytest.raises(InputError, match="rf_start"):
        replace(TINY, rf_start="centre")
    legacy = {k: v for k, v in TINY.__dict__.items() if k not in ("tuning", "rf_update")}
    old = LoopConfig.from_dict(legacy)            # a record written before them resumes as it was recorded
    assert old.tuning is False and old.rf_update is False
    assert LoopConfig.from_dict(TINY.__dict__).tuning is True


def test_readouts_started_at_the_true_rf_need_neurons_that_know_it(tmp_path):
    cfg = replace(TINY, neurons="callable:fn=tests.helpers.bad_scorers:flat,units=2", size=16, rf_start="true")
    run = clr.ClosedLoopRun(cfg, tmp_path)
    run._put(0, "recorded", {"rf_xy": torch.zeros(2, 2)})
    with pytest.raises(InputError, match="receptive fields"):
        run._readout_start({}, 0)
    model = clr.ClosedLoopRun(replace(TINY, rf_start="true"), tmp_path / "m")
    start = model._readout_start({}, 0)["initial_positions"]
    assert start == [[float(p[0]), float(p[1])] for p in model.neurons.receptive_fields]
    assert np.allclose(model._rf(2), start)        # probes and re-seating work from the true RF as well


def test_readouts_far_from_the_updated_rf_are_reseated_the_rest_kept(tmp_path):
    from types import SimpleNamespace
    run = clr.ClosedLoopRun(TINY, tmp_path)
    rf = np.array([[8.0, 8.0]] * 6)
    offsets = [0.0, 1.0, 1.9, 2.1, 5.0, 9.0]          # readout distance from the updated RF, px
    run.mem[(0, "twin")] = SimpleNamespace(config=SimpleNamespace(image_size=16))
    run.mem[(0, "twin_report")] = {"readout": {"neurons": [{"x_px": 8.0 + d - 0.5, "y_px": 7.5} for d in offsets]}}
    run.mem[(1, "rf")] = rf
    moved = run._readouts_off_rf(1)
    assert np.isnan(moved[:3]).all() and np.allclose(moved[3:], rf[3:])
    start = np.array(run._readout_start({}, 1)["initial_positions"])
    assert np.isnan(start[:3]).all() and np.allclose(start[3:], rf[3:])
    kept = clr.ClosedLoopRun(replace(TINY, rf_update=False), tmp_path / "k")
    assert "initial_positions" not in kept._readout_start({}, 1)   # without the RF update, the warm start as it was
    # a centre the position block measured (units 1 and 2 here) re-seats readouts more than 0.5 px off it
    run.mem.pop((1, "rf"))
    run.mem[(1, "rf")] = rf
    run._position_rf = lambda upto: np.where(np.isin(np.arange(6), [1, 2])[:, None], rf, np.nan)
    moved = run._readouts_off_rf(1)
    assert np.isnan(moved[[0]]).all() and np.allclose(moved[1:], rf[1:])


def test_gabor_parameters_round_trip_and_legacy_records_have_no_refinement():
    from actmax.core.apps import closed_loop_design as design

    params, _ = design.tuning_params(np.array([[8.0, 9.0]]), size=16, channels=3, seed=0)
    rows = design.encode_params(params, n_rows=len(params) + 2)
    assert rows.shape == (len(params) + 2, 10) and np.isnan(rows[-2:]).all()
    back = design.decode_params(rows[5])
    assert back == pytest.approx({**params[5], "colour": pytest.approx(params[5]["colour"])})
    assert torch.allclose(design.render_params([back], 16, 3, 3.0), design.render_params([params[5]], 16, 3, 3.0))
    legacy = {k: v for k, v in TINY.__dict__.items() if k != "refine_probes"}
    assert LoopConfig.from_dict(legacy).refine_probes == 0      # resumes as it was recorded
    assert LoopConfig.from_dict({**legacy, "refine_probes": 12}).refine_probes == 12
    with pytest.raises(InputError, match="refine_probes"):
        replace(TINY, refine_probes=-1)


def test_refinement_climbs_a_dual_cells_tuning_on_measured_responses():
    """Jittering the best *measured* Gabor, round after round, takes the data towards the top of a dual
    cell's tuning, beyond what the tuning block reached (noise-free responses, 3 steps of 12)."""
    from actmax.core.apps import closed_loop_design as design
    from actmax.core.registry import scorers

    neurons = scorers.create("model:kind=dual,n=3,size=32,seed=4").eval()
    rf = np.array([p[:2] for p in neurons.receptive_fields])
    params, _ = design.tuning_params(rf, size=32, channels=1, seed=0)
    rows = design.encode_params(params)
    with torch.no_grad():
        rates = neurons(design.render_params(params, 32, 1, 3.0)).double().numpy()
    start = rates.max(0)
    for step in range(3):
        new, owner = design.refine_params(rows, rates, per_neuron=12, size=32, channels=1, seed=step)
        assert list(owner) == [u for u in range(3) for _ in range(12)]
        with torch.no_grad():
            new_rates = neurons(design.render_params(new, 32, 1, 3.0)).double().numpy()
        rows, rates = np.concatenate([rows, design.encode_params(new)]), np.concatenate([rates, new_rates])
    top = neurons.optimal_response("high").double().numpy()
    gained = (rates.max(0) - start) / (top - start)
    assert bool((rates.max(0) > start).all()) and float(np.median(gained)) > 0.25
    empty, owner = design.refine_params(rows[:0], rates[:0], per_neuron=4, size=32, channels=1, seed=0)
    assert empty == [] and owner.size == 0


def test_round_two_refines_around_the_best_measured_gabor(tmp_path):
    cfg = replace(TINY, rounds=2, refine_probes=2)
    closed_loop(cfg, out_dir=tmp_path / "loop", progress=False)
    from safetensors.torch import load_file
    r1 = load_file(str(tmp_path / "loop" / "round_1" / "recorded.safetensors"))
    r2 = load_file(str(tmp_path / "loop" / "round_2" / "recorded.safetensors"))
    assert not (r1["block"] == clr.REFINE).any() and int((r2["block"] == clr.REFINE).sum()) == 6 * 2
    gabor = (r2["block"] == clr.GABOR) | (r2["block"] == clr.TUNING) | (r2["block"] == clr.REFINE)
    assert bool(torch.isfinite(r2["gabor_params"][:, 0]).eq(gabor).all())   # parameters for every Gabor, NaN otherwise
    control = replace(cfg, natural_only=True)
    closed_loop(control, out_dir=tmp_path / "control", progress=False)
    c2 = load_file(str(tmp_path / "control" / "round_2" / "recorded.safetensors"))
    shown = load_file(str(tmp_path / "loop" / "round_2" / "shown.safetensors"))
    assert len(c2["block"]) == len(r2["block"]) + len(shown["block"])    # the control adds as many images


def test_surround_probes_put_contrast_beside_the_rf_only():
    """The surround block: natural patches with a hole at each neuron's RF, at the loop's contrast; on
    complex cells (known RFs) they drive far less than the same patches without the hole."""
    from actmax.core.apps import closed_loop_design as design
    from actmax.core.apps.closed_loop import natural_stimuli
    from actmax.core.registry import scorers

    neurons = scorers.create("model:kind=complex,n=3,size=32,seed=2").eval()
    rf = np.array([p[:2] for p in neurons.receptive_fields])
    probes = design.surround_probes(rf, per_neuron=8, size=32, channels=1, norm=3.0, aperture=0.35, seed=5)
    assert probes.shape == (24, 1, 32, 32)
    c = probes - 0.5
    assert torch.allclose(c.flatten(1).norm(dim=1), torch.full((24,), 3.0), atol=0.05)
    assert torch.allclose(probes.mean(dim=(1, 2, 3)), torch.full((24,), 0.5), atol=1e-3)
    full = natural_stimuli(24, 32, seed=5, aperture=0.35, norm=3.0, channels=1)
    with torch.no_grad():
        r_hole, r_full = neurons(probes).double().numpy(), neurons(full).double().numpy()
    own = np.repeat(np.arange(3), 8)
    assert np.median(r_hole[np.arange(24), own]) < 0.2 * np.median(r_full[np.arange(24), own])
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    for i, u in enumerate(own):
        near = np.hypot(xs - rf[u, 0], ys - rf[u, 1]) < 3
        assert float(c[i, 0].abs().numpy()[near].mean()) < 0.15 * float(c[i, 0].abs().numpy()[~near].max())
    assert design.surround_probes(rf, per_neuron=0, size=32, channels=1, norm=3.0, aperture=0.35, seed=0).shape[0] == 0


def test_surround_block_is_recorded_and_matched_by_the_control(tmp_path):
    cfg = replace(TINY, surround_probes=2, retrain_position_warmup=None)
    closed_loop(cfg, out_dir=tmp_path / "loop", progress=False)
    from safetensors.torch import load_file
    r1 = load_file(str(tmp_path / "loop" / "round_1" / "recorded.safetensors"))
    assert int((r1["block"] == clr.SURROUND).sum()) == 6 * 2
    assert not bool(torch.isfinite(r1["gabor_params"][r1["block"] == clr.SURROUND, 0]).any())
    closed_loop(replace(cfg, natural_only=True), out_dir=tmp_path / "control", progress=False)
    c1 = load_file(str(tmp_path / "control" / "round_1" / "recorded.safetensors"))
    shown = load_file(str(tmp_path / "loop" / "round_1" / "shown.safetensors"))
    assert len(c1["block"]) == len(r1["block"]) + len(shown["block"])
    assert LoopConfig.from_dict({"neurons": TINY.neurons}).surround_probes == 0
    with pytest.raises(InputError, match="surround_probes"):
        replace(TINY, surround_probes=-1)


def test_warm_starts_keep_readout_positions_slow_by_default(tmp_path, monkeypatch):
    """The default (chosen by the campaign, README): every warm-started fit keeps readout positions at the
    slow rate throughout; records written before the option resume with the full rate, as they ran."""
    import actmax.scorers.twin.train as train

    real, seen = train.train_twin, []

    class Stop(Exception):
        pass

    def spy(*args, options, warm_start=None, **kwargs):
        seen.append((warm_start is not None, options.position_warmup))
        if warm_start is not None:
            raise Stop
        return real(*args, options=options, warm_start=warm_start, **kwargs)

    monkeypatch.setattr(train, "train_twin", spy)
    with pytest.raises(Stop):
        closed_loop(TINY, out_dir=tmp_path / "run", progress=False)
    assert seen == [(False, None), (True, None)]     # round 0: TINY's train options; round 1: slow throughout
    assert LoopConfig().retrain_position_warmup is None
    assert LoopConfig.from_dict({"neurons": TINY.neurons}).retrain_position_warmup == 0
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError, match="retrain_position_warmup"):
            replace(TINY, retrain_position_warmup=bad)


def test_the_blank_is_the_lei_only_where_it_measures_below_every_synthesised_lei():
    """Three units, one shown LEI and one MEI each: unit 0's LEI measures below the blank (kept), unit 1's
    above it (the blank wins: a complex cell's known floor), unit 2 has no blank measurement (kept)."""
    from types import SimpleNamespace

    from actmax.core.apps.closed_loop_rounds import kind_rows, neuron_rows
    neurons = SimpleNamespace(units=3, kinds=["simple", "complex", "complex"])
    images = torch.rand(6, 1, 8, 8)
    owner, pole = np.array([0, 0, 1, 1, 2, 2]), np.array([1, 0, 1, 0, 1, 0])
    truth = np.array([9.0, 1.0, 8.0, 0.3, 7.0, 0.2])
    measured = truth + 0.05
    ctrl = {k: np.array([2.0, 0.0, 0.0]) for k in ("grey", "best_natural", "best_gabor", "best_masked_natural")}
    blank = (np.array([2.0, 0.0, 0.0]), np.array([2.1, 0.0, np.nan]))
    kw = dict(neurons=neurons, images=images, owner=owner, pole=pole, truth=truth, measured=measured,
              predicted=truth, ctrl=ctrl, oracle=np.ones(3), test_corr=[0.9] * 3, readout_err=np.zeros(3),
              rf_estimate=np.zeros((3, 2)))
    rows = neuron_rows(**kw, blank=blank)
    assert [r["lei_is_blank"] for r in rows] == [False, True, False]
    assert [r["lei_index"] for r in rows] == [1, 6, 5]                 # 6 = len(images): the blank
    assert rows[1]["lei_response"] == 0.0 and rows[1]["lei_below_grey"] is True
    assert rows[1]["lei_synthesized_response"] == 0.3 and rows[1]["lei_synthesized_below_grey"] is False
    assert rows[1]["lei_rms_contrast"] == 0.0 and rows[1]["lei_mean_luminance"] == 0.5
    assert rows[2]["lei_response"] == 0.2 and rows[2]["lei_below_grey"] is False     # no blank: not hidden
    per_kind = {k["kind"]: k for k in kind_rows(rows)}
    assert per_kind["complex"]["fraction_lei_is_blank"] == 0.5
    assert per_kind["complex"]["fraction_lei_synthesized_below_grey"] == 0.0
    old = neuron_rows(**kw)                                            # no blank: the synthesised LEI
    assert [r["lei_index"] for r in old] == [1, 3, 5] and not any(r["lei_is_blank"] for r in old)
    assert LoopConfig.from_dict({"neurons": TINY.neurons}).blank_lei is False    # old records: as recorded


def test_the_position_block_recentres_a_dual_cell_the_maps_put_2_5_px_off():
    """A dual-feature cell's best tuning Gabor, moved over a 5 x 5 grid around an RF estimate 2.5 px off
    (in four directions), peaks within 1 px of its true RF; a neuron that never responds gets no centre."""
    import math

    from actmax.core.apps import closed_loop_design as design
    from actmax.core.registry import scorers

    neurons = scorers.create("model:kind=dual,n=4,size=32,seed=3").eval()
    true = np.array([p[:2] for p in neurons.receptive_fields], float)
    angles = np.arange(4) * math.pi / 2 + 0.4
    start = true + 2.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
    params, owner = design.tuning_params(start, size=32, channels=1, seed=0)
    _, counts = design.record_block(neurons, design.render_params(params, 32, 1, 3.0), np.full(len(params), 5),
                                    window=30.0, seed=1)
    rows, measured = design.encode_params(params), np.nanmean(counts, 0)
    best = {u: design.best_measured_gabor(rows[owner == u], measured[owner == u], u, 1) for u in range(4)}
    pos_p, pos_owner = design.position_params(best, start, grid=5, size=32)
    assert len(pos_p) == 4 * 25 * 2 and (np.bincount(pos_owner) == 50).all()
    _, pos_counts = design.record_block(neurons, design.render_params(pos_p, 32, 1, 3.0), np.full(len(pos_p), 5),
                                        window=30.0, seed=2)
    centres = design.position_centres(design.encode_params(pos_p), pos_counts, pos_owner, 4)
    err = np.hypot(*(centres - true).T)
    assert (err < 1.0).all(), err                                 # from 2.5 px
    flat = design.position_centres(design.encode_params(pos_p), np.zeros_like(pos_counts), pos_owner, 4)
    assert np.isnan(flat).all()


def test_position_block_only_for_unmapped_neurons_and_matched_by_the_control(tmp_path, monkeypatch):
    cfg = replace(TINY, position_grid=3)
    unmapped = np.array([False, False, True, False, False, False])
    monkeypatch.setattr(clr.ClosedLoopRun, "_unmapped", lambda self: unmapped)
    res = closed_loop(cfg, out_dir=tmp_path / "loop", progress=False)
    from safetensors.torch import load_file
    r1 = load_file(str(tmp_path / "loop" / "round_1" / "recorded.safetensors"))
    pos = r1["block"] == clr.POSITION
    assert int(pos.sum()) == 2 * 9 and (r1["position_owner"] == 2).all()
    assert torch.isfinite(r1["gabor_params"][pos]).any(dim=1).all()
    run = clr.ClosedLoopRun(cfg, tmp_path / "loop")
    kept = np.ones(6, bool)
    kept[2] = False
    seat, by_position = run._seat_rf(1)
    assert np.allclose(seat[kept], run._rf(1)[kept]) and not by_position[kept].any()  # the others: the maps
    assert res["round"] == 1
    closed_loop(replace(cfg, natural_only=True), out_dir=tmp_path / "control", progress=False)
    c1 = load_file(str(tmp_path / "control" / "round_1" / "recorded.safetensors"))
    shown = load_file(str(tmp_path / "loop" / "round_1" / "shown.safetensors"))
    assert len(c1["block"]) == len(r1["block"]) + len(shown["block"])
    assert LoopConfig.from_dict({"neurons": TINY.neurons}).position_grid == 0
    for bad in (2, -1, 4, True):
        with pytest.raises(InputError, match="position_grid"):
            replace(TINY, position_grid=bad)


@pytest.mark.parametrize("kind, longest_below, longest_above", [("endstop", 0.25, None), ("simple", None, 0.5),
                                                               ("complex", None, 0.5)])
def test_the_length_block_finds_end_stopping(kind, longest_below, longest_above):
    """A length-tuning curve of each cell's best measured Gabor (noise-free): end-stopped cells answer the
    longest bar (4 x its width) with < 0.25 of their best, cells without end zones with > 0.5 (at the same
    L2 contrast a longer bar puts less of it on the RF), in both phases; one block of 8 per neuron."""
    from actmax.core.apps import closed_loop_design as design
    from actmax.core.registry import scorers

    neurons = scorers.create(f"model:kind={kind},n=4,size=32,seed=3").eval()
    rf = np.array([p[:2] for p in neurons.receptive_fields])
    params, _ = design.tuning_params(rf, size=32, channels=1, seed=0)
    rows = design.encode_params(params)
    with torch.no_grad():
        rates = neurons(design.render_params(params, 32, 1, 3.0)).double().numpy()
    block, owner = design.length_params(rows, rates, channels=1)
    assert list(owner) == [u for u in range(4) for _ in range(2 * len(design.LENGTH_ASPECTS))]
    best = [design.best_measured_gabor(rows, rates, u, 1) for u in range(4)]
    assert all(p["aspect"] < best[u]["aspect"] and p["theta"] == best[u]["theta"] for p, u in zip(block, owner))
    with torch.no_grad():
        new = neurons(design.render_params(block, 32, 1, 3.0)).double().numpy()[np.arange(len(block)), owner]
    curve = new.reshape(4, len(design.LENGTH_ASPECTS), 2)[:, :, 0] / rates.max(0)[:, None]
    assert (np.diff(curve, axis=1) < 0).all()                 # response falls with length, in the best phase
    if longest_below is not None:
        assert (curve[:, -1] < longest_below).all()
    if longest_above is not None:
        assert (curve[:, -1] > longest_above).all()


def test_round_two_shows_the_length_block_matched_by_the_control(tmp_path):
    cfg = replace(TINY, rounds=2, length_tuning=True)
    closed_loop(cfg, out_dir=tmp_path / "loop", progress=False)
    from safetensors.torch import load_file
    from actmax.core.apps import closed_loop_design as design
    r1 = load_file(str(tmp_path / "loop" / "round_1" / "recorded.safetensors"))
    r2 = load_file(str(tmp_path / "loop" / "round_2" / "recorded.safetensors"))
    per_neuron = 2 * len(design.LENGTH_ASPECTS)
    assert not (r1["block"] == clr.LENGTH).any() and int((r2["block"] == clr.LENGTH).sum()) == 6 * per_neuron
    assert bool(torch.isfinite(r2["gabor_params"][r2["block"] == clr.LENGTH, 0]).all())
    closed_loop(replace(cfg, natural_only=True), out_dir=tmp_path / "control", progress=False)
    c2 = load_file(str(tmp_path / "control" / "round_2" / "recorded.safetensors"))
    shown = load_file(str(tmp_path / "loop" / "round_2" / "shown.safetensors"))
    assert len(c2["block"]) == len(r2["block"]) + len(shown["block"])    # the control adds as many images
    assert LoopConfig.from_dict({"neurons": TINY.neurons}).length_tuning is False   # older records: off

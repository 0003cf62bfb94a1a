"""Digital twins: Gaussian readout facts, storage (safetensors + JSON, clear errors), ensembles,
oracle/selection metrics, loaders, training on simulated recordings, the CLI and the scorer."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core.apps.closed_loop import natural_stimuli, noise_free_rates, simulate_trials
from actmax.core.errors import RecordError, WeightsError
from actmax.core.registry import scorers
from actmax.scorers.twin.model import (GaussianReadout, TwinConfig, TwinEnsemble, TwinNetwork, TwinScorer, load_twin,
                                save_twin)
from actmax.scorers.twin.selection import (oracle_correlation, pearson_per_neuron, rank_neurons, select_neurons,
                                    trial_counts, trial_mean)
from actmax.scorers.twin.train import (TrainOptions, estimate_positions, load_images, load_responses, split_images,
                                train_twin)

SMALL = {"hidden_channels": 6, "layers": 2, "input_kernel": 5, "hidden_kernel": 3, "image_size": 16}


# -- readout ------------------------------------------------------------------------------------
def test_readout_eval_reads_the_feature_map_at_mu_with_align_corners_true():
    ro = GaussianReadout(3, 2).eval()
    assert ro.mu.shape == (1, 2, 1, 2) and ro.sigma.shape == (1, 2, 1, 1)
    assert ro.features.shape == (1, 3, 1, 2) and torch.allclose(ro.features, torch.full_like(ro.features, 1 / 3))
    assert ro.bias.shape == (2,)
    x = torch.randn(4, 3, 5, 7)
    with torch.no_grad():
        ro._mu[0, 0, 0] = torch.tensor([-1.0, 1.0])      # (x=-1, y=+1): column 0, last row
        ro._mu[0, 1, 0] = torch.tensor([0.0, 0.0])       # map centre: row 2, column 3
        ro._features.copy_(torch.randn_like(ro._features))
        ro.bias.copy_(torch.tensor([0.5, -0.25]))
    out = ro(x)
    w = ro.features[0, :, 0]                             # (c, n)
    torch.testing.assert_close(out[:, 0], (x[:, :, 4, 0] * w[:, 0]).sum(1) + 0.5)
    torch.testing.assert_close(out[:, 1], (x[:, :, 2, 3] * w[:, 1]).sum(1) - 0.25)


def test_readout_samples_in_training_clamps_mu_and_centres():
    torch.manual_seed(0)
    for gauss in ("isotropic", "uncorrelated", "full"):
        ro = GaussianReadout(2, 3, gauss_type=gauss)
        x = torch.randn(6, 2, 9, 9)
        a, b = ro(x), ro(x)
        assert not torch.allclose(a, b)                 # read position sampled: mu + sigma * N
        ro.eval()
        torch.testing.assert_close(ro(x), ro(x))        # eval reads at mu
    with torch.no_grad():
        ro._mu.fill_(3.0)
    ro.sample_grid(1, sample=False)
    assert ro.mu.max() == 1.0
    ro.center()
    assert torch.count_nonzero(ro.mu) == 0
    torch.testing.assert_close(ro(x), (x[:, :, 4, 4][:, :, None] * ro.features[0, :, 0][None]).sum(1) + ro.bias)


def test_network_output_is_elu_plus_one_and_positive():
    net = TwinNetwork(TwinConfig(n_neurons=3, **SMALL)).eval()
    x = torch.rand(5, 1, 20, 20)
    out = net(x)
    assert out.shape == (5, 3) and (out > 0).all()
    with torch.no_grad():
        raw = net.readout(net.core(net.prepare(x)))
    torch.testing.assert_close(out, torch.nn.functional.elu(raw) + 1)
    # RGB input becomes grey through the shared preprocessing
    torch.testing.assert_close(net(x.expand(-1, 3, -1, -1)), out)


# -- storage and ensembles ---------------------------------------------------------------------
def _members(n: int = 2, neurons: int = 3) -> list[TwinNetwork]:
    out = []
    for k in range(n):
        torch.manual_seed(k)
        net = TwinNetwork(TwinConfig(n_neurons=neurons, neuron_ids=[f"n{i}" for i in range(neurons)], **SMALL))
        with torch.no_grad():
            net.readout._mu.uniform_(-0.8, 0.8)
        out.append(net.eval())
    return out


def test_save_load_roundtrip_ensemble_mean_members_and_centered(tmp_path):
    members = _members()
    ens = TwinEnsemble(members).eval()
    save_twin(tmp_path, ens)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member_0.safetensors", "member_1.safetensors", "twin.json"]
    x = torch.rand(4, 1, 16, 16)
    loaded = load_twin(tmp_path)
    torch.testing.assert_close(loaded(x), ens(x))
    torch.testing.assert_close(ens(x), (members[0](x) + members[1](x)) / 2)
    torch.testing.assert_close(load_twin(tmp_path, members=[1])(x), members[1](x))
    centred = load_twin(tmp_path, centered=True)
    assert all(torch.count_nonzero(m.readout.mu) == 0 for m in centred.members)
    assert not torch.allclose(centred(x), ens(x))
    scorer = scorers.create(f"twin:path={tmp_path},centered=True")
    assert isinstance(scorer, TwinScorer) and scorer.units == 3 and scorer.differentiable
    assert scorer.unit_names == ["n0", "n1", "n2"]
    torch.testing.assert_close(scorer(x), centred(x))
    scorer.train()                                       # a scorer never samples its readout
    torch.testing.assert_close(scorer(x), scorer(x))


def test_storage_errors_are_clear(tmp_path):
    with pytest.raises(WeightsError, match="no twin.json"):
        load_twin(tmp_path)
    save_twin(tmp_path, _members(1))
    cfg = json.loads((tmp_path / "twin.json").read_text())
    (tmp_path / "member_0.safetensors").write_bytes((tmp_path / "member_0.safetensors").read_bytes()[:200])
    with pytest.raises(RecordError, match="not a readable safetensors"):
        load_twin(tmp_path)
    save_twin(tmp_path, _members(1, neurons=4))          # weights for 4 neurons ...
    (tmp_path / "twin.json").write_text(json.dumps(cfg))  # ... config for 3
    with pytest.raises(RecordError, match=r"readout\.(_mu|sigma|_features|bias) has shape"):
        load_twin(tmp_path)
    (tmp_path / "member_0.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_twin(tmp_path)
    (tmp_path / "twin.json").write_text("{ truncated")
    with pytest.raises(RecordError, match="not valid JSON"):
        load_twin(tmp_path)
    with pytest.raises(ValueError, match="kernel sizes must be odd"):
        TwinConfig(n_neurons=1, input_kernel=4)


# -- metrics -------------------------------------------------------------------------------------
def test_oracle_is_leave_one_out_correlation():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(50, 2))
    r = np.stack([signal + rng.normal(scale=0.5, size=signal.shape) for _ in range(2)])
    # with two trials the leave-one-out partner of a trial is the other trial
    a = np.concatenate([r[0, :, 0], r[1, :, 0]])
    b = np.concatenate([r[1, :, 0], r[0, :, 0]])
    assert oracle_correlation(r)[0] == pytest.approx(np.corrcoef(a, b)[0, 1])
    clean = np.stack([signal] * 3)
    np.testing.assert_allclose(oracle_correlation(clean), 1.0)
    noise = rng.normal(size=(10, 400, 1))
    assert abs(oracle_correlation(noise)[0]) < 0.1
    # NaN-padded trials: images with one trial do not enter; a neuron without repeats gets NaN
    padded = np.full((3, 4, 1), np.nan)
    padded[0] = 1.0
    assert np.isnan(oracle_correlation(padded)[0])
    assert trial_counts(r).tolist() == [2] * 50


def test_trial_mean_correlation_ranking_and_selection():
    r = np.array([[[1.0, 2.0], [3.0, np.nan]], [[3.0, np.nan], [5.0, np.nan]]])   # 2 trials, 2 images, 2 neurons
    np.testing.assert_allclose(trial_mean(r), [[2.0, 2.0], [4.0, np.nan]])
    pred = np.array([[1, 5], [2, 4], [3, 3], [4, 1.0]])
    corr = pearson_per_neuron(pred, np.array([[2, 1], [4, 2], [6, 3], [8, 4.0]]))
    assert corr[0] == pytest.approx(1.0) and corr[1] < -0.9
    scores = np.array([0.2, np.nan, 0.9, 0.5])
    assert rank_neurons(scores).tolist() == [2, 3, 0, 1]
    assert select_neurons(scores, threshold=0.4).tolist() == [2, 3]
    assert select_neurons(scores, top_k=1).tolist() == [2]
    assert select_neurons(scores, threshold=0.4, descending=False).tolist() == [0]


def test_split_uses_repeated_images_as_test_set():
    counts = np.r_[np.ones(90, int), np.full(10, 5)]
    s = split_images(counts, seed=0)
    assert s["test"].tolist() == list(range(90, 100))
    assert len(set(s["train"]) | set(s["val"])) == 90 and not set(s["train"]) & set(s["val"])
    s2 = split_images(np.ones(100, int), test="random", seed=1)
    assert len(s2["test"]) == 10 and not set(s2["test"]) & set(s2["train"])


# -- loaders ------------------------------------------------------------------------------------
def test_loaders_accept_npy_npz_parquet_layouts(tmp_path):
    imgs = (np.random.default_rng(0).random((6, 8, 8, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "a.npy", imgs)                                     # NHWC uint8
    x = load_images(tmp_path / "a.npy")
    assert x.shape == (6, 3, 8, 8) and x.dtype == np.float32 and x.max() <= 1
    np.testing.assert_allclose(x[2, 1], imgs[2, :, :, 1] / 255, atol=1e-6)
    np.savez(tmp_path / "b.npz", images=x[:, :1, :, :], other=np.zeros(3))
    assert load_images(tmp_path / "b.npz").shape == (6, 1, 8, 8)
    from PIL import Image
    pngs = []
    for im in imgs:
        buf = io.BytesIO()
        Image.fromarray(im[..., 0], mode="L").save(buf, format="PNG")
        pngs.append(buf.getvalue())
    pd.DataFrame({"png": pngs}).to_parquet(tmp_path / "c.parquet")
    np.testing.assert_allclose(load_images(tmp_path / "c.parquet")[:, 0], imgs[..., 0] / 255, atol=1e-6)
    np.save(tmp_path / "bad.npy", np.full((2, 4, 4), 3.0))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        load_images(tmp_path / "bad.npy")

    long = pd.DataFrame({"image": [0, 0, 1, 1, 0], "neuron": ["a", "b", "a", "b", "a"],
                         "response": [1.0, 2.0, 3.0, 4.0, 5.0]})
    long.to_parquet(tmp_path / "long.parquet")
    r, ids = load_responses(tmp_path / "long.parquet")
    assert ids == ["a", "b"] and r.shape == (2, 2, 2)
    np.testing.assert_allclose(trial_mean(r), [[3.0, 2.0], [3.0, 4.0]])
    wide = pd.DataFrame({"image": [0, 1, 1], "v1": [1.0, 2.0, 4.0], "v2": [0.0, 1.0, 1.0]})
    wide.to_parquet(tmp_path / "wide.parquet")
    r, ids = load_responses(tmp_path / "wide.parquet")
    assert ids == ["v1", "v2"] and r.shape == (2, 2, 2)
    np.testing.assert_allclose(trial_mean(r), [[1.0, 0.0], [3.0, 1.0]])
    np.save(tmp_path / "r.npy", np.ones((4, 2)))
    assert load_responses(tmp_path / "r.npy")[0].shape == (1, 4, 2)


# -- training -------------------------------------------------------------------------------------
def _recording(n_train: int = 500, n_test: int = 40, repeats: int = 4, size: int = 16):
    neurons = scorers.create(f"model:kind=complex,n=2,size={size},seed=1")
    stim = natural_stimuli(n_train + n_test, size, seed=0, aperture=0.25, norm=2.0)
    rates = noise_free_rates(neurons, stim)
    trials = np.r_[np.ones(n_train, int), np.full(n_test, repeats)]
    return neurons, stim, rates, simulate_trials(rates, trials, window=20.0, seed=2)


def test_position_estimate_finds_the_receptive_fields():
    neurons, stim, rates, counts = _recording(n_train=800)
    mu = estimate_positions(stim, torch.as_tensor(trial_mean(counts), dtype=torch.float32))
    for u, (x, y, _, _) in enumerate(neurons.receptive_fields):
        px = (mu[u] + 1) / 2 * 15 + 0.5                  # grid -> pixel centres of the 16-px image
        assert abs(float(px[0]) - x) < 2.5 and abs(float(px[1]) - y) < 2.5, (u, px, x, y)


@pytest.fixture(scope="session")
def trained_twin(tmp_path_factory):
    """One twin (two members) trained once on a simulated recording of two complex cells, shared by the
    tests that check what training produced: predictions, the saved files and the readout report."""
    torch.manual_seed(0)
    neurons, stim, rates, counts = _recording()
    out = tmp_path_factory.mktemp("trained_twin")
    res = train_twin(stim.numpy(), counts, out_dir=out, architecture=SMALL,
                     options=TrainOptions(max_epochs=12, lr=0.01, members=2, patience=3, position_warmup=3))
    return neurons, stim, rates, counts, res, out


def test_training_on_simulated_recordings_predicts_held_out_responses(trained_twin):
    neurons, stim, rates, counts, res, tmp_path = trained_twin
    rep = res.report
    assert rep["split_sizes"]["test"] == 40 and rep["test_trials_per_image"]["min"] == 4
    assert min(rep["test_correlation"]) > 0.6, rep["test_correlation"]
    assert all(o is not None and o > 0.5 for o in rep["oracle_correlation"])
    assert len(rep["history"]) == 2 and rep["history"][0][-1]["best_epoch"] >= 1
    assert (tmp_path / "report.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["median_test_correlation"] == pytest.approx(rep["median_test_correlation"])
    # the saved twin reproduces the reported correlations
    twin = load_twin(tmp_path)
    test = res.split["test"]
    with torch.no_grad():
        pred = twin(stim[torch.as_tensor(test)]).numpy()
    np.testing.assert_allclose(pearson_per_neuron(pred, trial_mean(counts[:, test])), rep["test_correlation"],
                               atol=1e-4)
    # and it is a twin of the truth, not of the noise
    assert np.median(pearson_per_neuron(pred, rates[test])) > 0.7
    cfg = twin.config
    assert cfg.input_norm == pytest.approx(2.0, rel=0.05) and cfg.data_size == 16


def test_min_oracle_keeps_reliable_neurons_and_bad_shapes_fail():
    neurons, stim, rates, counts = _recording(n_train=200, n_test=20)
    noise = np.random.default_rng(0).poisson(5.0, size=counts.shape[:2] + (1,)).astype(float)
    noisy = np.concatenate([counts, np.where(np.isfinite(counts[..., :1]), noise, np.nan)], axis=2)
    res = train_twin(stim.numpy(), noisy, architecture=SMALL, neuron_ids=["a", "b", "noise"],
                     options=TrainOptions(max_epochs=1, min_oracle=0.3))
    assert res.report["kept_neurons"] == [0, 1] and res.ensemble.config.neuron_ids == ["a", "b"]
    with pytest.raises(ValueError, match="220 images but responses have 10 images"):
        train_twin(stim.numpy(), counts[:, :10], architecture=SMALL)


@pytest.mark.slow
def test_cli_train_and_eval(tmp_path, cli, capsys):
    neurons, stim, rates, counts = _recording(n_train=300, n_test=30, repeats=3)
    np.savez(tmp_path / "images.npz", images=(stim.numpy() * 255).round().astype(np.uint8))
    t, n, u = counts.shape
    tt, ii, uu = np.meshgrid(np.arange(t), np.arange(n), np.arange(u), indexing="ij")
    ok = np.isfinite(counts)
    pd.DataFrame({"trial": tt[ok], "image": ii[ok], "neuron": np.array(["c0", "c1"])[uu[ok]],
                  "response": counts[ok]}).to_parquet(tmp_path / "resp.parquet")
    out = tmp_path / "twin"
    r = cli("twin", "train", "--images", str(tmp_path / "images.npz"), "--responses", str(tmp_path / "resp.parquet"),
            "--out", str(out), "--epochs", "6", "--hidden-channels", "6", "--layers", "2", "--input-kernel", "5",
            "--hidden-kernel", "3", "--image-size", "16", "--no-progress", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n_neurons"] == 2 and summary["split_sizes"]["test"] == 30
    assert json.loads((out / "twin.json").read_text())["config"]["neuron_ids"] == ["c0", "c1"]
    r = cli("twin", "eval", str(out), "--images", str(tmp_path / "images.npz"),
            "--responses", str(tmp_path / "resp.parquet"), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["test_correlation"]) == 2
    from actmax.core.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["twin", "eval", str(tmp_path / "nowhere"), "--images", str(tmp_path / "images.npz"),
              "--responses", str(tmp_path / "resp.parquet")])
    assert exc.value.code == 2 and "no twin.json" in capsys.readouterr().err


def _long_table(counts: np.ndarray, names: list[str]) -> pd.DataFrame:
    t, n, u = counts.shape
    tt, ii, uu = np.meshgrid(np.arange(t), np.arange(n), np.arange(u), indexing="ij")
    ok = np.isfinite(counts)
    return pd.DataFrame({"image": ii[ok], "neuron": np.array(names)[uu[ok]], "trial": tt[ok], "response": counts[ok]})


def test_shuffled_long_table_gives_the_same_twin_and_eval_and_ids_are_matched(tmp_path):
    """Neuron ids are matched by name: row order of a long-form table never permutes neurons."""
    from actmax.scorers.twin.train import evaluate_saved_twin, train_from_files

    neurons, stim, rates, counts = _recording(n_train=200, n_test=20, repeats=3)
    np.savez(tmp_path / "images.npz", images=stim.numpy())
    table = _long_table(counts, ["n10", "n2"])
    table.to_parquet(tmp_path / "sorted.parquet")
    table.sample(frac=1.0, random_state=3).to_parquet(tmp_path / "shuffled.parquet")   # n2 may come first
    r_sorted, ids_sorted = load_responses(tmp_path / "sorted.parquet")
    r_shuf, ids_shuf = load_responses(tmp_path / "shuffled.parquet")
    assert ids_sorted == ids_shuf == ["n10", "n2"]
    np.testing.assert_array_equal(np.nan_to_num(r_sorted, nan=-1), np.nan_to_num(r_shuf, nan=-1))
    opts = TrainOptions(max_epochs=2, members=1)
    a = train_from_files(tmp_path / "images.npz", tmp_path / "sorted.parquet", tmp_path / "a", architecture=SMALL,
                         options=opts, progress=False)
    b = train_from_files(tmp_path / "images.npz", tmp_path / "shuffled.parquet", tmp_path / "b", architecture=SMALL,
                         options=opts, progress=False)
    assert a.report["test_correlation"] == pytest.approx(b.report["test_correlation"], abs=1e-6)
    ea = evaluate_saved_twin(tmp_path / "a", tmp_path / "images.npz", tmp_path / "shuffled.parquet")
    eb = evaluate_saved_twin(tmp_path / "b", tmp_path / "images.npz", tmp_path / "sorted.parquet")
    assert ea["test_correlation"] == pytest.approx(eb["test_correlation"], abs=1e-6)
    # a table whose neurons are named differently is refused, not silently permuted
    _long_table(counts, ["x", "n2"]).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="neuron ids do not match the twin.*lacks \\['n10'\\]"):
        evaluate_saved_twin(tmp_path / "a", tmp_path / "images.npz", tmp_path / "other.parquet")
    # a table with the twin's neurons in another column order is reordered by name
    swapped = _long_table(counts[:, :, ::-1], ["n2", "n10"])
    swapped.to_parquet(tmp_path / "swapped.parquet")
    ec = evaluate_saved_twin(tmp_path / "a", tmp_path / "images.npz", tmp_path / "swapped.parquet")
    assert ec["test_correlation"] == pytest.approx(ea["test_correlation"], abs=1e-6)


def test_readout_report_finds_the_receptive_fields_and_warns_on_the_border(trained_twin):
    import copy

    neurons, stim, rates, counts, res, tmp_path = trained_twin
    rep = res.report["readout"]
    assert (tmp_path / "readout.png").stat().st_size > 1000 and (tmp_path / "readout.json").is_file()
    for row, (x, y, _, _) in zip(rep["neurons"], neurons.receptive_fields):
        # readout px index i has its centre at i + 0.5 in the model's coordinates
        assert abs(row["x_px"] + 0.5 - x) < 2 and abs(row["y_px"] + 0.5 - y) < 2, (row, x, y)
        assert row["distance_px"] < 3 and not row["on_border"]
    assert rep["warnings"] == []
    # a readout pushed onto the border is reported
    from actmax.scorers.twin.train import readout_report
    ensemble = copy.deepcopy(res.ensemble)             # the shared twin stays as trained
    with torch.no_grad():
        for member in ensemble.members:                 # neuron 0's readout, in every member
            member.readout._mu[0, 0, 0] = torch.tensor([-1.0, -1.0])
    rep = readout_report(ensemble)
    assert rep["neurons"][0]["on_border"] and any("border" in w for w in rep["warnings"])
    with pytest.raises(ValueError, match="init_positions"):
        train_twin(stim.numpy(), counts, architecture=SMALL, options=TrainOptions(max_epochs=1, init_positions="x"))


def test_warm_start_begins_at_the_earlier_twin_and_refuses_another_ensemble():
    """The closed loop's rounds retrain from the previous twin: with a zero learning rate nothing moves."""
    from actmax.core.errors import InputError
    from actmax.scorers.twin.train import train_twin

    neurons = scorers.create("model:kind=simple,n=2,size=16,seed=0")
    x = natural_stimuli(120, 16, seed=0, aperture=None, norm=2.0)
    counts = simulate_trials(noise_free_rates(neurons, x), np.r_[np.ones(100, int), np.full(20, 3)], window=10, seed=0)
    arch = {"hidden_channels": 4, "layers": 1, "input_kernel": 5}
    first = train_twin(x.numpy(), counts, architecture=arch, options=TrainOptions(max_epochs=2, members=2))
    again = train_twin(x.numpy(), counts, architecture=arch, warm_start=first.ensemble,
                       options=TrainOptions(max_epochs=1, members=2, lr=0.0))
    for a, b in zip(first.ensemble.members, again.ensemble.members):   # parameters (batch-norm statistics do move)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(InputError, match="warm start"):
        train_twin(x.numpy(), counts, architecture=arch, warm_start=first.ensemble, options=TrainOptions(max_epochs=1))

"""The in-silico closed loop: record model neurons, train a twin, synthesise on it, test on the truth.

1. **Stimuli**: natural patches cut from the photographs scikit-image ships
   (:func:`actmax.core.apps.natural_images.sample_patches`), shown the way many V1 experiments show
   them: mean luminance set to grey (0.5), inside a Gaussian aperture (``aperture`` x size),
   at one fixed L2 contrast ``norm`` = ||image - 0.5||. All are [0, 1] images.
2. **Recording**: ground-truth model neurons (:mod:`scorers.model_neurons`) give noise-free
   rates; a trial is a Poisson spike count ``Poisson(rate * window)``. Training images get
   one trial, test images ``repeats`` trials (the oracle set).
3. **Twin**: :func:`scorers.twin.train.train_twin` on (stimuli, counts). Neurons with state
   (``model_behaving``) are recorded at a random eye position and behaviour per trial; their twin
   gets a shifter and a modulator and steps 4-5 run at its training-mean state.
4. **Synthesis**: MEIs and LEIs of every neuron on the twin
   (:func:`actmax.core.synthesize.synthesize`), with the scorer's input limited to the same L2
   contrast ``norm`` as the natural stimuli.
5. **Test**: the ground-truth neurons see the MEIs/LEIs; each neuron's MEI response is
   compared with its noise-free response to its best natural stimulus (over every recorded
   patch), its LEI with its worst. Both are [0, 1] images at 64 px with the same contrast
   energy, so the comparison is at a fair contrast: the model neurons' contrast gain control
   (limit R of 2.7-3.7 for the default population, below ``norm``) then makes the response
   depend only on the contrast *pattern*.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actmax.core.registry import scorers
from actmax.core.synthesize import DEFAULT_RECIPE
from actmax.core.errors import InputError


@dataclass
class ClosedLoopConfig:
    """Everything that defines one closed-loop experiment (all seeded)."""

    neurons: str = "model:kind=mixed,n=12,size=64,seed=0"
    n_train: int = 4000
    n_test: int = 200
    repeats: int = 10
    window: float = 10.0
    aperture: float | None = 0.22
    norm: float = 6.0
    patch_seed: int = 0
    noise_seed: int = 1
    architecture: dict[str, Any] = field(default_factory=dict)
    #: readout positions learn at the full rate after 10 epochs (``position_warmup``): measured on all
    #: six families, it brings the readout nearer the true RF centre on five of them
    train: dict[str, Any] = field(default_factory=lambda: {"max_epochs": 40, "lr": 0.01, "position_warmup": 10})
    #: synthesis generator; without ``size=`` it works at the neurons' own size (so its L2
    #: contrast ``norm`` is measured at the same resolution as the natural patches)
    generator: str = "pixel"
    #: the synthesis default (``actmax.core.synthesize.DEFAULT_RECIPE``: pixel SGD on the normalised,
    #: 1/f-preconditioned gradient, no jitter); jitter ruins phase-sensitive MEIs at 32 px
    ascent: str = f"{DEFAULT_RECIPE},steps=256"
    synthesis_seeds: tuple[int, ...] = (0,)
    #: neurons whose leave-one-out oracle reaches this are "reliable" (reported separately)
    reliable_oracle: float = 0.5


def natural_stimuli(n: int, size: int, *, seed: int = 0, aperture: float | None = 0.22,
                    norm: float = 6.0, channels: int = 1,
                    centre: tuple[float, float] | None = None) -> torch.Tensor:
    """``n`` natural patches (n, channels, size, size) in [0, 1]: grey mean, Gaussian aperture,
    L2 contrast ``norm`` (over all channels; colour patches keep their colour contrast).

    ``centre`` (x, y) in pixels (pixel i's centre at i + 0.5, as ``ModelNeurons.receptive_fields``
    and :func:`actmax.core.apps.rf_mapping.estimate_receptive_fields`) centres the aperture there,
    e.g. on the population's mapped RF, as V1 experiments do; default: the image centre."""
    from actmax.core.apps.natural_images import sample_patches

    if centre is not None and aperture is None:
        raise InputError("natural_stimuli: centre= places the aperture; give an aperture too")
    x = torch.from_numpy(sample_patches(n, size, channels=channels, seed=seed))
    c = x - x.mean(dim=(1, 2, 3), keepdim=True)
    if aperture is not None:
        cx, cy = (size / 2, size / 2) if centre is None else (float(centre[0]), float(centre[1]))
        pos = torch.arange(size, dtype=torch.float32) + 0.5
        r2 = (pos[:, None] - cy) ** 2 + (pos[None, :] - cx) ** 2
        c = c * torch.exp(-r2 / (2 * (aperture * size) ** 2))
    c = c * (norm / c.flatten(1).norm(dim=1).clamp_min(1e-6)).view(-1, 1, 1, 1)
    for _ in range(4):          # clipping to [0, 1] lowers the contrast: scale up to restore it
        clipped = (c + 0.5).clamp(0, 1) - 0.5
        c = c * (norm / clipped.flatten(1).norm(dim=1).clamp_min(1e-6)).view(-1, 1, 1, 1)
    return (0.5 + c).clamp(0, 1)


def noise_free_rates(neurons: torch.nn.Module, images: torch.Tensor, *, batch: int = 512) -> np.ndarray:
    """Responses (images, units) of a scorer, without trial noise."""
    with torch.no_grad():
        return torch.cat([neurons(images[i:i + batch]) for i in range(0, images.shape[0], batch)]).double().numpy()


def simulate_trials(rates: np.ndarray, trials_per_image: np.ndarray, *, window: float = 10.0,
                    seed: int = 0) -> np.ndarray:
    """Poisson spike counts (max trials, images, units), NaN where an image has fewer trials."""
    if window <= 0:
        raise InputError(f"window must be > 0, got {window}")
    rng = np.random.default_rng(seed)
    counts = np.asarray(trials_per_image, dtype=int)
    out = np.full((int(counts.max()), rates.shape[0], rates.shape[1]), np.nan)
    lam = np.clip(rates, 0, None) * window
    for t in range(out.shape[0]):
        rows = counts > t
        out[t, rows] = rng.poisson(lam[rows])
    return out


def contrast_norm(images: torch.Tensor) -> np.ndarray:
    return (images - 0.5).flatten(1).norm(dim=1).double().numpy()


@dataclass
class Recording:
    """Phase 1: the stimuli shown and what the neurons did (noise-free rates, spike counts per trial)."""

    stimuli: torch.Tensor
    rates: np.ndarray
    counts: np.ndarray
    #: per-trial eye position and behaviour of neurons with state (``model_behaving``); empty otherwise
    state: dict[str, Any] = field(default_factory=dict)


def record_neurons(cfg: ClosedLoopConfig, neurons: Any) -> Recording:
    """Phase 1: natural stimuli at the neurons' size, and Poisson trials (one per training image, ``repeats`` per test image)."""
    size, channels = int(neurons.size or 64), int(neurons.channels or 1)
    stimuli = natural_stimuli(cfg.n_train + cfg.n_test, size, seed=cfg.patch_seed, aperture=cfg.aperture,
                              norm=cfg.norm, channels=channels)
    rates = noise_free_rates(neurons, stimuli)
    trials = np.r_[np.ones(cfg.n_train, int), np.full(cfg.n_test, cfg.repeats, int)]
    # issue 24: neurons with state (model_behaving) are recorded at a random eye position and behaviour per
    # trial, the twin gets a shifter and a modulator, and everything after training (best natural patch,
    # MEIs on the truth) is at the twin's training-mean state, the scorer's default
    if hasattr(neurons, "draw_states"):
        got = neurons.record(stimuli, trials, window=cfg.window, seed=cfg.noise_seed)
        return Recording(stimuli, rates, got["responses"], {"eye": got["eye"], "behavior": got["behavior"]})
    return Recording(stimuli, rates, simulate_trials(rates, trials, window=cfg.window, seed=cfg.noise_seed))


def fit_twin(cfg: ClosedLoopConfig, neurons: Any, rec: Recording, *, progress: bool = False) -> tuple[Any, np.ndarray]:
    """Phase 2: train the twin on the recording; returns it and its correlation to the noise-free test rates.

    Neurons with state are then set to the twin's training-mean state, and ``rec.rates`` re-measured there."""
    from actmax.scorers.twin.selection import pearson_per_neuron
    from actmax.scorers.twin.train import TrainOptions, predict, train_twin

    opts = TrainOptions(**{"test_images": "repeated", **cfg.train})
    trained = train_twin(rec.stimuli.numpy(), rec.counts, neuron_ids=neurons.unit_names,
                         architecture=cfg.architecture, options=opts, progress=progress, **rec.state)
    if rec.state:
        neurons.set_state(eye=trained.ensemble.config.eye_mean, behavior=trained.ensemble.config.behavior_mean)
        rec.rates = noise_free_rates(neurons, rec.stimuli)
    names = list(neurons.unit_names)
    if [str(i) for i in trained.ensemble.config.neuron_ids] != [str(i) for i in names]:   # by name, never by position
        raise InputError(f"closed loop: twin neurons {trained.ensemble.config.neuron_ids[:5]} do not match the "
                         f"recorded neurons {names[:5]}")
    test = trained.split["test"]
    true_corr = pearson_per_neuron(predict(trained.ensemble, rec.stimuli[torch.as_tensor(test)]), rec.rates[test])
    return trained, true_corr


def synthesis_generator(cfg: ClosedLoopConfig, size: int, channels: int) -> str:
    """The synthesis generator spec at the neurons' own size and channels (unless the config fixes them)."""
    generator = cfg.generator
    if "size=" not in generator and generator.split(":")[0] in ("pixel", "fourier"):
        generator = f"{generator},size={size}" if ":" in generator else f"{generator}:size={size}"
    if channels == 3 and "channels=" not in generator and generator.startswith(("pixel", "fourier")):
        generator = f"{generator},channels=3" if ":" in generator else f"{generator}:channels=3"
    return generator


def synthesize_on_twin(cfg: ClosedLoopConfig, neurons: Any, twin: Any, *,
                       progress: bool = False) -> tuple[Any, torch.Tensor, dict | None]:
    """Phase 3: MEIs and LEIs of every neuron on the twin, at the natural stimuli's contrast ``norm``;
    returns the synthesis, the images at that contrast and the twin scorer's state."""
    from actmax.core.synthesize import synthesize
    from actmax.core.transforms import limit_input
    from actmax.scorers.twin.model import TwinScorer

    ascent = cfg.ascent if "norm=" in cfg.ascent else f"{cfg.ascent},norm={cfg.norm}"
    generator = synthesis_generator(cfg, int(neurons.size or 64), int(neurons.channels or 1))
    scorer = TwinScorer(twin)
    syn = synthesize(generator, scorer, units=list(range(neurons.units)), poles=("high", "low"),
                     seeds=cfg.synthesis_seeds, ascent=ascent, progress=progress)
    return syn, limit_input(syn.images.clamp(0, 1), norm=cfg.norm).clamp(0, 1), scorer.state


def _per_unit(own: np.ndarray, targets: list, n_units: int, pole: str, reduce: Any) -> np.ndarray:
    vals = np.full(n_units, np.nan)
    for u in range(n_units):
        vals[u] = reduce([own[i] for i, t in enumerate(targets) if t.unit == u and t.pole == pole])
    return vals


def _chosen(own: np.ndarray, targets: list, n_units: int, pole: str) -> np.ndarray:
    """Per unit, the index of the image shown as its MEI (``high``: the seed the neuron liked most)
    or LEI (``low``: the one it liked least); -1 where a unit has no such target."""
    idx = np.full(n_units, -1, dtype=int)
    for u in range(n_units):
        cand = [i for i, t in enumerate(targets) if t.unit == u and t.pole == pole]
        if cand:
            idx[u] = max(cand, key=lambda i: own[i]) if pole == "high" else min(cand, key=lambda i: own[i])
    return idx


def _image_stats(images: torch.Tensor, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean luminance and RMS contrast of the chosen images (NaN where none)."""
    from actmax.core.transforms import rms_contrast
    lum, rms = np.full(len(idx), np.nan), np.full(len(idx), np.nan)
    ok = idx >= 0
    if ok.any():
        chosen = images[torch.as_tensor(idx[ok])].float()
        lum[ok] = chosen.mean(dim=(1, 2, 3)).double().numpy()
        rms[ok] = rms_contrast(chosen).double().numpy()
    return lum, rms


def _readout_errors(neurons: Any, readout: dict[str, Any], scale: float, n_units: int) -> np.ndarray:
    rf_true = getattr(neurons, "receptive_fields", None)   # model neurons know their RF centres; others do not
    err = np.full(n_units, np.nan)
    if rf_true is not None:
        for u, row in enumerate(readout["neurons"]):
            x, y = (row["x_px"] + 0.5) * scale, (row["y_px"] + 0.5) * scale   # twin pixel -> the neurons' pixels
            err[u] = float(np.hypot(x - rf_true[u][0], y - rf_true[u][1]))
    return err


def _projections(neurons: Any, images: torch.Tensor, targets: list) -> dict[int, dict[str, list[float]]]:
    """Why a cell falls short: which feature its MEI/LEI carry (model neurons only)."""
    proj: dict[int, dict[str, list[float]]] = {}
    if hasattr(neurons, "feature_projections"):
        for pole in ("high", "low"):
            picks = [(i, t.unit) for i, t in enumerate(targets) if t.pole == pole]
            p = neurons.feature_projections(images[[i for i, _ in picks]], [u for _, u in picks])
            for (_, u), pr in zip(picks, p.tolist()):
                proj.setdefault(u, {})[pole] = [round(v, 4) for v in pr]
    return proj


def judge_on_truth(cfg: ClosedLoopConfig, neurons: Any, rec: Recording, trained: Any, syn: Any,
                  images: torch.Tensor) -> dict[str, Any]:
    """Phase 4: the ground-truth neurons see the MEIs/LEIs; per-neuron measures against the natural extremes."""
    from actmax.scorers.twin.selection import select_neurons
    from actmax.scorers.twin.train import readout_report

    n_units = neurons.units
    gt = noise_free_rates(neurons, images)
    own = np.array([gt[i, t.unit] for i, t in enumerate(syn.targets)])
    has_optimum = hasattr(neurons, "optimal_response")   # model neurons know their optimum; others do not
    m: dict[str, Any] = {
        "mei": _per_unit(own, syn.targets, n_units, "high", max), "lei": _per_unit(own, syn.targets, n_units, "low", min),
        "best_nat": rec.rates.max(0), "worst_nat": rec.rates.min(0), "best_nat_idx": rec.rates.argmax(0),
        "recorded_best": np.nanargmax(np.where(np.isfinite(rec.counts), rec.counts, -np.inf).max(0), axis=0),
        "optimum": neurons.optimal_response("high").double().numpy() if has_optimum else None,
        "floor": neurons.optimal_response("low").double().numpy() if has_optimum else None,
        "oracle": np.array([np.nan if v is None else v for v in trained.report["oracle_correlation"]], float),
        "kinds": list(getattr(neurons, "kinds", ["?"] * n_units)),   # model neurons' families
        "readout": readout_report(trained.ensemble), "projections": _projections(neurons, images, syn.targets),
    }
    m["beats"], m["below"] = m["mei"] > m["best_nat"], m["lei"] < m["worst_nat"]
    # the reported MEI/LEI per unit: its luminance and contrast, the grey screen, and how far the twin over-predicts
    mei_idx, lei_idx = _chosen(own, syn.targets, n_units, "high"), _chosen(own, syn.targets, n_units, "low")
    (m["mei_lum"], m["mei_rms"]), (m["lei_lum"], m["lei_rms"]) = _image_stats(images, mei_idx), _image_stats(images, lei_idx)
    m["grey"] = noise_free_rates(neurons, torch.full((1, *images.shape[1:]), 0.5))[0]
    predicted = syn.responses.double().numpy()
    m["twin_mei_prediction"] = np.array([predicted[i] if i >= 0 else np.nan for i in mei_idx])
    m["reliable"] = np.sort(select_neurons(m["oracle"], threshold=cfg.reliable_oracle))
    m["readout_err"] = _readout_errors(neurons, m["readout"], int(neurons.size or 64) / trained.ensemble.config.image_size,
                                       n_units)
    m["frac_opt"] = m["mei"] / m["optimum"] if m["optimum"] is not None else np.full(n_units, np.nan)
    return m


def _neuron_row(u: int, m: dict[str, Any], trained: Any) -> dict[str, Any]:
    mei, best, opt, floor, err = m["mei"][u], m["best_nat"][u], m["optimum"], m["floor"], m["readout_err"][u]
    return {"unit": u, "kind": m["kinds"][u], "test_correlation": trained.report["test_correlation"][u],
            "oracle": trained.report["oracle_correlation"][u],
            "mei_response": round(float(mei), 5), "best_natural_response": round(float(best), 5),
            "mei_over_best_natural": round(float(mei / best), 4) if best > 0 else None,
            "mei_beats_best_natural": bool(m["beats"][u]),
            "lei_response": round(float(m["lei"][u]), 5), "worst_natural_response": round(float(m["worst_nat"][u]), 5),
            "lei_below_worst_natural": bool(m["below"][u]),
            "optimum_response": None if opt is None else round(float(opt[u]), 5),
            "mei_fraction_of_optimum": None if opt is None else round(float(mei / opt[u]), 4),
            "floor_response": None if floor is None else round(float(floor[u]), 5),
            "best_natural_index": int(m["best_nat_idx"][u]), "best_recorded_index": int(m["recorded_best"][u]),
            "readout_error_px": None if not np.isfinite(err) else round(float(err), 2),
            "readout_within_2px": bool(err <= 2.0) if np.isfinite(err) else None,
            "grey_response": round(float(m["grey"][u]), 5),
            "lei_below_grey": bool(m["lei"][u] <= m["grey"][u]),
            "lei_to_floor": (None if floor is None or m["grey"][u] == floor[u] else
                             round(float((m["grey"][u] - m["lei"][u]) / (m["grey"][u] - floor[u])), 4)),
            "twin_over_prediction": (round(float(m["twin_mei_prediction"][u] / mei), 4)
                                     if np.isfinite(m["twin_mei_prediction"][u]) and mei > 0 else None),
            "mei_mean_luminance": _opt_round(m["mei_lum"][u]), "mei_rms_contrast": _opt_round(m["mei_rms"][u]),
            "lei_mean_luminance": _opt_round(m["lei_lum"][u]), "lei_rms_contrast": _opt_round(m["lei_rms"][u]),
            "feature_projections": m["projections"].get(u)}


def _opt_round(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None


def _report(cfg: ClosedLoopConfig, rec: Recording, trained: Any, true_corr: np.ndarray, syn: Any,
            images: torch.Tensor, m: dict[str, Any], seconds: dict[str, float],
            twin_state: dict | None = None) -> dict[str, Any]:
    r = trained.report
    over_nat = m["mei"] / np.maximum(m["best_nat"], 1e-9)
    return {
        "config": _jsonable(asdict(cfg)),
        "twin": {**{k: r[k] for k in ("median_test_correlation", "test_correlation", "oracle_correlation",
                                      "single_trial_test_correlation")},
                 "correlation_to_noise_free_rates": _round(true_corr),
                 "median_correlation_to_noise_free_rates": float(np.nanmedian(true_corr)),
                 **{k: r[k] for k in ("split_sizes", "history", "train_seconds")}},
        "neurons": [_neuron_row(u, m, trained) for u in range(len(m["mei"]))],
        "per_kind": per_kind_table(m["kinds"], m["oracle"], cfg.reliable_oracle, m["readout_err"], m["beats"],
                                   m["below"], m["frac_opt"], over_nat,
                                   lei_below_grey=m["lei"] <= m["grey"], over_prediction=m["twin_mei_prediction"] / m["mei"]),
        "readout_warnings": m["readout"]["warnings"],
        "fraction_mei_beats_best_natural": float(m["beats"].mean()),
        "fraction_lei_below_worst_natural": float(m["below"].mean()),
        "reliable_neurons": m["reliable"].tolist(),
        "fraction_mei_beats_best_natural_reliable": float(m["beats"][m["reliable"]].mean()) if m["reliable"].size else None,
        "median_mei_over_best_natural": float(np.median(over_nat)),
        "contrast": {"natural_l2_norm": _summary(contrast_norm(rec.stimuli)),
                     "synthesised_l2_norm": _summary(contrast_norm(images)), "target_l2_norm": cfg.norm,
                     "images": "all stimuli are [0, 1] grey images at the neurons' native size"},
        "twin_predicted_mei_response": _round(syn.responses.double().numpy()),
        "twin_state": twin_state,
        "seconds": seconds,
    }


def run_closed_loop(config: ClosedLoopConfig | None = None, *, out_dir: str | Path | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Run the whole loop (record, fit the twin, synthesise on it, test on the truth); returns (and with
    ``out_dir`` writes) the report.

    The four phases are separate functions (:func:`record_neurons`, :func:`fit_twin`,
    :func:`synthesize_on_twin`, :func:`judge_on_truth`): the seam for a resumable ``closed_loop`` run
    kind with rounds (one phase per step; register it with :func:`actmax.core.runs.register_kind`).
    """
    from actmax.scorers.twin.model import save_twin
    from actmax.scorers.twin.train import write_report

    cfg = config or ClosedLoopConfig()
    t0 = time.time()
    neurons = scorers.create(cfg.neurons).eval()
    rec = record_neurons(cfg, neurons)
    trained, true_corr = fit_twin(cfg, neurons, rec, progress=progress)
    t_twin = time.time()
    syn, images, syn_state = synthesize_on_twin(cfg, neurons, trained.ensemble, progress=progress)
    m = judge_on_truth(cfg, neurons, rec, trained, syn, images)
    report = _report(cfg, rec, trained, true_corr, syn, images, m,
                     {"twin": round(t_twin - t0, 1), "total": round(time.time() - t0, 1)}, twin_state=syn_state)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_twin(out / "twin", trained.ensemble)
        write_report(out / "twin", trained.report, title="closed-loop twin")
        (out / "closed_loop.json").write_text(json.dumps(report, indent=2))
        _plot(out / "closed_loop.png", neurons, rec.stimuli, images, syn.targets, report, m["best_nat_idx"])
        torch.save({"mei_lei": images, "best_natural": rec.stimuli[torch.as_tensor(m["best_nat_idx"])]},
                   out / "images.pt")
    return report


def per_kind_table(kinds: list[str], oracle: np.ndarray, threshold: float, readout_err: np.ndarray,
                   beats: np.ndarray, below: np.ndarray, frac_opt: np.ndarray,
                   over_nat: np.ndarray, *, lei_below_grey: np.ndarray | None = None,
                   over_prediction: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per neuron kind: the closed loop's pass rates among reliable neurons (oracle >= threshold),
    and over every neuron of the kind (the oracle a column, not a filter): ``all_*`` medians with
    bootstrap 95 % intervals (``*_ci95``)."""
    rows = []
    for kind in dict.fromkeys(kinds):
        idx = np.array([i for i, k in enumerate(kinds) if k == kind])
        rel = idx[np.nan_to_num(oracle[idx], nan=-1) >= threshold]

        def frac(v: np.ndarray) -> float | None:
            return None if rel.size == 0 else round(float(np.mean(v[rel])), 3)

        def med(v: np.ndarray) -> float | None:
            vals = v[rel] if rel.size else v[idx]
            return None if not np.isfinite(vals).any() else round(float(np.nanmedian(vals)), 3)

        rows.append({"kind": kind, "n": int(idx.size), "reliable": int(rel.size),
                     "readout_within_2px": frac(np.nan_to_num(readout_err, nan=np.inf) <= 2.0),
                     "median_readout_error_px": med(readout_err),
                     "mei_beats_best_natural": frac(beats), "median_mei_over_best_natural": med(over_nat),
                     "median_mei_fraction_of_optimum": med(frac_opt),
                     "lei_below_worst_natural": frac(below)})
        everyone = {"all_mei_fraction_of_optimum": frac_opt, "all_mei_over_best_natural": over_nat,
                    "all_twin_over_prediction": over_prediction}
        for name, values in everyone.items():
            if values is not None:
                rows[-1][f"median_{name}"], rows[-1][f"median_{name}_ci95"] = bootstrap_median(np.asarray(values)[idx])
        if lei_below_grey is not None:
            rows[-1]["all_lei_below_grey"] = round(float(np.mean(lei_below_grey[idx])), 3)
    return rows


def bootstrap_median(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> tuple[float | None, list[float] | None]:
    """The median of the finite values and its percentile-bootstrap 95 % interval (None where there are none)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None
    boots = np.median(np.random.default_rng(seed).choice(v, size=(n_boot, v.size), replace=True), axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return round(float(np.median(v)), 4), [round(float(lo), 4), round(float(hi), 4)]


def format_per_kind(rows: list[dict[str, Any]]) -> str:
    """The per-kind table as fixed-width text (reliable neurons: oracle >= 0.5)."""
    head = f"{'kind':<8} {'n':>3} {'rel':>3} {'rd<=2px':>7} {'rd err':>6} {'MEI>nat':>7} {'MEI/nat':>7} " \
           f"{'MEI/opt':>7} {'LEI<nat':>7}"
    fmt = lambda v: "  -" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [head] + [f"{r['kind']:<8} {r['n']:>3} {r['reliable']:>3} {fmt(r['readout_within_2px']):>7} "
                      f"{fmt(r['median_readout_error_px']):>6} {fmt(r['mei_beats_best_natural']):>7} "
                      f"{fmt(r['median_mei_over_best_natural']):>7} {fmt(r['median_mei_fraction_of_optimum']):>7} "
                      f"{fmt(r['lei_below_worst_natural']):>7}" for r in rows]
    return "\n".join(lines)


def _round(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in np.asarray(values, float)]


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"min": round(float(values.min()), 4), "median": round(float(np.median(values)), 4),
            "max": round(float(values.max()), 4)}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _plot(path: Path, neurons: Any, stimuli: torch.Tensor, images: torch.Tensor, targets: list,
          report: dict[str, Any], best_idx: np.ndarray) -> None:
    from actmax.core.run_plots import plt  # headless figures; the caller's pyplot backend is left alone

    rows = report["neurons"]
    n = len(rows)
    has_opt = hasattr(neurons, "optimal_stimulus")
    cols = 4 if has_opt else 3
    fig = plt.figure(figsize=(2.0 * cols + 4.5, 1.9 * n + 0.6))
    grid = fig.add_gridspec(n, cols + 2)
    mei_of = {t.unit: i for i, t in reversed(list(enumerate(targets))) if t.pole == "high"}
    lei_of = {t.unit: i for i, t in reversed(list(enumerate(targets))) if t.pole == "low"}
    opt = neurons.optimal_stimulus("high") if has_opt else None
    for u, row in enumerate(rows):
        panels = [("best natural", stimuli[int(best_idx[u])], row["best_natural_response"]),
                  ("twin MEI", images[mei_of[u]], row["mei_response"]),
                  ("twin LEI", images[lei_of[u]], row["lei_response"])]
        if has_opt:
            panels.append(("true optimum", opt[u], row["optimum_response"]))
        for j, (name, img, resp) in enumerate(panels):
            ax = fig.add_subplot(grid[u, j])
            if img.shape[0] == 3:
                ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            else:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{name}\n{resp:.2f}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{u}: {row['kind']}\nr={row['test_correlation']:.2f}", fontsize=7)
        ax = fig.add_subplot(grid[u, cols:])
        vals = [row["worst_natural_response"], row["lei_response"], row["best_natural_response"], row["mei_response"]]
        labels = ["worst nat.", "LEI", "best nat.", "MEI"]
        colors = ["#999999", "tab:blue", "#555555", "tab:red"]
        if has_opt:
            vals.append(row["optimum_response"]), labels.append("optimum"), colors.append("tab:green")
        ax.barh(range(len(vals)), vals, color=colors)
        ax.set_yticks(range(len(vals)), labels, fontsize=6)
        ax.tick_params(axis="x", labelsize=6)
    fig.suptitle(f"in-silico closed loop: MEI > best natural for {report['fraction_mei_beats_best_natural']:.0%} "
                 f"of neurons; twin median test r = {report['twin']['median_test_correlation']:.2f}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (1.9 * n + 0.6)))
    fig.savefig(path, dpi=100)
    plt.close(fig)

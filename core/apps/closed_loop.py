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
                    norm: float = 6.0, channels: int = 1) -> torch.Tensor:
    """``n`` natural patches (n, channels, size, size) in [0, 1]: grey mean, Gaussian aperture,
    L2 contrast ``norm`` (over all channels; colour patches keep their colour contrast)."""
    from actmax.core.apps.natural_images import sample_patches

    x = torch.from_numpy(sample_patches(n, size, channels=channels, seed=seed))
    c = x - x.mean(dim=(1, 2, 3), keepdim=True)
    if aperture is not None:
        axis = torch.arange(size, dtype=torch.float32) + 0.5 - size / 2
        r2 = axis[:, None] ** 2 + axis[None, :] ** 2
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
        raise ValueError(f"window must be > 0, got {window}")
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


def run_closed_loop(config: ClosedLoopConfig | None = None, *, out_dir: str | Path | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Run the whole loop; returns (and with ``out_dir`` writes) the report."""
    from actmax.core.synthesize import synthesize
    from actmax.optimizers.ascent import limit_input
    from actmax.scorers.twin.model import TwinScorer, save_twin
    from actmax.scorers.twin.selection import pearson_per_neuron, select_neurons
    from actmax.scorers.twin.train import TrainOptions, predict, readout_report, write_report, train_twin

    cfg = config or ClosedLoopConfig()
    t0 = time.time()
    neurons = scorers.create(cfg.neurons).eval()
    size = int(getattr(neurons, "size", 64))
    n_units = neurons.units
    channels = int(getattr(neurons, "channels", 1))
    stimuli = natural_stimuli(cfg.n_train + cfg.n_test, size, seed=cfg.patch_seed, aperture=cfg.aperture,
                              norm=cfg.norm, channels=channels)
    rates = noise_free_rates(neurons, stimuli)
    trials = np.r_[np.ones(cfg.n_train, int), np.full(cfg.n_test, cfg.repeats, int)]
    # issue 24: neurons with state (model_behaving) are recorded at a random eye position and behaviour per
    # trial, the twin gets a shifter and a modulator, and everything after training (best natural patch,
    # MEIs on the truth) is at the twin's training-mean state, the scorer's default
    state: dict[str, Any] = {}
    if hasattr(neurons, "draw_states"):
        rec = neurons.record(stimuli, trials, window=cfg.window, seed=cfg.noise_seed)
        counts, state = rec["responses"], {"eye": rec["eye"], "behavior": rec["behavior"]}
    else:
        counts = simulate_trials(rates, trials, window=cfg.window, seed=cfg.noise_seed)

    opts = TrainOptions(**{"test_images": "repeated", **cfg.train})
    trained = train_twin(stimuli.numpy(), counts, neuron_ids=getattr(neurons, "unit_names", None),
                         architecture=cfg.architecture, options=opts, progress=progress, **state)
    twin = trained.ensemble
    if state:
        neurons.set_state(eye=twin.config.eye_mean, behavior=twin.config.behavior_mean)
        rates = noise_free_rates(neurons, stimuli)
    names = list(getattr(neurons, "unit_names", [str(u) for u in range(n_units)]))
    if [str(i) for i in twin.config.neuron_ids] != [str(i) for i in names]:   # matched by name, never by position
        raise ValueError(f"closed loop: twin neurons {twin.config.neuron_ids[:5]} do not match the recorded "
                         f"neurons {names[:5]}")
    test = trained.split["test"]
    true_corr = pearson_per_neuron(predict(twin, stimuli[torch.as_tensor(test)]), rates[test])
    t_twin = time.time()

    scorer = TwinScorer(twin)
    ascent = cfg.ascent if "norm=" in cfg.ascent else f"{cfg.ascent},norm={cfg.norm}"
    generator = cfg.generator
    if "size=" not in generator and generator.split(":")[0] in ("pixel", "fourier"):
        generator = f"{generator},size={size}" if ":" in generator else f"{generator}:size={size}"
    if channels == 3 and "channels=" not in generator and generator.startswith(("pixel", "fourier")):
        generator = f"{generator},channels=3" if ":" in generator else f"{generator}:channels=3"
    syn = synthesize(generator, scorer, units=list(range(n_units)), poles=("high", "low"),
                     seeds=cfg.synthesis_seeds, ascent=ascent, progress=progress)
    images = limit_input(syn.images.clamp(0, 1), norm=cfg.norm).clamp(0, 1)
    gt = noise_free_rates(neurons, images)
    own = np.array([gt[i, t.unit] for i, t in enumerate(syn.targets)])
    twin_pred = syn.responses.double().numpy()

    def per_unit(pole: str, reduce: Any) -> np.ndarray:
        vals = np.full(n_units, np.nan)
        for u in range(n_units):
            picks = [own[i] for i, t in enumerate(syn.targets) if t.unit == u and t.pole == pole]
            vals[u] = reduce(picks)
        return vals

    mei_gt, lei_gt = per_unit("high", max), per_unit("low", min)
    best_nat, worst_nat = rates.max(0), rates.min(0)
    best_nat_idx = rates.argmax(0)
    recorded_best = np.nanargmax(np.where(np.isfinite(counts), counts, -np.inf).max(0), axis=0)
    optimum = neurons.optimal_response("high").double().numpy() if hasattr(neurons, "optimal_response") else None
    opt_low = neurons.optimal_response("low").double().numpy() if hasattr(neurons, "optimal_response") else None
    beats = mei_gt > best_nat
    below = lei_gt < worst_nat
    oracle = np.array([np.nan if v is None else v for v in trained.report["oracle_correlation"]], float)
    reliable = np.sort(select_neurons(oracle, threshold=cfg.reliable_oracle))
    kinds = list(getattr(neurons, "kinds", ["?"] * n_units))
    readout = readout_report(twin)
    scale = size / twin.config.image_size          # twin pixel index -> the neurons' pixel coordinates
    rf_true = getattr(neurons, "receptive_fields", None)
    readout_err = np.full(n_units, np.nan)
    if rf_true is not None:
        for u, row in enumerate(readout["neurons"]):
            x, y = (row["x_px"] + 0.5) * scale, (row["y_px"] + 0.5) * scale
            readout_err[u] = float(np.hypot(x - rf_true[u][0], y - rf_true[u][1]))
    frac_opt = mei_gt / optimum if optimum is not None else np.full(n_units, np.nan)
    proj: dict[int, dict[str, list[float]]] = {}
    if hasattr(neurons, "feature_projections"):   # why a cell falls short: which feature its MEI/LEI carry
        for pole in ("high", "low"):
            picks = [(i, t.unit) for i, t in enumerate(syn.targets) if t.pole == pole]
            p = neurons.feature_projections(images[[i for i, _ in picks]], [u for _, u in picks])
            for (_, u), pr in zip(picks, p.tolist()):
                proj.setdefault(u, {})[pole] = [round(v, 4) for v in pr]
    report: dict[str, Any] = {
        "config": _jsonable(asdict(cfg)),
        "twin": {
            "median_test_correlation": trained.report["median_test_correlation"],
            "test_correlation": trained.report["test_correlation"],
            "oracle_correlation": trained.report["oracle_correlation"],
            "single_trial_test_correlation": trained.report["single_trial_test_correlation"],
            "correlation_to_noise_free_rates": _round(true_corr),
            "median_correlation_to_noise_free_rates": float(np.nanmedian(true_corr)),
            "split_sizes": trained.report["split_sizes"],
            "history": trained.report["history"],
            "train_seconds": trained.report["train_seconds"],
        },
        "neurons": [
            {"unit": u, "kind": kinds[u], "test_correlation": trained.report["test_correlation"][u],
             "oracle": trained.report["oracle_correlation"][u],
             "mei_response": round(float(mei_gt[u]), 5), "best_natural_response": round(float(best_nat[u]), 5),
             "mei_over_best_natural": round(float(mei_gt[u] / best_nat[u]), 4) if best_nat[u] > 0 else None,
             "mei_beats_best_natural": bool(beats[u]),
             "lei_response": round(float(lei_gt[u]), 5), "worst_natural_response": round(float(worst_nat[u]), 5),
             "lei_below_worst_natural": bool(below[u]),
             "optimum_response": None if optimum is None else round(float(optimum[u]), 5),
             "mei_fraction_of_optimum": None if optimum is None else round(float(mei_gt[u] / optimum[u]), 4),
             "floor_response": None if opt_low is None else round(float(opt_low[u]), 5),
             "best_natural_index": int(best_nat_idx[u]), "best_recorded_index": int(recorded_best[u]),
             "readout_error_px": None if not np.isfinite(readout_err[u]) else round(float(readout_err[u]), 2),
             "readout_within_2px": bool(readout_err[u] <= 2.0) if np.isfinite(readout_err[u]) else None,
             "feature_projections": proj.get(u)}
            for u in range(n_units)],
        "per_kind": per_kind_table(kinds, oracle, cfg.reliable_oracle, readout_err, beats, below, frac_opt,
                                   mei_gt / np.maximum(best_nat, 1e-9)),
        "readout_warnings": readout["warnings"],
        "fraction_mei_beats_best_natural": float(beats.mean()),
        "fraction_lei_below_worst_natural": float(below.mean()),
        "reliable_neurons": reliable.tolist(),
        "fraction_mei_beats_best_natural_reliable": float(beats[reliable].mean()) if reliable.size else None,
        "median_mei_over_best_natural": float(np.median(mei_gt / np.maximum(best_nat, 1e-9))),
        "contrast": {
            "natural_l2_norm": _summary(contrast_norm(stimuli)),
            "synthesised_l2_norm": _summary(contrast_norm(images)),
            "target_l2_norm": cfg.norm,
            "images": "all stimuli are [0, 1] grey images at the neurons' native size",
        },
        "twin_predicted_mei_response": _round(twin_pred),
        "twin_state": scorer.state,
        "seconds": {"twin": round(t_twin - t0, 1), "total": round(time.time() - t0, 1)},
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_twin(out / "twin", twin)
        write_report(out / "twin", trained.report, title="closed-loop twin")
        (out / "closed_loop.json").write_text(json.dumps(report, indent=2))
        _plot(out / "closed_loop.png", neurons, stimuli, images, syn.targets, report, best_nat_idx)
        torch.save({"mei_lei": images, "best_natural": stimuli[torch.as_tensor(best_nat_idx)]},
                   out / "images.pt")
    return report


def per_kind_table(kinds: list[str], oracle: np.ndarray, threshold: float, readout_err: np.ndarray,
                   beats: np.ndarray, below: np.ndarray, frac_opt: np.ndarray,
                   over_nat: np.ndarray) -> list[dict[str, Any]]:
    """One row per neuron kind: the closed loop's pass rates among reliable neurons (oracle >= threshold)."""
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
    return rows


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

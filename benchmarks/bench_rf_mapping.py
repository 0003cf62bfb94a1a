"""Round 0 of the closed loop (issue 20): which RF-mapping block, and where the twin's readout starts.

Three measurements on ``model:kind=all,n=12,size=32`` (population seeds 0 and 1; Poisson trials
in a 30-unit window, one trial per image, as the closed loop records):

1. ``rf``: RF-centre error (px, against ``ModelNeurons.receptive_fields``) of
   :func:`actmax.core.apps.rf_mapping.estimate_receptive_fields` per family, from N sparse-noise,
   N Gabor or N natural images (aperture 0.35, norm 3, the closed-loop stimuli) at equal count N.
2. ``natural``: natural stimuli at the image centre (as now) vs centred on the population's mapped
   RF centre with a tighter aperture: the response modulation (s.d. of the noise-free rate over
   Poisson s.d.) and the best natural response as a fraction of the optimum, per family.
3. ``twin``: readout error after twin training on natural patches plus a mapping block, readout
   started by the twin's own ``estimate_positions`` (the current default) vs at the mapped RF
   centres (``TrainOptions(initial_positions=...)``) vs at the true RF centres.

    OMP_NUM_THREADS=1 nice python benchmarks/bench_rf_mapping.py rf --n 1000
    OMP_NUM_THREADS=1 nice python benchmarks/bench_rf_mapping.py natural
    OMP_NUM_THREADS=1 nice python benchmarks/bench_rf_mapping.py twin --n-natural 2000 --n 500
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from actmax.core.apps.closed_loop import natural_stimuli, noise_free_rates, simulate_trials
from actmax.core.apps.rf_mapping import MAPPING_KINDS, estimate_receptive_fields, mapping_stimuli
from actmax.core.registry import scorers

FAMILIES = ("simple", "complex", "dual", "endstop", "colour", "cnn")
SIZE, NORM, WINDOW, APERTURE = 32, 3.0, 30.0, 0.35


def population(seed: int):
    neurons = scorers.create(f"model:kind=all,n=12,size={SIZE},seed={seed}").eval()
    return neurons, np.array([rf[:2] for rf in neurons.receptive_fields])


def stimuli(kind: str, n: int, channels: int, seed: int, centre=None, aperture=APERTURE) -> torch.Tensor:
    if kind == "natural":
        kw = {} if centre is None else {"centre": centre}
        return natural_stimuli(n, SIZE, seed=seed, aperture=aperture, norm=NORM, channels=channels, **kw)
    return mapping_stimuli(n, SIZE, channels=channels, norm=NORM, seed=seed, kind=kind)


def record(neurons, x: torch.Tensor, seed: int) -> np.ndarray:
    """One Poisson trial per image, as rates (counts / window)."""
    rates = noise_free_rates(neurons, x)
    return simulate_trials(rates, np.ones(len(x), int), window=WINDOW, seed=seed)[0] / WINDOW


def per_family(kinds: list[str], values: np.ndarray) -> dict[str, float]:
    return {f: round(float(np.median([v for k, v in zip(kinds, values) if k == f])), 2) for f in FAMILIES}


def bench_rf(n: int, seeds: list[int]) -> dict:
    rows = {}
    for kind in (*MAPPING_KINDS, "natural"):
        errs, kinds, cpu = [], [], time.process_time()
        for seed in seeds:
            neurons, true = population(seed)
            x = stimuli(kind, n, neurons.channels, seed=100 + seed)
            est = estimate_receptive_fields(x, record(neurons, x, seed=200 + seed))
            errs += np.hypot(*(est - true).T).tolist()
            kinds += neurons.kinds
        errs = np.array(errs)
        rows[kind] = {**per_family(kinds, errs), "all": round(float(np.median(errs)), 2),
                      "within_2px": round(float(np.mean(errs <= 2)), 2),
                      "cpu_s": round(time.process_time() - cpu, 1)}
    return rows


def bench_natural(n: int, seeds: list[int], apertures: list[float]) -> dict:
    rows = {}
    for label, centred, aperture in [("image centre", False, APERTURE)] + [("RF centre", True, a) for a in apertures]:
        mod, best, kinds = [], [], []
        for seed in seeds:
            neurons, _ = population(seed)
            m = mapping_stimuli(n, SIZE, channels=neurons.channels, norm=NORM, seed=300 + seed)
            centre = tuple(np.nanmedian(estimate_receptive_fields(m, record(neurons, m, seed=400 + seed)), 0)) \
                if centred else None
            x = stimuli("natural", n, neurons.channels, seed=100 + seed, centre=centre, aperture=aperture)
            rates = noise_free_rates(neurons, x)
            mod += list(rates.std(0) / np.sqrt(np.maximum(rates.mean(0), 1e-9) / WINDOW))
            best += list(rates.max(0) / neurons.optimal_response("high").double().numpy())
            kinds += neurons.kinds
        rows[f"{label}, aperture {aperture}"] = {"modulation_over_poisson_sd": per_family(kinds, np.array(mod)),
                                                 "best_natural_over_optimum": per_family(kinds, np.array(best))}
    return rows


def bench_twin(n_natural: int, n_map: int, seeds: list[int], epochs: int, kind: str) -> dict:
    from actmax.scorers.twin.train import TrainOptions, readout_report, train_twin

    rows: dict[str, list] = {"estimate_positions": [], "mapped RF": [], "true RF": []}
    kinds, cpu = [], {}
    for seed in seeds:
        neurons, true = population(seed)
        x = torch.cat([stimuli("natural", n_natural, neurons.channels, seed=100 + seed),
                       stimuli(kind, n_map, neurons.channels, seed=500 + seed)])
        y = record(neurons, x, seed=600 + seed) * WINDOW
        mapped = estimate_receptive_fields(x[n_natural:], y[n_natural:])
        kinds += neurons.kinds
        for start, init in (("estimate_positions", None), ("mapped RF", mapped), ("true RF", true)):
            t = time.process_time()
            opts = TrainOptions(max_epochs=epochs, lr=0.01, position_warmup=10, initial_positions=init)
            trained = train_twin(x.numpy(), y, options=opts)
            cpu[start] = cpu.get(start, 0) + time.process_time() - t
            rd = readout_report(trained.ensemble)["neurons"]
            scale = SIZE / trained.ensemble.config.image_size
            rows[start] += [float(np.hypot((r["x_px"] + 0.5) * scale - tx, (r["y_px"] + 0.5) * scale - ty))
                            for r, (tx, ty) in zip(rd, true)]
        rows.setdefault("mapping error", []).extend(np.hypot(*(mapped - true).T).tolist())
    return {start: {**per_family(kinds, np.array(v)), "within_2px": round(float(np.mean(np.array(v) <= 2)), 2),
                    **({"cpu_s": round(cpu[start], 1)} if start in cpu else {})} for start, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("rf", "natural", "twin"))
    ap.add_argument("--n", type=int, default=1000, help="mapping images (rf: images of every kind)")
    ap.add_argument("--n-natural", type=int, default=2000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--kind", default="sparse_noise")
    ap.add_argument("--apertures", default="0.2,0.25")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.what == "rf":
        out = bench_rf(a.n, seeds)
    elif a.what == "natural":
        out = bench_natural(a.n, seeds, [float(v) for v in a.apertures.split(",")])
    else:
        out = bench_twin(a.n_natural, a.n, seeds, a.epochs, a.kind)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

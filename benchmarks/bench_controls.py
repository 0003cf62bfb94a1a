"""Closed-loop controls on ground truth, under both normalisation pools (issue 20, items 4 and 6).

For ``model:kind=all,n=12,size=32`` (every family) with ``pool=global`` and ``pool=rf``, at the closed
loop's stimulus protocol (natural patches with grey mean, Gaussian aperture 0.35, L2 contrast 3, the
4,200 patches a default closed loop records), per neuron and as per-kind medians:

* ``natural``: the best natural patch / the known optimum (how far natural stimuli reach);
* ``masked``: the best natural patch shown through a Gaussian window (2 x the median RF sigma) on
  the true RF centre, at the same contrast / optimum;
* ``gabor``: the best RF-centred Gabor at the same contrast / optimum (``best_rf_gabor``);
* ``gabor_low``: the worst RF-centred Gabor's distance below grey as a fraction of the floor's
  (1 = at the floor; ``nan`` where grey is the floor).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_controls.py [--seeds 0 1 2] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import resource

import numpy as np


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def measure(pool: str, seed: int, n_stimuli: int, size: int) -> dict:

    from actmax.core.apps.closed_loop import natural_stimuli, noise_free_rates
    from actmax.core.apps.controls import best_rf_gabor, best_rf_masked_natural, grey_response, worst_rf_gabor
    from actmax.core.registry import scorers

    neurons = scorers.create(f"model:kind=all,n=12,size={size},seed={seed},pool={pool}").eval()
    rf = np.array([r[:2] for r in neurons.receptive_fields])
    sigma = 2 * float(np.median([r[2] for r in neurons.receptive_fields]))
    opt = neurons.optimal_response("high").double().numpy()
    floor = neurons.optimal_response("low").double().numpy()
    grey = grey_response(neurons, size, neurons.channels)
    stimuli = natural_stimuli(n_stimuli, size, seed=0, aperture=0.35, norm=3.0, channels=neurons.channels)
    cpu = {}
    t = cpu_seconds()
    natural = noise_free_rates(neurons, stimuli).max(0)
    cpu["natural"] = cpu_seconds() - t
    t = cpu_seconds()
    _, masked = best_rf_masked_natural(neurons, stimuli, rf, norm=3.0, sigma=sigma)
    cpu["masked"], t = cpu_seconds() - t, cpu_seconds()
    _, gabor, params = best_rf_gabor(neurons, rf, norm=3.0, size=size, channels=neurons.channels)
    cpu["gabor"], t = cpu_seconds() - t, cpu_seconds()
    _, gabor_low, _ = worst_rf_gabor(neurons, rf, norm=3.0, size=size, channels=neurons.channels)
    cpu["gabor_low"] = cpu_seconds() - t
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(np.isclose(grey, floor), np.nan, (grey - gabor_low) / (grey - floor))
    return {"pool": pool, "seed": seed, "kinds": neurons.kinds, "natural": (natural / opt).tolist(),
            "masked": (masked / opt).tolist(), "gabor": (gabor / opt).tolist(), "gabor_low": low.tolist(),
            "gabor_orientation_deg": [p["orientation_deg"] for p in params], "cpu_seconds": cpu,
            "mask_sigma_px": sigma}


def table(rows: list[dict]) -> str:
    kinds = list(dict.fromkeys(rows[0]["kinds"]))
    cols = ("natural", "masked", "gabor", "gabor_low")
    out = ["| kind | pool | n | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for kind in kinds:
        for pool in ("global", "rf"):
            vals = {c: np.concatenate([np.asarray(r[c], float)[[k == kind for k in r["kinds"]]]
                                       for r in rows if r["pool"] == pool]) for c in cols}
            n = len(vals["natural"])
            cells = [f"{np.nanmedian(v):.2f} ({np.nanmin(v):.2f}-{np.nanmax(v):.2f})" if np.isfinite(v).any()
                     else "-" for v in vals.values()]
            out.append(f"| {kind} | {pool} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--stimuli", type=int, default=4200)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = [measure(pool, seed, args.stimuli, args.size) for seed in args.seeds for pool in ("global", "rf")]
    print(table(rows))
    cpu = {k: float(np.median([r["cpu_seconds"][k] for r in rows])) for k in rows[0]["cpu_seconds"]}
    print("median CPU seconds per population of 12:", {k: round(v, 1) for k, v in cpu.items()})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()

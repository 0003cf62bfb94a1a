"""Twins with an eye-position shifter and a behavioural modulator, on ground truth with state (issue 24).

Records ``model_behaving`` neurons (their RF moves with the eye position, their gain with
behaviour) on natural patches, one random eye position and behaviour per trial, trains two twins
on the same recording, one with shifter + modulator and one without, and measures:

* median single-trial test correlation of each twin (the test trials predicted one by one; the
  state twin at each trial's own state) against the noise ceiling: the median over neurons of the
  correlation between the true per-trial rates and the recorded single trials;
* the learned shift against the true eye-driven RF shift (per axis, on the test trials; the true
  shift is anchored at the training-mean eye position like the shifter);
* MEIs made on the state twin at the training-mean state (``eye=training_mean,
  behavior=training_mean``), shown to the ground truth at that same state, as a fraction of the
  known optimum at that state (and the same for MEIs of the stateless twin).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_twin_state.py [--quick] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    from actmax.core.apps.closed_loop import natural_stimuli
    from actmax.core.registry import scorers
    from actmax.core.synthesize import DEFAULT_RECIPE, synthesize
    from actmax.optimizers.ascent import limit_input
    from actmax.scorers.twin.model import TwinScorer
    from actmax.scorers.twin.selection import pearson_per_neuron
    from actmax.scorers.twin.train import TrainOptions, train_twin

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neurons", default="model_behaving:kind=mixed,n=9,size=32,seed=0")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--norm", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="a small run (smoke test of the script)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.steps = 600, 30, 6, 32
    torch.set_num_threads(1)
    t0, c0 = time.time(), cpu_seconds()

    neurons = scorers.create(args.neurons).eval()
    size = neurons.size
    stimuli = natural_stimuli(args.n_train + args.n_test, size, seed=0, aperture=0.35, norm=args.norm)
    trials = np.r_[np.ones(args.n_train, int), np.full(args.n_test, args.repeats, int)]
    rec = neurons.record(stimuli, trials, window=args.window, seed=1)
    arch = {"hidden_channels": 16, "layers": 3, "input_kernel": 9, "hidden_kernel": 5, "image_size": size}
    opts = TrainOptions(max_epochs=args.epochs, lr=0.01, test_images="repeated", position_warmup=10)
    names = neurons.unit_names
    results = {}
    twins = {}
    for label, state in (("shifter+modulator", {"eye": rec["eye"], "behavior": rec["behavior"]}),
                         ("no state", {})):
        c1 = cpu_seconds()
        res = train_twin(stimuli.numpy(), rec["responses"], neuron_ids=names, architecture=arch, options=opts,
                         **state)
        twins[label] = res
        results[label] = {"median_single_trial_test_correlation": res.report["median_single_trial_test_correlation"],
                          "median_test_correlation": res.report["median_test_correlation"],
                          "single_trial_test_correlation": res.report["single_trial_test_correlation"],
                          "train_cpu_s": round(cpu_seconds() - c1, 1)}
    split = twins["shifter+modulator"].split
    test = split["test"]
    resp_t, rate_t = rec["responses"][:, test], rec["rates"][:, test]
    ok = np.isfinite(resp_t).any(2)
    ceiling = pearson_per_neuron(rate_t[ok], resp_t[ok])
    ceiling_mean = pearson_per_neuron(np.nanmean(rate_t, 0), np.nanmean(resp_t, 0))
    results["noise_ceiling"] = {"median_single_trial": float(np.nanmedian(ceiling)),
                                "median_trial_mean": float(np.nanmedian(ceiling_mean)),
                                "single_trial": [round(float(v), 4) for v in ceiling]}
    for label in ("shifter+modulator", "no state"):
        results[label]["gap_to_ceiling"] = round(results["noise_ceiling"]["median_single_trial"]
                                                 - results[label]["median_single_trial_test_correlation"], 4)

    # learned vs true shifts (test trials)
    twin = twins["shifter+modulator"].ensemble
    cfg = twin.config
    eye_t = torch.as_tensor(rec["eye"][:, test][ok], dtype=torch.float32)
    with torch.no_grad():
        grid = torch.stack([m.shifter(eye_t) for m in twin.members]).mean(0)
    learned_px = grid.numpy() * (cfg.image_size - 1) / 2 * (size / cfg.image_size)
    true_px = neurons.true_shift(eye_t - torch.tensor(cfg.eye_mean, dtype=torch.float32)).numpy()
    shift_corr = [float(np.corrcoef(learned_px[:, a], true_px[:, a])[0, 1]) for a in range(2)]
    slope = [float(np.polyfit(true_px[:, a], learned_px[:, a], 1)[0]) for a in range(2)]
    results["shift"] = {"correlation_x": round(shift_corr[0], 4), "correlation_y": round(shift_corr[1], 4),
                        "slope_x": round(slope[0], 3), "slope_y": round(slope[1], 3),
                        "true_shift_sd_px": round(float(true_px.std()), 3)}

    # MEIs at the training-mean state, on the ground truth at that state
    neurons.set_state(eye=cfg.eye_mean, behavior=cfg.behavior_mean)
    optimum = neurons.optimal_response("high").double().numpy()
    ascent = f"{DEFAULT_RECIPE},steps={args.steps},norm={args.norm}"
    for label in ("shifter+modulator", "no state"):
        c1 = cpu_seconds()
        scorer = TwinScorer(twins[label].ensemble)
        syn = synthesize(f"pixel:size={size}", scorer, units=list(range(neurons.units)), poles=("high",),
                         ascent=ascent, progress=False)
        images = limit_input(syn.images.clamp(0, 1), norm=args.norm).clamp(0, 1)
        with torch.no_grad():
            gt = neurons(images).double().numpy()
        frac = np.array([gt[i, t.unit] / optimum[t.unit] for i, t in enumerate(syn.targets)])
        results[label]["mei_fraction_of_optimum"] = [round(float(v), 4) for v in frac]
        results[label]["median_mei_fraction_of_optimum"] = round(float(np.median(frac)), 4)
        results[label]["per_kind_mei_fraction"] = {k: round(float(np.median(frac[[i for i, kk in enumerate(neurons.kinds)
                                                                                  if kk == k]])), 4)
                                                   for k in dict.fromkeys(neurons.kinds)}
        results[label]["synthesis_cpu_s"] = round(cpu_seconds() - c1, 1)
        results[label]["state"] = scorer.state
    results["config"] = vars(args)
    results["cpu_s"] = round(cpu_seconds() - c0, 1)
    results["wall_s"] = round(time.time() - t0, 1)
    a, b, n = results["shifter+modulator"], results["no state"], results["noise_ceiling"]
    print(f"noise ceiling (single trial, median): {n['median_single_trial']:.3f}")
    for label, r in (("shifter+modulator", a), ("no state", b)):
        print(f"{label:>18}: single-trial r {r['median_single_trial_test_correlation']:.3f} "
              f"(gap {r['gap_to_ceiling']:.3f}), trial-mean r {r['median_test_correlation']:.3f}, "
              f"MEI / optimum at the training-mean state {r['median_mei_fraction_of_optimum']:.3f} "
              f"{r['per_kind_mei_fraction']}")
    print(f"shift correlation x {results['shift']['correlation_x']:.3f}, y {results['shift']['correlation_y']:.3f}; "
          f"CPU {results['cpu_s']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


if __name__ == "__main__":
    main()

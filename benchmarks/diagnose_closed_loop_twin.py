"""Why a closed-loop twin's MEIs fall short: refit one finished run's last round with a variant and measure.

Reads a finished ``closed_loop`` run record (model neurons), rebuilds the data its last twin was fitted
on, refits that twin with one variant of the training options or architecture, synthesises MEIs on the
refit twin (the run's own recipe, seeds and contrast) and prints, per kind, MEI / optimum on the true
neurons (best synthesis seed per neuron). The README paragraph "What limits dual and end-stopped MEIs"
was measured with it, e.g.:

    OMP_NUM_THREADS=1 python -m benchmarks.diagnose_closed_loop_twin RUN                        # the loop's refit
    OMP_NUM_THREADS=1 python -m benchmarks.diagnose_closed_loop_twin RUN --set max_epochs=30
    OMP_NUM_THREADS=1 python -m benchmarks.diagnose_closed_loop_twin RUN --set gamma_readout=5e-4 --set gamma_input=1e-3
    OMP_NUM_THREADS=1 python -m benchmarks.diagnose_closed_loop_twin RUN --cold --arch hidden_channels=32

``--set`` changes a ``TrainOptions`` field, ``--arch`` an architecture field (an architecture change needs
``--cold``: a fit from scratch, ``max_epochs`` of round 0, readouts starting at round 0's RF estimates).

``--lei-floor`` refits nothing: on the run's last twin it compares, per neuron, the twin's prediction and
the true response for the run's LEI and for a grey screen, then descends the twin's drive before its
output nonlinearity (instead of its rate) and reports each kind's LEI minus grey as a fraction of the
optimum for both (why complex and cnn LEIs sit just above grey, README):

    OMP_NUM_THREADS=1 python -m benchmarks.diagnose_closed_loop_twin RUN --lei-floor
"""
from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

import numpy as np
import torch


def _pairs(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        out[key] = ast.literal_eval(value)
    return out


class TwinDrive(torch.nn.Module):
    """A twin ensemble's mean drive before its ELU + 1 output (B, units): a scorer for descent past zero rate."""

    def __init__(self, ensemble: torch.nn.Module) -> None:
        super().__init__()
        self.ensemble = ensemble
        self.units = int(ensemble.config.n_neurons)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.ensemble.members[0].prepare(images)
        return torch.stack([m.readout(m.core(x)) for m in self.ensemble.members]).mean(0)


def lei_floor(run: Path, loop, cfg, r: int) -> dict:
    """Per neuron, the last twin's LEI and grey screen, predicted (counts) and true (rate); per kind, the
    true LEI minus grey over the optimum for descent on the twin's rate and on its drive."""
    import actmax
    from actmax.core.apps.closed_loop import synthesis_generator
    from actmax.core.synthesize import synthesize
    from actmax.core.transforms import limit_input
    from actmax.scorers.twin.model import TwinScorer

    ensemble = loop._get(r, "twin").eval()
    lei = actmax.load_run(run).stimuli["lei"]
    grey = torch.full((1, *lei.shape[1:]), 0.5)
    with torch.no_grad():
        twin = TwinScorer(ensemble)
        twin_lei, twin_grey = twin(lei).diagonal().double().numpy(), twin(grey)[0].double().numpy()
        true_lei, true_grey = loop.neurons(lei).diagonal().double().numpy(), loop.neurons(grey)[0].double().numpy()
    optimum = loop.neurons.optimal_response("high").double().numpy()
    kinds = list(loop.neurons.kinds)
    neurons = [{"unit": u, "kind": kinds[u], "twin_lei": round(float(twin_lei[u]), 3),
                "twin_grey": round(float(twin_grey[u]), 3), "true_lei": round(float(true_lei[u]), 4),
                "true_grey": round(float(true_grey[u]), 4)} for u in range(loop.units)]
    above: dict[str, dict[str, list[float]]] = {}
    for name, scorer in (("rate", TwinScorer(ensemble)), ("drive", TwinDrive(ensemble))):
        syn = synthesize(synthesis_generator(cfg, loop.size, loop.channels), scorer, units=list(range(loop.units)),
                         poles=("low",), seeds=cfg.synthesis_seeds, ascent=f"{cfg.ascent},norm={cfg.norm}",
                         progress=False)
        images = limit_input(syn.images.clamp(0, 1), norm=cfg.norm).clamp(0, 1)
        with torch.no_grad():
            truth = loop.neurons(images).double().numpy()
        unit = np.array([t.unit for t in syn.targets])
        for u in range(loop.units):
            above.setdefault(name, {}).setdefault(kinds[u], []).append(
                round(float((truth[unit == u, u].min() - true_grey[u]) / optimum[u]), 4))
    return {"run": str(run), "round": r, "neurons": neurons, "lei_minus_grey_over_optimum": above}


def main() -> None:
    from actmax.core.apps.closed_loop import synthesis_generator
    from actmax.core.apps.closed_loop_run import TEST, ClosedLoopRun, LoopConfig
    from actmax.core.synthesize import synthesize
    from actmax.core.transforms import limit_input
    from actmax.scorers.twin.model import TwinScorer
    from actmax.scorers.twin.train import TrainOptions, train_twin

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished closed-loop run folder (model neurons)")
    ap.add_argument("--set", action="append", default=[], help="TrainOptions field=value")
    ap.add_argument("--arch", action="append", default=[], help="architecture field=value (needs --cold)")
    ap.add_argument("--cold", action="store_true", help="fit from scratch instead of the warm start")
    ap.add_argument("--lei-floor", action="store_true",
                    help="no refit: the last twin's LEI vs grey, predicted and true, and descent on its drive")
    args = ap.parse_args()

    record = json.loads((args.run / "closed_loop.json").read_text())
    cfg = LoopConfig.from_dict(record["config"])
    loop = ClosedLoopRun(cfg, args.run)
    r = int(record["round"])
    if args.lei_floor:
        print(json.dumps(lei_floor(args.run, loop, cfg, r), indent=1))
        return
    if r < 1:
        raise SystemExit("error: the run has no round after round 0 to refit")
    stim, counts, blocks = loop._data(r)
    test, rest = np.flatnonzero(blocks == TEST), np.flatnonzero(blocks != TEST)
    split = {"test": test, "val": rest[rest % 10 == 9], "train": rest[rest % 10 != 9]}
    opts = {"test_images": "repeated", **cfg.train, "members": cfg.members, "seed": cfg.train_seed + 7 * r}
    architecture = {**cfg.architecture, **_pairs(args.arch)}
    warm = None
    if args.cold:
        opts["initial_positions"] = loop._get(0, "recorded")["rf_xy"].double().numpy().tolist()
    else:
        if args.arch:
            raise SystemExit("error: --arch changes the architecture; the warm start needs --cold")
        warm = loop._get(r - 1, "twin")
        opts.update(max_epochs=cfg.retrain_epochs, position_warmup=cfg.retrain_position_warmup)
    opts.update(_pairs(args.set))
    t0 = time.process_time()
    trained = train_twin(stim.numpy(), counts, neuron_ids=loop.neurons.unit_names, architecture=architecture,
                         options=TrainOptions(**opts), split=split, warm_start=warm)
    fit_cpu = time.process_time() - t0
    twin = TwinScorer(trained.ensemble)
    syn = synthesize(synthesis_generator(cfg, loop.size, loop.channels), twin, units=list(range(loop.units)),
                     poles=("high",), seeds=cfg.synthesis_seeds, ascent=f"{cfg.ascent},norm={cfg.norm}",
                     progress=False)
    images = limit_input(syn.images.clamp(0, 1), norm=cfg.norm).clamp(0, 1)
    with torch.no_grad():
        truth = loop.neurons(images).double().numpy()
    unit = np.array([t.unit for t in syn.targets])
    optimum = loop.neurons.optimal_response("high").double().numpy()
    per_kind: dict[str, list[float]] = {}
    for u in range(loop.units):
        per_kind.setdefault(loop.neurons.kinds[u], []).append(
            round(float(truth[unit == u, u].max() / optimum[u]), 3))
    print(json.dumps({"run": str(args.run), "round": r, "cold": args.cold, "set": args.set, "arch": args.arch,
                      "fit_cpu_s": round(fit_cpu, 1),
                      "median_test_correlation": trained.report.get("median_test_correlation"),
                      "mei_fraction_of_optimum": per_kind}, indent=1))


if __name__ == "__main__":
    main()

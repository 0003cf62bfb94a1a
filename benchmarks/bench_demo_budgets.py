"""At what budget does each evolution space of `actmax demo` succeed on each model neuron?

For every demo kind (simple, complex, dual), space and condition (clean / Poisson counts as in the
demo), one CMA-ES evolution (popsize 40, as in the demo) runs for ``--generations`` generations;
each generation's best image is re-scored on the clean neuron. "Success" = the first number of
images shown at which that clean response reaches ``--target`` (default 0.9) of the known
optimum. Prints a table and writes JSON; the demo quotes the numbers (``MEASURED_BUDGETS`` in
core/apps/demo.py).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_demo_budgets.py --out budgets.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def evaluations_to_target(kind: str, index: int, space: str, noisy: bool, generations: int, target: float,
                          seed: int = 0, optimizer: str | None = None) -> dict:
    import actmax.generators  # noqa: F401
    import actmax.scorers  # noqa: F401
    from actmax.core.apps import demo
    from actmax.core.evolve import _Evolution
    from actmax.core.registry import scorers

    clean = demo._model(kind, index)
    model = scorers.create(clean).eval()
    optimum = float(model.optimal_response("high", [0])[0])
    scorer = demo._noisy(clean) if noisy else clean
    ev = _Evolution([space], scorer, optimizer or demo.OPTIMIZER, unit=0, pole="high", generations=generations, seed=seed,
                    reference_images=None, device=None)
    t0 = time.process_time()
    while ev.generation < ev.generations:
        ev.step()
    with torch.no_grad():
        images = ev.gens[0](torch.as_tensor(np.stack(ev.best_codes[0]), dtype=torch.float32))
        response = model(images)[:, 0].double().numpy()
    popsize = int((np.asarray(ev.rows["generation"]) == 0).sum())
    frac = response / optimum
    hit = np.flatnonzero(frac >= target)
    return {"kind": kind, "space": space, "optimizer": ev.optimizer_specs[0], "condition": "noisy" if noisy else "clean", "popsize": popsize,
            "evaluations_to_target": int((hit[0] + 1) * popsize) if hit.size else None,
            "best_fraction": round(float(frac.max()), 3), "budget": generations * popsize,
            "cpu_s": round(time.process_time() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=250)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--spaces", default="gabor:size=64;fourier:size=16;fourier:size=8")
    parser.add_argument("--optimizer", default=None, help="default: the demo's (cma:popsize=40)")
    parser.add_argument("--conditions", default="clean,noisy")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from actmax.core.apps.demo import DEMO_KINDS

    rows = []
    for noisy in [c == "noisy" for c in args.conditions.split(",")]:
        for space in args.spaces.split(";"):
            for index, kind in enumerate(DEMO_KINDS):
                row = evaluations_to_target(kind, index, space, noisy, args.generations, args.target,
                                            optimizer=args.optimizer)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"target": args.target, "generations": args.generations, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()

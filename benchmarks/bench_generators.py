"""Speed of the generator spaces and the optimizer's share of a generation.

1. Images per second through each generator alone and through generator + scorer
   (DeePSim fc6 and BigGAN-deep-256 with random weights at full size, Fourier, Gabor).
2. At 4096-d (the DeePSim fc6 space) the wall time of one optimizer ask + tell next to the
   time to render and score that generation's images, for pycma full and diagonal CMA and the
   lab's CMA variants when they are registered. The design bar is an optimizer share <= 5 %.

Run:  .venv/bin/python benchmarks/bench_generators.py            (full)
      .venv/bin/python benchmarks/bench_generators.py --quick    (a minute or two on a CPU)
Options: --device cuda, --threads N, --batch B, --scorer SPEC, --opt-generations G.
All figures come from this one process, so ratios between them are comparable.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actmax.core.registry import generators, optimizers, scorers  # noqa: E402

OPTIONAL_OPTIMIZER_MODULES = ("actmax.optimizers.cholesky_cma", "actmax.optimizers.sphere_cma", "actmax.optimizers.hess_cma")


def timed(*fns: Callable[[], Any], repeats: int, device: torch.device, budget_s: float = 0.0,
          max_repeats: int = 200) -> list[float]:
    """Fastest call of each function, after one warm-up call each: at least ``repeats`` rounds, more
    while the round total is under ``budget_s`` seconds. The functions are interleaved call by call
    so that a busy spell on a shared machine hits all of them alike."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    t_start, rounds = time.perf_counter(), 0
    while rounds < repeats or (time.perf_counter() - t_start < budget_s and rounds < max_repeats):
        rounds += 1
        for i, fn in enumerate(fns):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def bench_spaces(spaces: list[str], scorer_spec: str, *, batch: int, repeats: int, budget_s: float,
                 device: torch.device) -> dict[str, dict[str, float]]:
    scorer = scorers.create(scorer_spec).to(device).eval()
    out: dict[str, dict[str, float]] = {}
    print(f"\n== images per second (batch {batch}, best of >= {repeats} batches, scorer {scorer_spec}, {device}) ==")
    print(f"{'space':<34}{'dim':>7}{'px':>5}{'render img/s':>14}{'+score img/s':>14}{'score share':>13}")
    for spec in spaces:
        t_build = time.perf_counter()
        gen = generators.create(spec).to(device).eval()
        t_build = time.perf_counter() - t_build
        codes = gen.init_codes(batch, seed=0).to(device)
        with torch.no_grad():
            t_render, t_both = timed(lambda: gen(codes), lambda: scorer(gen(codes)), repeats=repeats,
                                     device=device, budget_s=budget_s)
        share = max(t_both - t_render, 0.0) / t_both
        out[spec] = {"dim": gen.dim, "render_ips": batch / t_render, "total_ips": batch / t_both,
                     "build_s": t_build}
        print(f"{spec:<34}{gen.dim:>7}{gen.image_size:>5}{batch / t_render:>14.1f}{batch / t_both:>14.1f}"
              f"{share:>12.0%}")
    return out


def load_optional_optimizers() -> None:
    for module in OPTIONAL_OPTIMIZER_MODULES:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - not written yet or broken: benchmark what exists
            pass


def synthetic_hessian(dim: int, k: int, seed: int = 0) -> dict[str, np.ndarray]:
    """An orthonormal eigenbasis (dim, k) with decaying eigenvalues: stands in for a measured Hessian."""
    rng = np.random.default_rng(seed)
    vecs, _ = np.linalg.qr(rng.standard_normal((dim, k)))
    return {"eigvals": np.logspace(2, -2, k), "eigvecs": vecs}


def optimizer_candidates(dim: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, spec, extra options): pycma full/diagonal and the lab's CMA variants when registered."""
    load_optional_optimizers()
    names = optimizers.names()
    cands: list[tuple[str, str, dict[str, Any]]] = [("pycma full", "cma", {}),
                                                     ("pycma diagonal", "cma:diagonal=True", {})]
    for name in ("cholesky_cma", "sphere_cma"):
        if name in names:
            cands.append((name, name, {}))
    if "hess_cma" in names:  # the fc6 preset HessCMA800 (cutoff 800, expon 1/5) on a synthetic eigenbasis
        cands.append(("hess_cma (800)", "hess_cma", {**synthetic_hessian(dim, 800), "expon": 1 / 5}))
    return cands


def bench_optimizers(gen_spec: str, scorer_spec: str, *, generations: int, popsize: int,
                     device: torch.device) -> dict[str, dict[str, float]]:
    gen = generators.create(gen_spec).to(device).eval()
    scorer = scorers.create(scorer_spec).to(device).eval()
    x0 = gen.init_codes(1, seed=0)[0].double().numpy()
    codes = gen.init_codes(popsize, seed=1).to(device)
    with torch.no_grad():
        (t_eval,) = timed(lambda: scorer(gen(codes)), repeats=2, device=device)
    print(f"\n== optimizer share of a generation at {gen.dim}-d (population {popsize}; rendering + scoring "
          f"{popsize} images through {gen_spec} + {scorer_spec} takes {t_eval:.3f} s on {device}) ==")
    print(f"{'optimizer':<18}{'pop':>5}{'setup s':>9}{'ask+tell mean s':>17}{'max s':>9}{'share (mean)':>14}"
          f"{'share (max)':>13}")
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    for label, spec, extra in optimizer_candidates(gen.dim):
        t0 = time.perf_counter()
        try:
            opt = optimizers.create(spec, dim=gen.dim, x0=x0, sigma0=gen.default_sigma, seed=0, popsize=popsize,
                                    **extra)
        except Exception as exc:  # noqa: BLE001 - e.g. an optimizer that needs extra inputs
            print(f"{label:<18} skipped: {exc}")
            continue
        t_setup = time.perf_counter() - t0
        per_gen = []
        for _ in range(generations):
            t0 = time.perf_counter()
            x = opt.ask()
            scores = rng.standard_normal(len(x))  # the evaluation is timed separately above
            opt.tell(x, scores)
            per_gen.append(time.perf_counter() - t0)
        mean, worst = float(np.mean(per_gen)), float(np.max(per_gen))
        out[label] = {"setup_s": t_setup, "mean_s": mean, "max_s": worst, "popsize": len(x),
                      "share_mean": mean / (mean + t_eval), "share_max": worst / (worst + t_eval)}
        print(f"{label:<18}{len(x):>5}{t_setup:>9.2f}{mean:>17.4f}{worst:>9.3f}{mean / (mean + t_eval):>14.1%}"
              f"{worst / (worst + t_eval):>13.1%}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small batches and few generations")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default 16, quick 4)")
    parser.add_argument("--repeats", type=int, default=None, help="least timed batches (default 5, quick 2; fast spaces get more)")
    parser.add_argument("--scorer", default="model:n=1", help="scorer spec")
    parser.add_argument("--popsize", type=int, default=None,
                        help="population at 4096-d (default: CMA's 4 + 3 ln 4096 = 28)")
    parser.add_argument("--opt-generations", type=int, default=None, help="timed generations (default 20, quick 3)")
    parser.add_argument("--biggan-config", default="full",
                        help="BigGAN random config: full (biggan-deep-256, default) or tiny")
    parser.add_argument("--skip-spaces", action="store_true")
    parser.add_argument("--skip-optimizers", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, args.threads))
    device = torch.device(args.device)
    batch = args.batch or (4 if args.quick else 16)
    repeats = args.repeats or (2 if args.quick else 5)
    gens = args.opt_generations or (3 if args.quick else 20)
    popsize = args.popsize or (4 + int(3 * np.log(4096)))
    biggan_cfg = args.biggan_config
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}")

    if not args.skip_spaces:
        spaces = ["deepsim:pretrained=False", f"biggan:pretrained=False,config='{biggan_cfg}'",
                  "fourier:size=64,channels=1", "fourier:size=128,channels=3", "gabor"]
        bench_spaces(spaces, args.scorer, batch=batch, repeats=repeats, budget_s=2.0 if args.quick else 10.0,
                     device=device)
    if not args.skip_optimizers:
        bench_optimizers("deepsim:pretrained=False", args.scorer, generations=gens, popsize=popsize, device=device)
        print("note: pycma full CMA also runs an O(n^3) eigendecomposition of the 4096 x 4096 covariance every "
              "few hundred generations; a short run may not include one (see --opt-generations).")


if __name__ == "__main__":
    main()

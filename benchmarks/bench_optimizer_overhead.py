"""Optimizer overhead per generation at 4096-d, as a share of a generation that renders and scores 40 images.

For every gradient-free optimizer: the wall time of ``ask()`` + ``tell()`` per generation (mean over
``--generations`` generations after one warm-up generation, told a cheap linear objective so the
covariance/step-size machinery really runs), printed next to the time to render 40 codes with the
DeePSim fc6 generator (random weights: the same layers and cost as the public checkpoint) and score
them with a CNN stand-in (torchvision AlexNet with random weights up to conv5 at 227 px, the
lab's in-silico setting; ``--scorer SPEC`` uses any registered scorer instead). Ratios are to
pycma's full-covariance CMA-ES. The design bar is an optimizer share <= 5 %.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_optimizer_overhead.py            (about 2 min)
      .venv/bin/python benchmarks/bench_optimizer_overhead.py --threads 2 --generations 12
All figures come from this one process, so the ratios are comparable.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actmax.core.registry import generators, optimizers, scorers  # noqa: E402
from actmax.scorers.base import Scorer  # noqa: E402

DIM = 4096
OPTIMIZERS = ("cma", "cma:diagonal=True", "cma:sampler=vd", "cma:sampler=vkd", "cholesky_cma",
              "cholesky_cma:a_update_freq=1,max_factors=4", "sphere_cma", "hess_cma:cutoff=800", "genetic",
              "random")


class AlexNetConv5(Scorer):
    """Stand-in CNN unit: AlexNet (random weights) conv5, centre unit of channel 0, 227 px input."""

    differentiable = False
    units = 1

    def __init__(self) -> None:
        super().__init__()
        import torchvision
        self.features = torchvision.models.alexnet(weights=None).features[:12].eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(227, 227), mode="bilinear", align_corners=True)
        out = self.features((x - self.mean) / self.std)
        return out[:, 0, out.shape[2] // 2, out.shape[3] // 2][:, None]


def generation_cost(batch: int, scorer_spec: str | None, repeats: int) -> tuple[float, float, str]:
    """(render seconds, render + score seconds) for one generation of ``batch`` fc6 codes."""
    try:
        gen = generators.create("deepsim:pretrained=False").eval()
        what = "DeePSim fc6 (random weights, 256 px)"
    except Exception as exc:  # noqa: BLE001 - say what was measured instead
        print(f"deepsim generator unavailable ({exc}); measuring a pixel-space stand-in")
        gen = generators.create("pixel:size=256,channels=3").eval()
        what = "pixel 256 px stand-in"
    scorer = scorers.create(scorer_spec).eval() if scorer_spec else AlexNetConv5()
    what += " + " + (scorer_spec or "AlexNet conv5 stand-in (random weights, 227 px)")
    codes = torch.randn(batch, gen.dim)
    render, total = [], []
    with torch.no_grad():
        scorer(gen(codes))  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            images = gen(codes)
            t1 = time.perf_counter()
            scorer(images)
            t2 = time.perf_counter()
            render.append(t1 - t0)
            total.append(t2 - t0)
    return float(np.median(render)), float(np.median(total)), what


def synthetic_hessian(dim: int, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, rank)))
    return np.geomspace(10.0, 1e-3, rank), q


def optimizer_cost(spec: str, generations: int, popsize: int) -> float:
    """Mean seconds of ask() + tell() per generation at 4096-d (after one warm-up generation)."""
    extra = {}
    if spec.startswith("hess_cma"):
        vals, vecs = synthetic_hessian(DIM, 800)
        extra = {"eigvals": vals, "eigvecs": vecs}
    opt = optimizers.create(spec, dim=DIM, x0=np.zeros(DIM), sigma0=3.0, seed=0, popsize=popsize,
                            n_gen=75, **extra)
    direction = np.random.default_rng(1).standard_normal(DIM)
    times = []
    for g in range(generations + 1):
        t0 = time.perf_counter()
        codes = opt.ask()
        t1 = time.perf_counter()
        scores = codes @ direction
        t2 = time.perf_counter()
        opt.tell(codes, scores)
        t3 = time.perf_counter()
        if g > 0:
            times.append((t1 - t0) + (t3 - t2))
    return float(np.mean(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generations", type=int, default=20, help="timed generations per optimizer")
    parser.add_argument("--popsize", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5, help="timed render+score repeats")
    parser.add_argument("--scorer", default=None, help="registered scorer spec instead of the AlexNet stand-in")
    parser.add_argument("--optimizer", "-o", action="append", default=None,
                        help="optimizer spec to time; repeat (default: all of them)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = args.optimizer or list(OPTIMIZERS)

    render, total, what = generation_cost(args.popsize, args.scorer, args.repeats)
    print(f"torch threads {args.threads}; dim {DIM}; population {args.popsize}")
    print(f"one generation = render {args.popsize} images ({what}): render {render:.3f} s, "
          f"render + score {total:.3f} s")
    results = {}
    for spec in specs:
        results[spec] = optimizer_cost(spec, args.generations, args.popsize)
    ref = results.get("cma")
    print(f"\n{'optimizer':45s} {'ask+tell ms':>11s} {'share of gen':>12s} {'vs pycma full':>13s}")
    for spec, sec in results.items():
        share = sec / (sec + total)
        ratio = f"{sec / ref:13.4f}" if ref else f"{'-':>13s}"
        print(f"{spec:45s} {1e3 * sec:11.2f} {100 * share:11.2f}% {ratio}")
    print("\nshare = ask+tell / (ask+tell + render+score); the design bar is <= 5 %.")


if __name__ == "__main__":
    main()

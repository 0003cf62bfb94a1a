"""Batched synthesis vs one unit at a time (the naive way), in one process.

Prints the wall time of synthesising the MEIs of N units in one batch (one forward/backward
per step for all of them) and one unit after another, and their ratio. The quality bar is
>= 10x for 64 units on a 2-core CPU machine.

    python benchmarks/bench_synthesis.py                       # 64 model neurons, pixel space
    python benchmarks/bench_synthesis.py --scorer "twin:path=DIR" --generator fourier:size=64
    python benchmarks/bench_synthesis.py --device cuda --amp    # on a GPU
"""
from __future__ import annotations

import argparse
import time

import torch

from actmax.core.registry import scorers
from actmax.core.synthesize import synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--scorer", default=None, help="scorer spec (default: model neurons, one per unit)")
    ap.add_argument("--generator", default="pixel:size=64")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default=None)
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--naive-units", type=int, default=None,
                    help="time only this many units one by one and extrapolate (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.scorer or f"model:kind=mixed,n={args.units},size=64,seed=0"
    scorer = scorers.create(spec)
    units = list(range(min(args.units, scorer.units)))
    ascent = f"ascent:steps={args.steps},lr=0.05,jitter=1"
    kw = dict(poles=("high",), seeds=(0,), ascent=ascent, device=args.device, amp=args.amp)

    synthesize(args.generator, scorer, units=units[:2], **kw)  # warm-up (allocations, kernels)
    if args.device and args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    batched = synthesize(args.generator, scorer, units=units, **kw)
    t_batched = time.perf_counter() - t0

    naive_units = units[: args.naive_units] if args.naive_units else units
    t0 = time.perf_counter()
    singles = [synthesize(args.generator, scorer, units=[u], **kw) for u in naive_units]
    t_naive = (time.perf_counter() - t0) * len(units) / len(naive_units)

    agree = max(abs(float(s.responses[0]) - float(batched.responses[i])) / max(1e-6, abs(float(s.responses[0])))
                for i, s in enumerate(singles))
    print(f"scorer={spec} generator={args.generator} steps={args.steps} device={args.device or 'cpu'} "
          f"amp={args.amp} threads={torch.get_num_threads()}")
    print(f"batched    {len(units):4d} units: {t_batched:8.2f} s  ({t_batched / len(units) * 1000:.1f} ms/unit)")
    print(f"one by one {len(units):4d} units: {t_naive:8.2f} s  "
          f"({'extrapolated from ' + str(len(naive_units)) if len(naive_units) < len(units) else 'measured'})")
    print(f"speed-up batched vs one by one: {t_naive / t_batched:.1f}x "
          f"(max relative difference of final responses {agree:.3g}; jitter draws differ between the two ways)")


if __name__ == "__main__":
    main()

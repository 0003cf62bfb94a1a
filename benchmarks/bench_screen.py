"""Screening memory: the streamed screen's peak memory does not grow with the number of images.

Images are natural patches cut by ``actmax.core.apps.natural_images.sample_patches`` and generated chunk by
chunk on demand (one chunk of ``--chunk`` images is held at a time), so no image set is ever
held whole. Two ways to find every unit's top-k / bottom-k images are measured, each in a fresh
process so that peak RSS is its own:

* ``stream``: ``actmax.core.apps.screen.screen`` (top/bottom-k, moments and a DDSketch quantile sketch per unit);
* ``naive``:  the full-sort approach of the DualNeuron reference: keep the (N, units) response
  matrix, then sort it per unit (values + int64 indices, both directions).

For N = 2,000 / 5,000 / 20,000 it prints the tracemalloc peak (numpy and Python allocations
during the screen) and the peak RSS increase over the process after imports, and their
ratio naive / stream. It then checks, on the largest set, that the streamed top/bottom-k
(values and indices) equal the full sort's exactly.

Run:  .venv/bin/python benchmarks/bench_screen.py                 (N = 2000, 5000, 20000)
Options: --sizes 2000,5000,20000  --units 256  --k 16  --size 32  --batch-size 256  --chunk 500
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rss_now_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from actmax.core.apps.natural_images import sample_patches
    from actmax.core.registry import scorers
    from actmax.core.apps.screen import _collate, _ImageSet, _select, screen

    torch.set_num_threads(1)

    class PatchStream(_ImageSet):
        """Image i = patch i % chunk of chunk i // chunk (sample_patches with seed = chunk index)."""

        kind = "patches"

        def __init__(self, n: int, size: int, chunk: int) -> None:
            self.n, self.size, self.chunk = n, size, chunk
            self._cached: tuple[int, np.ndarray] | None = None

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> torch.Tensor:
            c = i // self.chunk
            if self._cached is None or self._cached[0] != c:
                count = min(self.chunk, self.n - c * self.chunk)
                self._cached = (c, sample_patches(count, self.size, seed=1000 + c))
            return torch.from_numpy(self._cached[1][i - c * self.chunk])

        def source(self, index: int) -> str:
            return f"patch[{index}]"

        def fingerprint(self) -> str:
            return f"patches-{self.n}-{self.size}-{self.chunk}"

        def describe(self) -> dict:
            return {"kind": self.kind, "n": self.n, "size": self.size, "chunk": self.chunk}

    spec = f"model:kind=mixed,n={args.units},size={args.size},seed=0"
    images = PatchStream(args.n, args.size, args.chunk)
    scorer = scorers.create(spec).eval()
    images[0]  # warm the photograph cache (part of the fixed cost, not of the screen)
    with torch.no_grad():
        scorer(images.batch([0]))
    images._cached = None  # every run generates all of its chunks inside the measurement
    rss_before = _rss_now_kib()
    tracemalloc.start()
    t0 = time.perf_counter()
    if args.mode == "stream":
        res = screen(scorer, images, k=args.k, batch_size=args.batch_size, bins=args.bins)
        top_v, top_i, bot_v, bot_i = res.top_values, res.top_indices, res.bottom_values, res.bottom_indices
    else:
        loader = DataLoader(images, batch_size=args.batch_size, shuffle=False, collate_fn=_collate)
        chunks = []
        with torch.no_grad():
            for batch in loader:
                chunks.append(scorer(batch).numpy())
        resp = np.concatenate(chunks)                       # (N, units): the naive screen's matrix
        del chunks
        order_desc = np.argsort(-resp, axis=0, kind="stable")  # ties: lower index first
        order_asc = np.argsort(resp, axis=0, kind="stable")
        top_i = order_desc[: args.k].T.copy()
        bot_i = order_asc[: args.k].T.copy()
        top_v = np.take_along_axis(resp, order_desc[: args.k], 0).T.copy()
        bot_v = np.take_along_axis(resp, order_asc[: args.k], 0).T.copy()
    elapsed = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if args.mode == "naive":  # outside the measurement: numpy's sort agrees with the screen's tie rule
        tv2, ti2 = _select(resp.T, np.broadcast_to(np.arange(args.n), resp.T.shape), args.k, largest=True)
        assert (ti2 == top_i).all() and (tv2 == top_v).all()
    if args.save:
        np.savez(args.save, top_v=top_v, top_i=top_i, bot_v=bot_v, bot_i=bot_i)
    print(json.dumps({"mode": args.mode, "n": args.n, "seconds": elapsed, "traced_peak_mib": traced_peak / 2 ** 20,
                      "rss_increase_mib": max(0, peak_rss - rss_before) / 1024, "peak_rss_mib": peak_rss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2000,5000,20000")
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--bins", type=int, default=2048)
    p.add_argument("--chunk", type=int, default=500)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("stream", "naive"), default="stream", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--save", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    import numpy as np

    sizes = [int(s) for s in args.sizes.split(",")]
    common = ["--units", str(args.units), "--k", str(args.k), "--size", str(args.size),
              "--batch-size", str(args.batch_size), "--bins", str(args.bins), "--chunk", str(args.chunk)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACTMAX_NO_PLUGINS": "1"}
    print(f"screening {args.units} model-neuron units, k={args.k}, {args.size}px natural patches, "
          f"batch {args.batch_size}, DDSketch {args.bins} buckets per sign; one fresh process per measurement")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for mode in ("stream", "naive"):
                save = str(Path(tmp) / f"{mode}_{n}.npz") if n == max(sizes) else ""
                cmd = [sys.executable, __file__, "--worker", "--mode", mode, "--n", str(n), *common] + (
                    ["--save", save] if save else [])
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
                if out.returncode != 0:
                    sys.exit(f"worker failed ({mode}, N={n}):\n{out.stderr}")
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"  N={n:>6}  {mode:<6}  {r['seconds']:7.1f} s  tracemalloc peak {r['traced_peak_mib']:8.2f} MiB  "
                      f"RSS increase {r['rss_increase_mib']:8.1f} MiB  (peak RSS {r['peak_rss_mib']:.0f} MiB)", flush=True)
        n = max(sizes)
        a, b = np.load(Path(tmp) / f"stream_{n}.npz"), np.load(Path(tmp) / f"naive_{n}.npz")
        same = all(np.array_equal(a[key], b[key]) for key in ("top_v", "top_i", "bot_v", "bot_i"))
    print()
    print(f"{'N':>7} {'stream MiB':>11} {'naive MiB':>10} {'naive/stream':>13} {'stream RSS+':>12} {'naive RSS+':>11}")
    by = {(r["mode"], r["n"]): r for r in rows}
    for n in sizes:
        s, v = by[("stream", n)], by[("naive", n)]
        print(f"{n:>7} {s['traced_peak_mib']:>11.2f} {v['traced_peak_mib']:>10.2f} "
              f"{v['traced_peak_mib'] / s['traced_peak_mib']:>12.1f}x {s['rss_increase_mib']:>11.1f} {v['rss_increase_mib']:>11.1f}")
    small, big = by[("stream", min(sizes))], by[("stream", max(sizes))]
    growth = big["traced_peak_mib"] / small["traced_peak_mib"]
    print(f"\nstream peak (tracemalloc) N={max(sizes)} vs N={min(sizes)}: {growth:.2f}x for {max(sizes) / min(sizes):.0f}x "
          f"the images; naive: {by[('naive', max(sizes))]['traced_peak_mib'] / by[('naive', min(sizes))]['traced_peak_mib']:.2f}x")
    print(f"top/bottom-{args.k} of all {args.units} units on N={max(sizes)} equal the full sort (values and indices): "
          f"{'yes' if same else 'NO'}")
    if not same or growth > 1.5:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Cost of resuming a finished pycma evolution vs the run's first generation (CPU seconds).

A finished record is verified (manifest, every file's sha256, the checkpoint's identity) and its
stored result returned: no part is built and the optimizer is not replayed. The bar: resuming a
finished run costs less than the run's first generation.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_finished_resume.py [--generations 40]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actmax.core.evolve import evolve, resume_evolution  # noqa: E402


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=40)
    ap.add_argument("--generator", default="fourier:size=32")
    ap.add_argument("--scorer", default="model:kind=mixed,n=4,size=32")
    ap.add_argument("--optimizer", default="cma")
    args = ap.parse_args()
    kw = dict(unit=1, seed=0, image_every=0, plots=False, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        evolve(args.generator, args.scorer, args.optimizer, generations=1, out_dir=Path(tmp) / "warm", **kw)
        first, _ = cpu(lambda: evolve(args.generator, args.scorer, args.optimizer, generations=1,
                                      out_dir=Path(tmp) / "one", **kw))
        full, _ = cpu(lambda: evolve(args.generator, args.scorer, args.optimizer, generations=args.generations,
                                     out_dir=Path(tmp) / "full", **kw))
        resume, res = cpu(lambda: resume_evolution(Path(tmp) / "full"))
    print(f"pycma run of {args.generations} generations ({args.generator}, {args.scorer}, {args.optimizer}): "
          f"{full:.3f} CPU-s")
    print(f"first generation (a 1-generation run, setup included): {first:.3f} CPU-s; "
          f"mean later generation ((full - first) / {args.generations - 1}): "
          f"{(full - first) / max(1, args.generations - 1):.3f} CPU-s")
    print(f"resume of the finished run: {resume:.3f} CPU-s ({res.evaluations} evaluations returned)")
    print(f"resume < first generation: {resume < first}")


if __name__ == "__main__":
    main()

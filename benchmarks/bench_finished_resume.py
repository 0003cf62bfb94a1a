"""Cost of resuming a pycma evolution, finished or killed mid-way, vs the run's first generation (CPU seconds).

A finished record is verified (manifest, every file's sha256, the checkpoint's identity) and its
stored result returned: no part is built and the optimizer is not restored. A run killed
mid-way is rebuilt from its spec and its checkpoint restored: pycma's strategy is written back
from its saved numeric state, never replayed. The bar: resuming a finished run costs less than
the run's first generation. The default is a 40-generation pycma (full covariance) run in a
4096-d space (``pixel:size=64``, 64 x 64 grey pixels).

Printed, in CPU seconds (``time.process_time``, this process):

* the first generation: a 1-generation run, setup and first checkpoint included;
* the whole run, and the mean later generation;
* resuming the finished run;
* resuming a run killed after ``--killed-at`` generations, restore only (record opened and
  checked, parts built from the spec, checkpoint and optimizer state restored; no generation run).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_finished_resume.py [--generations 40]
      [--generator pixel:size=64] [--optimizer cma] [--killed-at 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actmax.core.evolve import evolve, resume_evolution  # noqa: E402
from actmax.core.records import RunRecord  # noqa: E402


class _Killed(Exception):
    """Stands in for a kill: the run stops between generations, its record left ``running``."""


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def killed_run(args, out: Path, kw: dict) -> None:
    """A record left ``running`` after ``args.killed_at`` committed generations (as a SIGKILL leaves it)."""
    from actmax.core.runs.evolve import EvolveRun

    step = EvolveRun.step

    def stop_at(self):
        if self.generation >= args.killed_at:
            raise _Killed
        return step(self)

    EvolveRun.step = stop_at
    try:
        evolve(args.generator, args.scorer, args.optimizer, generations=args.generations, out_dir=out, **kw)
    except _Killed:
        pass
    finally:
        EvolveRun.step = step
    assert RunRecord(out).manifest()["status"] == "running"


def restore_only(path: Path) -> int:
    """Resume ``path`` up to the first generation it would run (the driver's loop replaced by a no-op)."""
    from actmax.core.runs import driver

    seen = {}

    def no_steps(run, rec, progress):
        seen["generation"] = run.generation
        return None

    drive = driver.drive
    driver.drive = no_steps
    try:
        resume_evolution(path)
    finally:
        driver.drive = drive
    return seen["generation"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=40)
    ap.add_argument("--generator", default="pixel:size=64")
    ap.add_argument("--scorer", default="model:kind=mixed,n=4,size=64")
    ap.add_argument("--optimizer", default="cma")
    ap.add_argument("--killed-at", type=int, default=None, help="generations done by the killed run (default half)")
    args = ap.parse_args()
    args.killed_at = args.generations // 2 if args.killed_at is None else args.killed_at
    kw = dict(unit=1, seed=0, image_every=0, plots=False, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        evolve("pixel:size=8", args.scorer.replace("size=64", "size=8"), "cma", generations=1,
               out_dir=tmp / "warm", **kw)                                     # imports, first-call costs
        first, _ = cpu(lambda: evolve(args.generator, args.scorer, args.optimizer, generations=1,
                                      out_dir=tmp / "one", **kw))
        full, _ = cpu(lambda: evolve(args.generator, args.scorer, args.optimizer, generations=args.generations,
                                     out_dir=tmp / "full", **kw))
        resume, res = cpu(lambda: resume_evolution(tmp / "full"))
        killed_run(args, tmp / "killed", kw)
        checkpoint_mb = (tmp / "killed" / "checkpoint.pt").stat().st_size / 1e6
        restore, at = cpu(lambda: restore_only(tmp / "killed"))
    what = f"{args.generator} ({res.scores.shape[0] // args.generations} codes/generation), {args.scorer}, {args.optimizer}"
    print(f"run of {args.generations} generations, {what}: {full:.3f} CPU-s")
    print(f"first generation (a 1-generation run, setup and first checkpoint included): {first:.3f} CPU-s; "
          f"mean later generation ((full - first) / {args.generations - 1}): "
          f"{(full - first) / max(1, args.generations - 1):.3f} CPU-s")
    print(f"resume of the finished run: {resume:.3f} CPU-s ({res.evaluations} evaluations returned)")
    print(f"resume of a run killed after {args.killed_at} generations, restore only (parts built, "
          f"checkpoint of {checkpoint_mb:.1f} MB and optimizer state restored, resumes at generation {at}): "
          f"{restore:.3f} CPU-s")
    print(f"resume of the finished run < first generation: {resume < first}")


if __name__ == "__main__":
    main()

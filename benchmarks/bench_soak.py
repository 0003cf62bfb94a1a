"""Soak: a long evolution with a fast scorer; RSS, open files and bytes written per generation at the start and the end.

Each generation's commit (:meth:`RunRecord.checkpoint`) is sampled from /proc: resident memory
(VmRSS), open file descriptors and bytes written (``wchar`` of /proc/self/io) since the previous
commit, split into the part file and index line, montages, and the checkpoint. Flat numbers mean
a generation's cost does not grow with the run (the per-step data is appended as small parts,
:mod:`actmax.core.records.parts`, compacted into ``scores.parquet`` at the end). The finishing
(compaction, final checkpoint, manifest) is reported separately, as are CPU seconds.

Run:  OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_soak.py --generations 10000
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actmax.core import records  # noqa: E402
from actmax.core.evolve import evolve  # noqa: E402


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def _written() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("wchar:"))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=10000)
    ap.add_argument("--window", type=int, default=100, help="generations averaged at the start and at the end")
    ap.add_argument("--optimizer", default="genetic:popsize=4",
                    help="a fast optimizer with a bounded state (pycma's state is the optimizer's business)")
    ap.add_argument("--image-every", type=int, default=0, help="montage every N generations (0: none)")
    args = ap.parse_args()
    samples: list[tuple[int, int, int, float]] = []   # RSS KiB, open fds, bytes written, CPU s
    original = records.RunRecord.checkpoint
    last = [_written(), _cpu()]

    def checkpoint(self, state, *, step, claims=()):
        original(self, state, step=step, claims=claims)
        now, cpu = _written(), _cpu()
        samples.append((_rss_kb(), len(os.listdir("/proc/self/fd")), now - last[0], cpu - last[1]))
        last[0], last[1] = now, cpu

    records.RunRecord.checkpoint = checkpoint
    cpu0, t0 = _cpu(), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak"
        evolve("gabor:size=8", "model:kind=simple,n=1,size=8", args.optimizer, generations=args.generations,
               out_dir=out, image_every=args.image_every, plots=False, progress=False)
        finish_written, finish_cpu = _written() - last[0], _cpu() - last[1]
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        table = records.load_run(out).scores
    cpu = _cpu() - cpu0
    per_gen = samples[:-1]          # the last sample is the final (inline) checkpoint written by finish
    w = min(args.window, len(per_gen) // 2)
    print(f"soak: {args.generations} generations of {args.optimizer}, gabor:size=8 on a model neuron, "
          f"image_every={args.image_every}")
    for label, lo in (("start", 1), ("end", len(per_gen) - w)):
        part = per_gen[lo:lo + w]
        rss = sum(s[0] for s in part) / len(part) / 1024
        fds = sum(s[1] for s in part) / len(part)
        wrote = sum(s[2] for s in part) / len(part) / 1024
        ms = sum(s[3] for s in part) / len(part) * 1e3
        print(f"{label:5s} (generations {lo + 1}-{lo + len(part)}): RSS {rss:.1f} MiB, open files {fds:.1f}, "
              f"written {wrote:.2f} KiB per generation, CPU {ms:.2f} ms per generation")
    print(f"finish (compaction + final checkpoint + manifest): written {(finish_written + samples[-1][2]) / 1024:.0f} KiB, "
          f"CPU {finish_cpu + samples[-1][3]:.2f} s")
    print(f"record: {size / 1024:.0f} KiB, scores.parquet rows {len(table)}; total CPU {cpu:.1f} s "
          f"(wall {time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()

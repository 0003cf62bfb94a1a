"""Soak: a long evolution with a fast scorer; RSS, open files and bytes written per generation at the start and the end.

Each generation's commit (:meth:`RunRecord.checkpoint`) is timed from /proc: resident memory
(VmRSS), open file descriptors and bytes written (``wchar`` of /proc/self/io) since the previous
commit. Flat numbers mean a generation's cost does not grow with the run.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_soak.py --generations 10000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=10000)
    ap.add_argument("--window", type=int, default=20, help="generations averaged at the start and at the end")
    ap.add_argument("--optimizer", default="cma:popsize=4")
    args = ap.parse_args()
    samples: list[tuple[int, int, int]] = []
    original = records.RunRecord.checkpoint
    last = [_written()]

    def checkpoint(self, state, *, step, claims=()):
        original(self, state, step=step, claims=claims)
        now = _written()
        samples.append((_rss_kb(), len(os.listdir("/proc/self/fd")), now - last[0]))
        last[0] = now

    records.RunRecord.checkpoint = checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        evolve("gabor:size=8", "model:kind=simple,n=1,size=8", args.optimizer, generations=args.generations,
               out_dir=Path(tmp) / "soak", image_every=0, plots=False, progress=False)
    w = min(args.window, len(samples) // 2)
    for label, part in (("start", samples[1:w + 1]), ("end", samples[-w:])):
        rss = sum(s[0] for s in part) / len(part) / 1024
        fds = sum(s[1] for s in part) / len(part)
        wrote = sum(s[2] for s in part) / len(part) / 1024
        print(f"{label:5s} (commits {samples.index(part[0]) + 1}-{samples.index(part[0]) + len(part)} of {len(samples)}): "
              f"RSS {rss:.1f} MiB, open files {fds:.1f}, written {wrote:.1f} KiB per generation")


if __name__ == "__main__":
    main()

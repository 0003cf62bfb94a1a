"""Reference acquisition side for the ``rig`` scorer: answers blocks with a model's responses.

    python -m scorers.rig_responder --exchange DIR --model "model:n=1"

It watches ``DIR`` for new ``block_NNNN/manifest.json`` folders, reads the PNGs, scores
them with any registered scorer (a model neuron by default) and writes ``responses.json``
(or ``.csv``) atomically. For testing the rig policy it can misbehave on chosen blocks,
counted in the order it sees them (1 = first block): ``--late 2`` answers block 2 only
after ``--late-delay`` seconds (in the background, so later blocks are not held up);
``--malformed 4:channels`` answers block 4 badly. Kinds: ``nan`` (NaN for the first image),
``missing`` (the first image left out), ``channels`` (one extra channel for every image),
``unknown`` (an id that is not in the manifest), ``garbage`` (not parseable).

Once it watches the folder it writes ``DIR/RESPONDER_READY``. It stops when ``DIR/STOP`` appears, after ``--max-blocks`` blocks, or after ``--idle-exit``
seconds without a new block.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from actmax.scorers.rig import (ABANDONED, ACCEPTED, MANIFEST, REJECTED, RESPONSE_FILES, _BLOCK_RE, RigExchangeError,
                                _Malformed, atomic_write, read_exchange_file, read_png)
from actmax.core.errors import InputError

READY = "RESPONDER_READY"   #: written once the responder watches the folder
MALFORMED_KINDS = ("nan", "missing", "channels", "unknown", "garbage")


def format_responses(ids: Sequence[str], values: np.ndarray, *, block: int, fmt: str) -> str:
    """The text of a responses file for ``ids`` x channels ``values``."""
    if fmt == "json":
        return json.dumps({"block": block, "responses": {
            i: [None if not np.isfinite(v) else float(v) for v in row] for i, row in zip(ids, values)}})
    lines = ["image_id," + ",".join(f"ch{c}" for c in range(values.shape[1]))]
    lines += [i + "," + ",".join("nan" if not np.isfinite(v) else repr(float(v)) for v in row)
              for i, row in zip(ids, values)]
    return "\n".join(lines) + "\n"


def misbehave(kind: str, ids: list[str], values: np.ndarray) -> tuple[list[str], np.ndarray, bool]:
    """Apply one kind of malformation; returns (ids, values, garbage?)."""
    ids, values = list(ids), values.copy()
    if kind == "nan":
        values[0, :] = np.nan
    elif kind == "missing":
        ids, values = ids[1:], values[1:]
    elif kind == "channels":
        values = np.concatenate([values, values[:, :1]], axis=1)
    elif kind == "unknown":
        ids, values = ids + ["not_an_image"], np.concatenate([values, values[:1]])
    elif kind == "garbage":
        return ids, values, True
    else:
        raise InputError(f"unknown malformation {kind!r}; use one of {MALFORMED_KINDS}")
    return ids, values, False


class Responder:
    """Watches an exchange folder and answers each new block once."""

    def __init__(self, exchange: Path, scorer: torch.nn.Module, *, fmt: str = "json",
                 late: dict[int, float] | None = None, malformed: dict[int, str] | None = None,
                 noise: str = "none", seed: int = 0, log: bool = True) -> None:
        self.exchange, self.scorer, self.fmt = exchange, scorer, fmt
        self.late, self.malformed = dict(late or {}), dict(malformed or {})
        self.noise, self.rng, self.log = noise, np.random.default_rng(seed), log
        self.seen: set[int] = set()
        self.count = 0
        self.timers: list[threading.Timer] = []

    def new_blocks(self) -> list[tuple[int, Path]]:
        out = []
        for p in sorted(self.exchange.iterdir()):
            m = _BLOCK_RE.match(p.name)
            if not m or int(m.group(1)) in self.seen or p.is_symlink() or not p.is_dir():
                continue   # a symlinked block folder is never entered
            if not os.path.lexists(p / MANIFEST):
                continue
            if any(os.path.lexists(p / n) for n in RESPONSE_FILES + (ABANDONED, REJECTED, ACCEPTED)):
                self.seen.add(int(m.group(1)))
                continue
            out.append((int(m.group(1)), p))
        return out

    def answer(self, block: int, folder: Path) -> None:
        self.seen.add(block)
        self.count += 1
        try:
            manifest = json.loads(read_exchange_file(folder / MANIFEST, max_bytes=16 * 1024 * 1024))
            entries = manifest["images"]
            ids = [str(e["id"]) for e in entries]
            files = [str(e["file"]) for e in entries]
        except (_Malformed, ValueError, KeyError, TypeError) as exc:
            self._say(f"block {block}: unreadable manifest ({exc}); skipped")
            return
        unsafe = [f for f in files if Path(f).name != f or f in ("", ".", "..")]
        if unsafe:   # image files must be plain names inside the block folder
            self._say(f"block {block}: refusing image file names outside the block folder: {unsafe[:3]}")
            return
        try:
            images = torch.from_numpy(np.stack([read_png(folder / f) for f in files]))
        except RigExchangeError as exc:
            self._say(f"block {block}: {exc}; skipped")
            return
        with torch.no_grad():
            values = self.scorer(images).double().numpy()
        if self.noise == "poisson":
            values = self.rng.poisson(np.clip(values, 0, None)).astype(np.float64)
        kind = self.malformed.get(self.count)
        garbage = False
        if kind:
            ids, values, garbage = misbehave(kind, ids, values)
        fmt = self.fmt
        text = "{ this is not a responses file" if garbage else format_responses(ids, values, block=block, fmt=fmt)
        target = folder / f"responses.{fmt}"
        delay = self.late.get(self.count)
        what = f"block {block} (#{self.count}): {len(ids)} images" + (f", malformed={kind}" if kind else "")
        if delay:
            timer = threading.Timer(delay, atomic_write, args=(target, text))
            timer.daemon = True
            timer.start()
            self.timers.append(timer)
            self._say(what + f", answering late after {delay:g} s")
        else:
            atomic_write(target, text)
            self._say(what)

    def _say(self, text: str) -> None:
        if self.log:
            print(f"[rig_responder] {text}", file=sys.stderr, flush=True)

    def run(self, *, poll: float = 0.05, max_blocks: int | None = None, idle_exit: float | None = None) -> int:
        last = time.monotonic()
        while True:
            if (self.exchange / "STOP").exists():
                break
            blocks = self.new_blocks()
            for block, folder in blocks:
                self.answer(block, folder)
                last = time.monotonic()
                if max_blocks is not None and self.count >= max_blocks:
                    break
            if max_blocks is not None and self.count >= max_blocks:
                break
            if idle_exit is not None and time.monotonic() - last > idle_exit:
                break
            time.sleep(poll)
        for timer in self.timers:
            timer.join()
        return self.count


def _parse_late(items: Sequence[str], default_delay: float) -> dict[int, float]:
    out = {}
    for item in items:
        n, _, d = item.partition(":")
        out[int(n)] = float(d) if d else default_delay
    return out


def _parse_malformed(items: Sequence[str]) -> dict[int, str]:
    out = {}
    for item in items:
        n, _, kind = item.partition(":")
        kind = kind or "nan"
        if kind not in MALFORMED_KINDS:
            raise SystemExit(f"--malformed {item}: kind must be one of {MALFORMED_KINDS}")
        out[int(n)] = kind
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorers.rig_responder", description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", required=True, help="the exchange folder the rig scorer writes into")
    parser.add_argument("--model", default="model:n=1", help="scorer spec that plays the neuron(s)")
    parser.add_argument("--format", choices=("json", "csv"), default="json")
    parser.add_argument("--late", action="append", default=[], metavar="N[:SECONDS]",
                        help="answer the N-th block late (repeatable)")
    parser.add_argument("--late-delay", type=float, default=5.0, help="default delay of a late answer (s)")
    parser.add_argument("--malformed", action="append", default=[], metavar="N[:KIND]",
                        help=f"answer the N-th block malformed; KIND in {MALFORMED_KINDS} (repeatable)")
    parser.add_argument("--noise", choices=("none", "poisson"), default="none", help="trial noise on the responses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--max-blocks", type=int, default=None)
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    from actmax.core.registry import scorers

    torch.set_num_threads(max(1, args.threads))
    exchange = Path(args.exchange)
    exchange.mkdir(parents=True, exist_ok=True)
    scorer = scorers.create(args.model).eval()
    responder = Responder(exchange, scorer, fmt=args.format, late=_parse_late(args.late, args.late_delay),
                          malformed=_parse_malformed(args.malformed), noise=args.noise, seed=args.seed)
    print(f"[rig_responder] watching {exchange} with {args.model} ({scorer.units} channel(s))",
          file=sys.stderr, flush=True)
    atomic_write(exchange / READY, f"{os.getpid()}\n")
    n = responder.run(poll=args.poll, max_blocks=args.max_blocks, idle_exit=args.idle_exit)
    print(f"[rig_responder] answered {n} block(s); exiting", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

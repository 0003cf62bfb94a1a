"""Append-only per-step records: a run's growing data (score rows, best codes) as one small part file per commit.

Why: rewriting a whole table and a checkpoint holding every row each generation makes a generation's
I/O grow with the run (15 KiB -> 530 KiB per generation over 1,000 generations). Here a commit writes
one part (``parts/<end>.safetensors``: the tensors of the steps since the previous commit, about
0.5 KiB for a popsize-4 evolution) and appends one line to ``parts/index.jsonl``; the checkpoint
holds only the index's length and the sha256 of that prefix, a fixed-size claim.

Measured before choosing (4 rows + one best code): a parquet part is 3.9 KiB, a safetensors part
0.5 KiB, at the same CPU cost; appending parquet row groups to one file is not crash-safe (the
footer is written at close, so a killed run loses the whole file). At the end the parts are
compacted into the record's ``scores.parquet`` and ``codes.safetensors`` and removed.

Integrity: every index line carries the sha256 of its part (and of any file the commit wrote, e.g.
a montage), so reading a part checks it exactly; the index prefix is checked against the
checkpoint's claim. A flipped byte, a truncated, deleted or swapped part, or an index edit is one
:class:`RecordError` (the rows of a part exist nowhere else, so no repair can rebuild them; a
claimed montage can be dropped by ``--repair``, as before). Index lines and parts written after the
last checkpoint (a kill between the two) are removed on resume.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch

from actmax.core import files as fileio
from actmax.core.errors import RecordError

PARTS = "parts"
INDEX = "index.jsonl"

__all__ = ["PARTS", "INDEX", "PartLog", "steps_done"]


def _hint(root: Path) -> str:
    return (f"the rows it holds exist nowhere else, so the run cannot continue; start it again with "
            f"`--overwrite` (or restore {root} from a backup)")


class PartLog:
    """The ``parts/`` folder of one record: append a part per commit, verify and read them back.

    ``active`` while the run's growing data lives in parts (the checkpoint then holds :meth:`claim`);
    :meth:`retire` before a final checkpoint that holds everything inline, :meth:`remove` after it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.dir = self.root / PARTS
        self.active = False
        self._reset()

    def _reset(self) -> None:
        self._hash = hashlib.sha256()
        self._bytes = 0
        self._entries = 0
        self.end = 0

    # -- writing --------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin an empty log (a new run, or a resume from a checkpoint that holds its data inline)."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self._reset()
        self.active = True

    def append(self, start: int, end: int, tensors: Mapping[str, torch.Tensor], files: Iterable[str] = ()) -> None:
        """Write the part for steps ``start..end-1`` and its index line (digests of the part and ``files``)."""
        from safetensors.torch import save

        if not self.active:
            raise RecordError("internal: appending to a retired part log")
        if start != self.end or end <= start:
            raise RecordError(f"internal: part {start}..{end} does not follow the log's end {self.end}")
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{end:07d}.safetensors"
        data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        fileio.atomic_write_bytes(self.dir / name, data)
        entry = {"start": int(start), "end": int(end), "part": name, "sha256": fileio.sha256_bytes(data),
                 "files": {rel: fileio.sha256_file(self.root / rel) for rel in sorted(set(files))}}
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        index = self.dir / INDEX
        with open(index, "r+b" if index.exists() else "wb") as fh:
            fh.seek(self._bytes)
            fh.truncate()          # whatever a killed commit left after the last claimed line
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._hash.update(line)
        self._bytes += len(line)
        self._entries += 1
        self.end = int(end)

    def claim(self) -> dict[str, Any] | None:
        """What a checkpoint stores about the log: a fixed-size claim on the index prefix (None when retired)."""
        if not self.active:
            return None
        return {"entries": self._entries, "bytes": self._bytes, "sha256": self._hash.hexdigest(), "end": self.end}

    def retire(self) -> None:
        """The data now lives elsewhere (a final checkpoint holding it inline): stop claiming the parts."""
        self.active = False

    def remove(self) -> None:
        """Delete the folder (after compaction and a checkpoint that no longer claims it)."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.active = False
        self._reset()

    # -- reading back ---------------------------------------------------------------------------
    def _read_index(self, claim: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The index lines the claim covers, after checking the prefix's length, sha256 and contiguity."""
        index = self.dir / INDEX
        try:
            n, digest = int(claim["bytes"]), str(claim["sha256"])
            entries, end = int(claim["entries"]), int(claim["end"])
        except (KeyError, TypeError, ValueError):
            raise RecordError(f"{self.root}: the checkpoint's claim on {PARTS}/{INDEX} is malformed") from None
        try:
            with open(index, "rb") as fh:
                data = fh.read(n)
        except OSError:
            raise RecordError(f"{index} is missing; {_hint(self.root)}") from None
        if len(data) != n or fileio.sha256_bytes(data) != digest:
            raise RecordError(f"{index} is corrupt, truncated or from another run (sha256 differs from the "
                              f"checkpoint's); {_hint(self.root)}")
        try:
            lines = [json.loads(line) for line in data.decode().splitlines()]
        except (ValueError, UnicodeDecodeError):
            raise RecordError(f"{index} is corrupt; {_hint(self.root)}") from None
        at = 0
        for e in lines:
            ok = (isinstance(e, dict) and e.get("start") == at and isinstance(e.get("end"), int) and e["end"] > at
                  and e.get("part") == f"{e['end']:07d}.safetensors" and isinstance(e.get("sha256"), str)
                  and isinstance(e.get("files"), dict))
            if not ok:
                raise RecordError(f"{index} is inconsistent (parts not contiguous from step 0); {_hint(self.root)}")
            at = e["end"]
        if len(lines) != entries or at != end:
            raise RecordError(f"{index} does not match the checkpoint ({len(lines)} parts ending at step {at}, "
                              f"claimed {entries} ending at {end}); {_hint(self.root)}")
        return lines

    def restore(self, claim: Mapping[str, Any] | None, *, repair: bool = False) -> list[str]:
        """Verify the log a checkpoint claims and continue it; returns the claimed files a ``repair`` dropped.

        Index lines and parts after the claim (a kill between a part and its checkpoint) are removed;
        without a claim (an inline checkpoint, or a kind without parts) any leftover folder is removed.
        """
        if claim is None:   # nothing claimed: whatever is there is left over from a kill; the kind may start()
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self._reset()
            self.active = False
            return []
        lines = self._read_index(claim)
        dropped = []
        for e in lines:
            path = self.dir / e["part"]
            if not path.is_file() or fileio.sha256_file(path) != e["sha256"]:
                raise RecordError(f"{path} is missing or corrupt (sha256 differs from {PARTS}/{INDEX}); "
                                  f"{_hint(self.root)}")
            for rel, digest in e["files"].items():
                p = self.root / rel
                if not p.is_file() or fileio.sha256_file(p) != digest:
                    if not repair:
                        raise RecordError(f"{self.root}: {rel} is missing or corrupt (sha256 differs from "
                                          f"{PARTS}/{INDEX}); `actmax resume --repair` rebuilds what it can")
                    p.unlink(missing_ok=True)
                    dropped.append(rel)
        keep = {INDEX} | {e["part"] for e in lines}
        for p in self.dir.iterdir():
            if p.name not in keep:
                p.unlink() if p.is_file() or p.is_symlink() else shutil.rmtree(p)
        with open(self.dir / INDEX, "r+b") as fh:
            fh.truncate(int(claim["bytes"]))
            self._reset()
            self._hash.update(fh.read())          # the verified prefix: the running digest goes on from here
        self._bytes, self._entries, self.end = int(claim["bytes"]), len(lines), int(claim["end"])
        self.active = True
        return dropped

    def view(self, claim: Mapping[str, Any]) -> "PartLog":
        """Read-only: take a checkpoint's claim as the log's extent (nothing is truncated or removed).

        For readers of a running record (``load_run``, a campaign gather); :meth:`read` then checks
        the index prefix against the claim and every part against its digest.
        """
        self._read_index(claim)
        self._reset()
        self._bytes, self._entries, self.end = int(claim["bytes"]), int(claim["entries"]), int(claim["end"])
        self._hash = _Fixed(str(claim["sha256"]))
        self.active = False
        return self

    def read(self) -> Iterator[dict[str, torch.Tensor]]:
        """Every part in order, each checked against its digest (the index against the running claim)."""
        from safetensors.torch import load

        claim = {"entries": self._entries, "bytes": self._bytes, "sha256": self._hash.hexdigest(), "end": self.end}
        if not self._entries:
            return
        for e in self._read_index(claim):
            path = self.dir / e["part"]
            try:
                data = path.read_bytes()
            except OSError:
                raise RecordError(f"{path} is missing; {_hint(self.root)}") from None
            if fileio.sha256_bytes(data) != e["sha256"]:
                raise RecordError(f"{path} is corrupt (sha256 differs from {PARTS}/{INDEX}); {_hint(self.root)}")
            yield load(data)

    def claimed_files(self) -> list[str]:
        """The files (montages) the log's index vouches for."""
        claim = self.claim() or {"entries": self._entries, "bytes": self._bytes, "sha256": self._hash.hexdigest(),
                                 "end": self.end}
        if not self._entries:
            return []
        return [rel for e in self._read_index(claim) for rel in e["files"]]


class _Fixed:
    """A digest taken from a claim (a read-only view never appends)."""

    def __init__(self, hexdigest: str) -> None:
        self._hex = hexdigest

    def hexdigest(self) -> str:
        return self._hex


def steps_done(path: str | Path) -> int:
    """Steps a running record has committed to its parts (a cheap progress probe; 0 if none)."""
    index = Path(path) / PARTS / INDEX
    try:
        lines = index.read_bytes().splitlines()
        return int(json.loads(lines[-1])["end"]) if lines else 0
    except (OSError, ValueError, KeyError, IndexError):
        return 0

"""Reading a record back for analysis (:func:`load_run`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from actmax.core.errors import RecordError
from actmax.core.records.layout import CODES, SCORES, STIMULI
from actmax.core.records.record import RunRecord


@dataclass
class LoadedRun:
    """A run record read back: its manifest, score table, codes and native stimuli.

    ``stimuli`` holds float32 images at the generator's own resolution (evolve: ``best`` and per
    space ``<space>/best`` and ``<space>/best_per_generation`` with ``<space>/generations``;
    synthesize: ``images``, one per row of ``targets.csv``). The PNGs in a record are previews.
    """

    path: Path
    manifest: dict[str, Any]
    scores: pd.DataFrame
    codes: dict[str, torch.Tensor]
    stimuli: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind"))

    def __repr__(self) -> str:
        m = self.manifest
        return (f"LoadedRun({self.kind}, status={m.get('status')!r}, rows={len(self.scores)}, "
                f"codes={sorted(self.codes)}, stimuli={sorted(self.stimuli)}, path={str(self.path)!r})")


def load_run(path: str | Path, *, verify: bool = True) -> LoadedRun:
    """Read a run record folder (evolve, synthesize or screen) for analysis.

    ``verify`` (default): the manifest's own checksum is checked and, for a finished run, every
    file returned against the manifest's sha256 (a file the manifest lists but that is missing is
    an error too); any mismatch is one RecordError naming the file, with ``actmax resume --repair``
    as the fix. ``verify=False`` reads whatever is there (e.g. to inspect a damaged record).
    """
    rec = RunRecord(path)
    manifest = rec.manifest(verify=verify)
    if verify:
        from actmax.core.integrity import expected_files
        wanted = expected_files(manifest, (SCORES, CODES, STIMULI))
    else:
        wanted = set()
    if (rec.path / SCORES).exists() or SCORES in wanted:
        scores = rec.scores(verify=verify)
    else:   # a running record: its rows so far live in per-step parts (compacted at the end)
        try:
            scores = running_scores(rec, manifest)
        except RecordError:
            if verify:
                raise
            scores = pd.DataFrame()
    codes = rec.codes(verify=verify) if (rec.path / CODES).exists() or CODES in wanted else {}
    stimuli = rec.stimuli(verify=verify) if (rec.path / STIMULI).exists() or STIMULI in wanted else {}
    return LoadedRun(rec.path, manifest, scores, codes, stimuli)


def running_scores(rec: RunRecord, manifest: dict[str, Any]) -> pd.DataFrame:
    """The scores so far of an unfinished record whose kind can read them (evolve), else an empty table.

    Read-only: the checkpoint's claim on ``parts/`` is checked (index prefix and every part's sha256).
    """
    if manifest.get("status") == "finished":
        return pd.DataFrame()
    from actmax.core.runs.kind import run_kind

    try:
        cls = run_kind(manifest.get("kind"), rec.path, "read")
    except RecordError:   # an unknown kind has nothing to offer here
        return pd.DataFrame()
    reader = getattr(cls, "partial_scores", None)
    return reader(rec) if reader is not None else pd.DataFrame()

"""Reading a record back for analysis (:func:`load_run`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

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


def load_run(path: str | Path) -> LoadedRun:
    """Read a run record folder (evolve, synthesize or screen) for analysis."""
    rec = RunRecord(path)
    manifest = rec.manifest()
    scores = rec.scores() if (rec.path / SCORES).exists() else pd.DataFrame()
    codes = rec.codes() if (rec.path / CODES).exists() else {}
    stimuli = rec.stimuli() if (rec.path / STIMULI).exists() else {}
    return LoadedRun(rec.path, manifest, scores, codes, stimuli)

"""Run records: one folder per run, written atomically so a killed run loses at most one step.

Layout (DESIGN.md): ``manifest.json`` (spec, seeds, versions, status, times),
``scores.parquet`` (one row per evaluated image), ``codes.safetensors`` (best code per
generation, or final codes of a synthesis), ``images/`` (montages) and ``best.png``, and
``checkpoint.pt`` (loaded with ``weights_only=True``: no pickle is ever executed).
"""
from __future__ import annotations

import io
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from actmax.core.errors import RecordError
from actmax.core.provenance import collect as collect_provenance

MANIFEST, SCORES, CODES, CHECKPOINT, BEST = "manifest.json", "scores.parquet", "codes.safetensors", "checkpoint.pt", "best.png"
CHECKPOINT_VERSION = 1
#: spec entries that name parts (None there means the run was built from a live object)
PART_KEYS = ("generator", "generators", "scorer", "optimizers", "ascent")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def versions() -> dict[str, str]:
    """Versions of the software that shapes a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from actmax.core import __version__
    try:
        pycma = version("cma")
    except PackageNotFoundError:
        pycma = "not installed"
    return {"actmax": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "pycma": pycma, "platform": platform.platform()}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunRecord:
    """The folder of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- manifest -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, kind: str, spec: Mapping[str, Any], overwrite: bool = False) -> "RunRecord":
        rec = cls(path)
        if (rec.path / MANIFEST).exists() and not overwrite:
            raise RecordError(f"{rec.path} already holds a run record; use `actmax resume {rec.path}` "
                              "to continue it, or choose another --out folder")
        rec.path.mkdir(parents=True, exist_ok=True)
        (rec.path / CHECKPOINT).unlink(missing_ok=True)
        rec.write_manifest({"kind": kind, "spec": dict(spec), "status": "running", "created": now(),
                            "updated": now(), "versions": versions(), "provenance": collect_provenance(spec)})
        return rec

    @classmethod
    def for_resume(cls, path: str | Path, kind: str) -> tuple["RunRecord", dict[str, Any]]:
        """Open a record of ``kind`` to resume; refuse runs that were started from live objects."""
        rec = cls(path)
        manifest = rec.manifest()
        if manifest.get("kind") != kind:
            raise RecordError(f"{path} holds a {manifest.get('kind')!r} run, not a {kind!r} run")
        live = sorted(k for k, v in manifest["spec"].items()
                      if k in PART_KEYS and (v is None or (isinstance(v, list) and None in v)))
        if live:
            raise RecordError(f"{path} was started from live Python objects ({', '.join(live)}); "
                              "only runs built from specs can be resumed")
        return rec, manifest

    def mark_resumed(self, manifest: Mapping[str, Any]) -> None:
        self.update_manifest(status="running", resumed=manifest.get("resumed", 0) + 1)

    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            raise RecordError(f"{self.path} is not a run record: {MANIFEST} is missing")
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordError(f"{path} is corrupt: {exc}") from exc

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        atomic_write_json(self.path / MANIFEST, dict(manifest))

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        m = self.manifest()
        m.update(fields)
        m["updated"] = now()
        self.write_manifest(m)
        return m

    # -- tables and arrays ----------------------------------------------------------------
    def write_scores(self, table: pd.DataFrame) -> None:
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(self.path / SCORES, buf.getvalue())

    def scores(self) -> pd.DataFrame:
        path = self.path / SCORES
        if not path.exists():
            raise RecordError(f"{self.path}: {SCORES} is missing")
        return pd.read_parquet(path)

    def write_codes(self, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
        from safetensors.torch import save
        data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=dict(metadata or {}))
        atomic_write_bytes(self.path / CODES, data)

    def codes(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file
        path = self.path / CODES
        if not path.exists():
            raise RecordError(f"{self.path}: {CODES} is missing")
        try:
            return load_file(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
            raise RecordError(f"{path} is corrupt or truncated: {exc}") from exc

    # -- checkpoint -----------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save({"version": CHECKPOINT_VERSION, **state}, buf)
        atomic_write_bytes(self.path / CHECKPOINT, buf.getvalue())

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint_file(self.path / CHECKPOINT)


@dataclass
class LoadedRun:
    """A run record read back: its manifest, score table, best codes and stimuli (PNG previews)."""

    path: Path
    manifest: dict[str, Any]
    scores: pd.DataFrame
    codes: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind"))

    def __repr__(self) -> str:
        m = self.manifest
        return (f"LoadedRun({self.kind}, status={m.get('status')!r}, rows={len(self.scores)}, "
                f"codes={sorted(self.codes)}, path={str(self.path)!r})")


def load_run(path: str | Path) -> LoadedRun:
    """Read a run record folder (evolve, synthesize or screen) for analysis."""
    rec = RunRecord(path)
    manifest = rec.manifest()
    scores = rec.scores() if (rec.path / SCORES).exists() else pd.DataFrame()
    codes = rec.codes() if (rec.path / CODES).exists() else {}
    return LoadedRun(rec.path, manifest, scores, codes)


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; any damage is one clear RecordError."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"checkpoint {path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle refused, garbage bytes...
        raise RecordError(f"checkpoint {path} is corrupt, truncated or not an actmax checkpoint "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise RecordError(f"checkpoint {path} is not an actmax checkpoint of version {CHECKPOINT_VERSION}")
    return state


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """One (C, H, W) image in [0, 1] as PNG (atomic)."""
    save_montage(image[None], path, nrow=1, padding=0)


def save_montage(images: torch.Tensor, path: str | Path, *, nrow: int = 8, padding: int = 2,
                 upscale_to: int = 96) -> None:
    """A grid of (N, C, H, W) images in [0, 1] as PNG (atomic); small images are upscaled (nearest)."""
    import torch.nn.functional as F
    from PIL import Image
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[-1] < upscale_to:
        factor = int(np.ceil(upscale_to / images.shape[-1]))
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
    grid = make_grid(images, nrow=max(1, nrow), padding=padding, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = arr[..., 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())

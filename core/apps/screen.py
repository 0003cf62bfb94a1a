"""Screening: most and least activating images (MAIs/LAIs) of every unit over an image set.

The images stream through the scorer in batches (a torch ``DataLoader``). Per unit the screen
keeps only

* the top-k and bottom-k responses with their image indices (exact: the same as a full sort,
  ties broken by the lower image index),
* running moments (count, mean, M2, M3 in float64, merged batch by batch with Chan et al.'s
  pairwise formulas, so mean / std / skewness are exact up to rounding),
* a quantile sketch (DDSketch, relative accuracy ``relative_accuracy`` = alpha) for the
  quantiles and the Gini coefficient.

Memory is O(units x (k + bins)) and never O(images x units), unlike a full sort of an
(N, units) response matrix (what the DualNeuron reference does).

The per-unit state and its sketch are in :mod:`actmax.core.apps.sketch`, the image sets in
:mod:`actmax.core.apps.image_sets`.

**Resume.** With ``out_dir`` the running state is saved atomically every ``checkpoint_every``
batches (``checkpoint.pt``, loaded with ``weights_only=True``); :func:`resume_screen` continues
from the first unprocessed image with the same batch size and ends with the same result as an
uninterrupted screen (bit for bit: batches are formed identically and the merges are exact).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from actmax.core.apps.image_sets import (IMAGE_SUFFIXES, ArrayImages, ImageFolder, _collate, _ImageSet,  # noqa: F401
                                         _Indexed, _pil_to_array, open_images)
from actmax.core.apps.sketch import StreamingScreen, _select, full_sort_extremes  # noqa: F401  (re-exported)
from actmax.core.contracts import check_device
from actmax.core.errors import InputError, RecordError, UnitIndexError
from actmax.core.registry import scorers, spec_text
from actmax.core.runs.kind import BaseRun

__all__ = [
    "IMAGE_SUFFIXES", "ImageFolder", "ArrayImages", "open_images", "StreamingScreen", "ScreenResult",
    "screen", "resume_screen", "load_screen", "full_sort_extremes", "ScreenRun",
]

TABLE, STATS = "screen", "unit_stats"
REPORTED_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass
class ScreenResult:
    """MAIs/LAIs of every unit, statistics, and where they were written."""

    top_values: np.ndarray        # (U, k) best first
    top_indices: np.ndarray       # (U, k) image indices into the set
    bottom_values: np.ndarray     # (U, k) lowest first
    bottom_indices: np.ndarray
    table: pd.DataFrame           # long: unit, unit_name, pole, rank, response, image_index, source
    stats: pd.DataFrame           # one row per unit: n, mean, std, skewness, min, max, quantiles, gini
    state: StreamingScreen
    images: _ImageSet
    unit_names: list[str]
    out_dir: Path | None = None
    elapsed_s: float = 0.0

    @property
    def k(self) -> int:
        return self.top_values.shape[1]

    def __repr__(self) -> str:
        n_units = len(self.unit_names)
        tops = self.top_values[:, 0] if self.top_values.size else np.array([np.nan])
        where = str(self.out_dir) if self.out_dir is not None else "not saved (no out_dir)"
        return (f"ScreenResult({self.state.n} images x {n_units} units, k={self.k}, "
                f"best response per unit {float(tops.min()):.4g}..{float(tops.max()):.4g}, record={where})")

    def mais(self, unit: int) -> torch.Tensor:
        """The most activating images of ``unit`` (k, C, H, W), best first."""
        return self.images.batch(self.top_indices[unit])

    def lais(self, unit: int) -> torch.Tensor:
        """The least activating images of ``unit`` (k, C, H, W), lowest first."""
        return self.images.batch(self.bottom_indices[unit])


def _tables(state: StreamingScreen, images: _ImageSet, names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    u, k = state.top_values.shape
    rows = []
    for pole, vals, idx in (("high", state.top_values, state.top_indices), ("low", state.bottom_values, state.bottom_indices)):
        flat_idx = idx.ravel()
        rows.append(pd.DataFrame({
            "unit": np.repeat(np.arange(u), k), "unit_name": np.repeat(np.asarray(names, dtype=object), k),
            "pole": pole, "rank": np.tile(np.arange(k), u), "response": vals.ravel().astype(np.float64),
            "image_index": flat_idx, "source": [images.source(int(i)) for i in flat_idx]}))
    table = pd.concat(rows, ignore_index=True).sort_values(["unit", "pole", "rank"], kind="stable",
                                                          ignore_index=True)
    q, qerr = state.quantiles(REPORTED_QUANTILES)
    std = state.std()
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = std / state.mean
    stats = pd.DataFrame({"unit": np.arange(u), "unit_name": names, "n": state.n, "mean": state.mean, "std": std,
                          "skewness": state.skewness(), "min": state.min, "max": state.max,
                          "ptp": state.max - state.min, "cv": cv})
    for j, qq in enumerate(REPORTED_QUANTILES):
        name = f"q{int(round(qq * 100)):02d}"
        stats[name] = q[:, j]
        stats[f"{name}_error"] = qerr[:, j]
    stats["q_error"] = qerr.max(axis=1)
    g, g_err = state.gini()
    stats["gini"] = g
    stats["gini_error"] = g_err
    stats["relative_accuracy"] = state.relative_accuracy
    return table, stats


def _write_tables(rec_path: Path, table: pd.DataFrame, stats: pd.DataFrame) -> None:
    from actmax.core import files as fileio

    for name, df in ((TABLE, table), (STATS, stats)):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        fileio.atomic_write_bytes(rec_path / f"{name}.parquet", buf.getvalue())
        fileio.atomic_write_bytes(rec_path / f"{name}.csv", df.to_csv(index=False).encode())


class ScreenRun(BaseRun):
    """The screen run kind: one batch of images per step through the scorer, into the streaming state."""

    kind = "screen"
    progress_unit = "img"

    def __init__(self, scorer: Any, image_set: _ImageSet, spec: Mapping[str, Any]) -> None:
        self.scorer_spec, self.image_set, self.spec = scorer, image_set, dict(spec)
        self.model = scorers.create(scorer).to(check_device(spec.get("device"))).eval()
        self.sketch = StreamingScreen(int(self.model.units), k=int(spec["k"]),
                                      relative_accuracy=float(spec["relative_accuracy"]), bins=int(spec["bins"]))
        self.names = list(self.model.unit_names)
        self.next_index, self.batches = 0, 0
        self._batches: Any = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], path: Path, scorer: Any = None, **live: Any) -> "ScreenRun":
        scorer_spec = scorer if scorer is not None else spec.get("scorer")
        if scorer_spec is None:
            raise RecordError(f"{path}: the screen was run with a live scorer object; pass it again as scorer=")
        d = spec["images"]
        image_set = open_images(d["path"], size=d.get("size"), channels=d.get("channels"), key=d.get("key"),
                                layout=d.get("layout") or "auto")
        if image_set.fingerprint() != spec["fingerprint"]:
            raise RecordError(f"{path}: the image set at {d['path']!r} changed since the screen started "
                              "(files added, removed or resized); start a new screen")
        if "relative_accuracy" not in spec:
            raise RecordError(f"{path}: the screen was started by an older actmax (fixed-bin histogram "
                              "quantiles); start it again with --overwrite")
        return cls(scorer_spec, image_set, spec)

    def record_spec(self) -> dict[str, Any]:
        return {**self.spec, "scorer": spec_text(self.scorer_spec)}

    @property
    def position(self) -> int:
        return self.next_index

    @property
    def total(self) -> int:
        return len(self.image_set)

    def parts(self) -> list[Any]:
        return [self.model]

    def step(self) -> int:
        if self._batches is None:
            workers = int(self.spec["num_workers"])
            self._batches = iter(DataLoader(_Indexed(self.image_set, self.next_index),
                                            batch_size=int(self.spec["batch_size"]), shuffle=False,
                                            num_workers=workers, collate_fn=_collate, drop_last=False,
                                            persistent_workers=False))
            self._device = next((b.device for b in list(self.model.parameters()) + list(self.model.buffers())),
                                torch.device("cpu"))
        batch = next(self._batches)
        with torch.no_grad():
            resp = self.model(batch.to(self._device))
        self.sketch.update(resp.detach().float().cpu().numpy(), self.next_index)
        self.next_index += batch.shape[0]
        self.batches += 1
        return int(batch.shape[0])

    def commit(self, rec: Any) -> bool:
        return self.batches % int(self.spec["checkpoint_every"]) == 0 and self.next_index < len(self.image_set)

    def state(self) -> dict[str, Any]:
        return {"next_index": self.next_index, "batch_size": int(self.spec["batch_size"]),
                "fingerprint": self.spec["fingerprint"], "screen": self.sketch.state_dict()}

    def load_state(self, ckpt: Mapping[str, Any]) -> None:
        if ckpt.get("fingerprint") != self.spec["fingerprint"] or \
                int(ckpt.get("batch_size", -1)) != int(self.spec["batch_size"]):
            raise RecordError("checkpoint does not belong to this screen's spec")
        try:
            sketch = StreamingScreen.from_state_dict(ckpt["screen"])
            start = int(ckpt["next_index"])
        except KeyError as exc:
            raise RecordError(f"checkpoint is missing {exc}") from None
        if sketch.units != int(self.model.units):
            raise RecordError(f"checkpoint has {sketch.units} units, the scorer {self.model.units}")
        if not 0 < start <= len(self.image_set) or sketch.n != start:
            raise RecordError(f"checkpoint position {start} does not fit the {len(self.image_set)} images")
        self.sketch, self.next_index = sketch, start

    def result(self, rec: Any, elapsed: float) -> ScreenResult:
        table, stats = _tables(self.sketch, self.image_set, self.names)
        s = self.sketch
        return ScreenResult(s.top_values, s.top_indices, s.bottom_values, s.bottom_indices, table, stats, s,
                            self.image_set, self.names, None if rec is None else rec.path, elapsed)

    def write_final(self, rec: Any, result: ScreenResult) -> None:
        """Tables, MAI/LAI montages and the summary plot (rebuildable from the final checkpoint)."""
        from actmax.core.apps.plots import plot_mai_lai, plot_screen_summary

        _write_tables(rec.path, result.table, result.stats)
        units = self.spec.get("montage_units")
        if units is None:
            units = list(range(min(int(self.spec.get("max_montages", 16)), len(result.unit_names))))
        for u in units:
            if not 0 <= int(u) < len(result.unit_names):
                raise UnitIndexError(f"montage unit {u} out of range: the scorer has {len(result.unit_names)} units")
            plot_mai_lai(result.mais(int(u)), result.lais(int(u)), result.top_values[u], result.bottom_values[u],
                         rec.path / "images" / f"unit_{int(u):04d}.png", title=f"unit {result.unit_names[u]}")
        plot_screen_summary(result, rec.path / "screen_summary.png")

    def summary(self, result: ScreenResult) -> dict[str, Any]:
        return {"images": int(result.state.n), "units": len(result.unit_names)}

    @classmethod
    def stored_result(cls, rec: Any, manifest: Mapping[str, Any], state: Mapping[str, Any],
                      meta: Mapping[str, Any]) -> ScreenResult | None:
        """The result of a finished, verified screen read from its tables and final checkpoint.

        No scorer is built and no image is scored: resuming a finished screen costs a few file
        reads (and a look at the image set, whose fingerprint must still match). None for a
        record whose tables are not all there (the rebuild path then says what is wrong).
        """
        from actmax.core.records import state_field

        spec = manifest["spec"]
        if not all((rec.path / f"{name}.parquet").exists() for name in (TABLE, STATS)):
            return None
        if state.get("fingerprint") != spec.get("fingerprint") or \
                int(state.get("batch_size", -1)) != int(spec.get("batch_size", -2)):
            raise RecordError(f"{rec.path}: the checkpoint does not belong to this screen's spec")
        sketch = StreamingScreen.from_state_dict(state_field(state, "screen"))
        done, total = int(state_field(state, "next_index")), int(spec["images"]["n"])
        if sketch.n != done or done != total or int(meta.get("step", -1)) != done:
            raise RecordError(f"{rec.path}: finished manifest, but the checkpoint holds {done} of {total} images")
        table = pd.read_parquet(rec.check_file(f"{TABLE}.parquet"))
        stats = pd.read_parquet(rec.check_file(f"{STATS}.parquet"))
        if len(stats) != sketch.units or len(table) != 2 * sketch.units * sketch.k:
            raise RecordError(f"{rec.path}: the tables and the checkpoint disagree (units or k); "
                              f"`actmax resume --repair {rec.path}`")
        d = spec["images"]
        images = open_images(d["path"], size=d.get("size"), channels=d.get("channels"), key=d.get("key"),
                             layout=d.get("layout") or "auto")
        if images.fingerprint() != spec["fingerprint"]:
            raise RecordError(f"{rec.path}: the image set at {d['path']!r} changed since the screen ran")
        return ScreenResult(sketch.top_values, sketch.top_indices, sketch.bottom_values, sketch.bottom_indices,
                            table, stats, sketch, images, [str(n) for n in stats["unit_name"]], rec.path,
                            float(manifest.get("elapsed_s", 0.0)))

    def end_steps(self) -> None:
        self._batches = None

    @classmethod
    def extremes(cls, record: Path, units: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The highest and lowest response per unit over the screened images."""
        _, stats = load_screen(record)
        if len(stats) != units:
            raise RecordError(f"{record}: the screen has {len(stats)} units, the scorer {units}")
        return stats["max"].to_numpy(float), stats["min"].to_numpy(float), "screen extremes"


def screen(scorer: Any, images: str | Path | _ImageSet, *, k: int = 16, batch_size: int = 64,
           num_workers: int = 0, size: int | None = None, channels: int | None = None, key: str | None = None,
           layout: str = "auto", relative_accuracy: float = 0.005, bins: int = 2048, checkpoint_every: int = 50,
           out_dir: str | Path | None = None, overwrite: bool = False, device: str | None = None,
           montage_units: Sequence[int] | None = None, max_montages: int = 16, progress: bool | None = None) -> ScreenResult:
    """Responses of every unit of ``scorer`` over an image set, keeping per unit the top/bottom ``k``.

    ``scorer`` is a registered scorer spec (``"model:kind=dual,n=4"``), a dict or a live scorer;
    ``images`` a folder of PNG/JPEG files (recursive) or a .npy/.npz array (see
    :func:`open_images`). With ``out_dir`` a run record is written: ``screen.parquet/.csv`` (MAIs
    and LAIs per unit), ``unit_stats.parquet/.csv``, montages and plots, and a checkpoint every
    ``checkpoint_every`` batches so :func:`resume_screen` can finish a killed screen.
    ``relative_accuracy`` (alpha) and ``bins`` set the quantile sketch (see the module docstring:
    quantile error <= alpha x |value|, Gini error <= alpha, both reported in the statistics table).
    """
    from actmax.core.runs.driver import execute

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if checkpoint_every < 1:
        raise InputError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    check_device(device)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise InputError(f"size must be an integer >= 1, got {size!r}")
    image_set = images if isinstance(images, _ImageSet) else open_images(
        images, size=size, channels=channels, key=key, layout=layout)
    spec = {"scorer": None, "images": image_set.describe(), "fingerprint": image_set.fingerprint(),
            "k": int(k), "batch_size": int(batch_size), "num_workers": int(num_workers),
            "relative_accuracy": float(relative_accuracy), "bins": int(bins),
            "checkpoint_every": int(checkpoint_every), "device": device,
            "montage_units": None if montage_units is None else [int(u) for u in montage_units],
            "max_montages": int(max_montages)}
    return execute(lambda: ScreenRun(scorer, image_set, spec), out_dir=out_dir, overwrite=overwrite,
                   progress=progress)


def resume_screen(out_dir: str | Path, *, scorer: Any = None, progress: bool | None = None, trust: bool = False,
                  repair: bool = False) -> ScreenResult:
    """Continue a killed screen from its checkpoint; the result equals an uninterrupted screen.

    A screen started from a scorer spec is re-created from it; one started from a live scorer
    needs it again as ``scorer``. Same lifecycle rules as every run kind: a finished screen is
    re-verified and its stored result returned (no scorer built); ``repair`` rebuilds the tables and plots from the
    final checkpoint; ``trust`` allows specs that import non-plugin modules.
    """
    from actmax.core.runs.driver import resume
    return resume(out_dir, kind="screen", progress=progress, trust=trust, repair=repair, scorer=scorer)


def load_screen(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (MAI/LAI table, unit statistics) of a finished screen record."""
    from actmax.core.records import RunRecord

    p = Path(out_dir)
    paths = [p / f"{TABLE}.parquet", p / f"{STATS}.parquet"]
    if (p / "manifest.json").exists() and RunRecord(p).manifest().get("status") == "finished":
        for path in paths:   # a finished screen's tables must match the manifest's sha256
            RunRecord(p).check_file(path.name)
    for path in paths:
        if not path.exists():
            raise RecordError(f"{p}: {path.name} is missing (not a finished screen?)")
    return pd.read_parquet(paths[0]), pd.read_parquet(paths[1])

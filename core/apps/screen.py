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

**Quantiles: DDSketch.** Every nonzero response ``x`` goes to the bucket ``ceil(log_gamma |x|)`` of
its sign's store, ``gamma = (1 + alpha) / (1 - alpha)`` (the ``ddsketch`` library's
``LogarithmicMapping``), zeros to a zero bucket; a bucket is represented by
``2 gamma^key / (1 + gamma)``, within ``alpha * |x|`` of every value in it. The bucket counts are
exact, so the order statistic of any rank lies in the bucket the cumulative counts point to:
quantile error ``<= alpha * |true value|``, whatever the image order (the counts are a function
of the set of responses only; order and batch size change nothing). Each store keeps a window
of ``bins`` buckets per unit below the highest key seen (default 2048: values within a factor
``~exp(2 alpha bins)`` = 8e8 at alpha = 0.005 of the largest keep full accuracy); lower keys
collapse into the window's lowest bucket (the library's ``CollapsingLowestDenseStore`` rule, also
order independent), whose bound is then its real width. Quantiles use numpy's 'linear'
definition (interpolating two order statistics); order statistics within the k smallest or k
largest responses are read from the kept extremes and are exact. The statistics table reports
beside each quantile ``qNN`` its bound ``qNN_error`` (distance from the estimate to the farther
edge of its bucket, clipped to the exact min / max: ``<= alpha / (1 - alpha) * |qNN|``), and
``q_error``, the worst of them.

**Gini.** From the same buckets, for units whose responses are all >= 0 (NaN otherwise; see
``actmax.core.apps.analysis.gini`` for the policy on negative values): each response ``x_i`` is
replaced by its bucket's value ``y_i`` (sorted alike) and the exact tracked sum ``S = n * mean``
is the denominator, ``G_s = sum_i (2i - n - 1) y_(i) / (n S)``. Since
``G = sum_ij |x_i - x_j| / (2 n S)`` and ``| |y_i - y_j| - |x_i - x_j| | <= e_i + e_j`` with
``e_i = |y_i - x_i| <= alpha x_i``, ``|G_s - G| <= sum_i e_i / S <= alpha``: the column
``gini_error`` is alpha (plus ``count x largest error / S`` of a collapsed bucket, if any).

**Why DDSketch, and why vectorised here.** The earlier fixed-bin histogram took its range from
the first batch, so quantiles and Gini depended on the image order, and the Gini had no bound
(measured: 2,000 natural 32 px patches sorted by contrast through ``model:kind=complex,n=4``
gave Gini errors up to 0.047 (0.717 vs exact 0.670) and a median off by 0.086, the same images
shuffled 0.0006; the sketch gives <= 0.0001 for both orders, bound 0.005). Rank-error sketches
(Apache DataSketches' KLL, ``datasketches``) have an order-independent rank guarantee, but KLL
compaction draws random bits seeded from the clock inside the C++ library: the same values in the
same order give different quantiles from run to run (checked with datasketches 5.2:
kll_floats_sketch(200) on 200,000 lognormal values, three sketches in one process, three
different medians), which breaks the bit-for-bit resume equality below and seeded
reproducibility. DDSketch is deterministic and mergeable (bucket counts add) and its
value-relative bound turns into the Gini bound above. The ``ddsketch`` package (Datadog) adds one
value at a time in Python (measured 2.4 us per value: ~12 s more for 20,000 images x 256 units)
into list-based stores; here the same mapping and store rule run on (units, bins) int64 arrays,
one ``np.add.at`` per batch (measured ~25-30 ms per 256 images x 256 units on one core, ~0.4 us
per value), with the library's ``LogarithmicMapping`` giving gamma and the zero threshold; the tests check that the
order statistics equal the library's own sketch.

**Resume.** With ``out_dir`` the running state is saved atomically every ``checkpoint_every``
batches (``checkpoint.pt``, loaded with ``weights_only=True``); :func:`resume_screen` continues
from the first unprocessed image with the same batch size and ends with the same result as an
uninterrupted screen (bit for bit: batches are formed identically and the merges are exact).
"""
from __future__ import annotations

import hashlib
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from actmax.core.contracts import ContractError
from actmax.core.errors import RecordError
from actmax.core.registry import spec_text

__all__ = [
    "IMAGE_SUFFIXES", "ImageFolder", "ArrayImages", "open_images", "StreamingScreen", "ScreenResult",
    "screen", "resume_screen", "load_screen", "full_sort_extremes",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE, STATS = "screen", "unit_stats"
REPORTED_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


# ============================================================================================
# Image sets
# ============================================================================================
class _ImageSet(Dataset):
    """An indexable set of images -> float32 (C, H, W) in [0, 1]; ``sources[i]`` names image i."""

    kind = "images"

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def source(self, index: int) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def fingerprint(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Images ``indices`` as one (n, C, H, W) batch (for montages)."""
        return _collate([self[int(i)] for i in indices], self)


class ImageFolder(_ImageSet):
    """PNG/JPEG files under ``root`` (recursive, sorted by relative path), read with PIL.

    Grey files (modes 1, L, LA, I, I;16, F) give one channel, colour files three (alpha is
    dropped). A batch that mixes both is promoted to RGB. ``size`` resizes every image to a
    square of that side (antialiased); without it all images must share one size.
    ``channels`` forces grey (1) or RGB (3).
    """

    kind = "folder"

    def __init__(self, root: str | Path, *, size: int | None = None, channels: int | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None (as stored), got {channels}")
        self.size, self.channels = size, channels
        self.files = sorted((p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                            key=lambda p: p.relative_to(self.root).as_posix())
        if not self.files:
            raise ValueError(f"image folder {str(self.root)!r} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        self.relative = [p.relative_to(self.root).as_posix() for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def source(self, index: int) -> str:
        return self.relative[index]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for rel, p in zip(self.relative, self.files):
            h.update(f"{rel}\0{p.stat().st_size}\n".encode())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.root), "n": len(self), "size": self.size,
                "channels": self.channels}

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as img:
                img.load()
                arr = _pil_to_array(img, self.channels)
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"cannot read image {str(path)!r}: {exc}") from exc
        t = torch.from_numpy(arr)
        if self.size is not None:
            from actmax.core.contracts import to_size
            t = to_size(t[None], int(self.size))[0].clamp(0, 1)
        return t


def _pil_to_array(img: Any, channels: int | None) -> np.ndarray:
    """A PIL image -> float32 (C, H, W) in [0, 1]."""
    mode = img.mode
    grey = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    if mode in ("I", "I;16", "I;16B", "I;16L"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        arr = arr[None]
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)[None]
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"float image has values outside [0, 1] ([{arr.min():.4g}, {arr.max():.4g}])")
    elif grey:
        arr = np.asarray(img.convert("L"), dtype=np.float32)[None] / 255.0
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    if channels == 1 and arr.shape[0] == 3:
        from actmax.core.contracts import to_channels
        arr = to_channels(torch.from_numpy(np.ascontiguousarray(arr))[None], 1)[0].numpy()
    elif channels == 3 and arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    return np.ascontiguousarray(arr, dtype=np.float32)


class ArrayImages(_ImageSet):
    """Images in a ``.npy`` / ``.npz`` array: (N, H, W), (N, H, W, C) or (N, C, H, W), C in {1, 3}.

    ``uint8`` is scaled by 1/255; float arrays must already lie in [0, 1] (checked per image).
    ``.npy`` files are memory-mapped, so a set larger than memory streams from disk; an ``.npz``
    member is read whole (zip members cannot be mapped). ``key`` picks the ``.npz`` member
    (default: the only one). ``layout`` is ``auto``, ``NHW``, ``NHWC`` or ``NCHW``. Pickled
    object arrays are refused.
    """

    kind = "array"

    def __init__(self, path: str | Path, *, key: str | None = None, layout: str = "auto",
                 size: int | None = None, channels: int | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"array file {str(self.path)!r} does not exist")
        if self.path.suffix.lower() not in (".npy", ".npz"):
            raise ValueError(f"array datasets must be .npy or .npz files, got {str(self.path)!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None (as stored), got {channels}")
        self.key, self.size, self.channels = key, size, channels
        self._array: np.ndarray | None = None
        arr = self._open()
        self.shape, self.dtype = tuple(arr.shape), arr.dtype
        self.layout = _detect_layout(self.shape, layout, str(self.path))
        if not (self.dtype == np.uint8 or np.issubdtype(self.dtype, np.floating)):
            raise ValueError(f"{str(self.path)!r}: images must be uint8 or float, got dtype {self.dtype}")
        if self.shape[0] == 0:
            raise ValueError(f"{str(self.path)!r} holds no images (shape {self.shape})")

    def _open(self) -> np.ndarray:
        if self._array is None:
            try:
                if self.path.suffix.lower() == ".npy":
                    self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
                else:
                    with np.load(self.path, allow_pickle=False) as z:
                        names = list(z.files)
                        if self.key is None:
                            if len(names) != 1:
                                raise ValueError(f"{str(self.path)!r} holds several arrays {names}; choose one with key=")
                            key = names[0]
                        elif self.key not in names:
                            raise ValueError(f"{str(self.path)!r} has no array {self.key!r}; it holds {names}")
                        else:
                            key = self.key
                        self._array = z[key]
            except ValueError as exc:
                if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                    raise ValueError(f"{str(self.path)!r} holds Python objects (pickled); actmax reads only "
                                     "plain numeric arrays") from exc
                raise
        return self._array

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the file themselves
        state = dict(self.__dict__)
        if self.path.suffix.lower() == ".npy":
            state["_array"] = None
        return state

    def __len__(self) -> int:
        return int(self.shape[0])

    def source(self, index: int) -> str:
        return f"{self.path.name}[{index}]"

    def fingerprint(self) -> str:
        stat = self.path.stat()
        return hashlib.sha256(f"{self.path.name}\0{stat.st_size}\0{self.shape}\0{self.dtype}\0{self.key}"
                              .encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "n": len(self), "shape": list(self.shape),
                "dtype": str(self.dtype), "layout": self.layout, "key": self.key, "size": self.size,
                "channels": self.channels}

    def __getitem__(self, index: int) -> torch.Tensor:
        item = np.asarray(self._open()[index])
        if self.layout == "NHW":
            item = item[None]
        elif self.layout == "NHWC":
            item = item.transpose(2, 0, 1)
        if self.dtype == np.uint8:
            item = item.astype(np.float32) / 255.0
        else:
            item = item.astype(np.float32)
            lo, hi = (float(item.min()), float(item.max())) if item.size else (0.0, 0.0)
            if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
                raise ContractError(f"{self.source(index)}: float images must lie in [0, 1], got "
                                    f"[{lo:.4g}, {hi:.4g}] (scale the array or store uint8)")
        t = torch.from_numpy(np.ascontiguousarray(item))
        if self.channels is not None and t.shape[0] != self.channels:
            from actmax.core.contracts import to_channels
            t = to_channels(t[None], self.channels)[0]
        if self.size is not None:
            from actmax.core.contracts import to_size
            t = to_size(t[None], int(self.size))[0].clamp(0, 1)
        return t.contiguous()


def _detect_layout(shape: tuple[int, ...], layout: str, where: str) -> str:
    layouts = ("auto", "NHW", "NHWC", "NCHW")
    if layout not in layouts:
        raise ValueError(f"layout must be one of {layouts}, got {layout!r}")
    if len(shape) == 3:
        if layout not in ("auto", "NHW"):
            raise ValueError(f"{where}: a 3-d array {shape} is (N, H, W), not {layout}")
        return "NHW"
    if len(shape) != 4:
        raise ValueError(f"{where}: expected images (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {shape}")
    last, second = shape[-1] in (1, 3), shape[1] in (1, 3)
    if layout == "auto":
        if last and not second:
            return "NHWC"
        if second and not last:
            return "NCHW"
        if last and second:
            raise ValueError(f"{where}: shape {shape} could be (N, H, W, C) or (N, C, H, W); pass layout=")
        raise ValueError(f"{where}: shape {shape} has no channel axis of size 1 or 3")
    if (layout == "NHWC" and not last) or (layout == "NCHW" and not second) or layout == "NHW":
        raise ValueError(f"{where}: shape {shape} does not fit layout {layout} (channels must be 1 or 3)")
    return layout


def open_images(path: str | Path, *, size: int | None = None, channels: int | None = None,
                key: str | None = None, layout: str = "auto") -> _ImageSet:
    """An image folder (PNG/JPEG, recursive) or an array file (.npy/.npz) as an indexable set."""
    p = Path(path).expanduser()
    if p.is_dir():
        return ImageFolder(p, size=size, channels=channels)
    if p.is_file():
        return ArrayImages(p, key=key, layout=layout, size=size, channels=channels)
    raise FileNotFoundError(f"image set {str(p)!r} does not exist (give a folder of PNG/JPEG files or a .npy/.npz array)")


def _collate(items: list[torch.Tensor], dataset: Any = None) -> torch.Tensor:
    """Stack images; grey ones are promoted to RGB when a batch mixes both; sizes must agree."""
    if any(t.shape[0] == 3 for t in items):
        items = [t.expand(3, -1, -1) if t.shape[0] == 1 else t for t in items]
    shapes = {tuple(t.shape[-2:]) for t in items}
    if len(shapes) > 1:
        raise ValueError(f"images in one batch have different sizes {sorted(shapes)}; pass size= "
                         "(--size) to resize every image to one square size")
    return torch.stack(items)


class _Indexed(Dataset):
    """Images ``start..N-1`` of a set, in order (what a resumed screen still has to see)."""

    def __init__(self, base: _ImageSet, start: int) -> None:
        self.base, self.start = base, start

    def __len__(self) -> int:
        return len(self.base) - self.start

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.base[self.start + i]


# ============================================================================================
# Streaming state
# ============================================================================================
def _select(values: np.ndarray, indices: np.ndarray, k: int, *, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best (value, index) pairs: by value, ties by the lower index; sorted best first.

    ``values``/``indices`` are (U, m). Candidates are first put in index order, then a stable
    sort by value keeps that order among equal values, which makes the tie rule exact.
    """
    by_index = np.argsort(indices, axis=1, kind="stable")
    v = np.take_along_axis(values, by_index, axis=1)
    i = np.take_along_axis(indices, by_index, axis=1)
    order = np.argsort(-v if largest else v, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(v, order, axis=1), np.take_along_axis(i, order, axis=1)


def full_sort_extremes(responses: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The naive reference: sort the whole (N, U) matrix. Returns top/bottom (values, indices), each (U, k)."""
    r = np.asarray(responses).T
    idx = np.broadcast_to(np.arange(r.shape[1]), r.shape)
    tv, ti = _select(r, idx, k, largest=True)
    bv, bi = _select(r, idx, k, largest=False)
    return tv, ti, bv, bi


_EMPTY_TOP = np.int64(-(2 ** 62))   # "no value of this sign yet" for the highest key
_EMPTY_LOW = np.int64(2 ** 62)      # ... and for the lowest key
_READ_CHUNK = 8                     # units per read-out chunk (bounds its temporaries)


@dataclass
class StreamingScreen:
    """Top-k / bottom-k, moments and a quantile sketch (DDSketch) of every unit, updated batch by batch.

    The sketch is DDSketch (Masson, Rim & Lee, VLDB 2019) with the ``ddsketch`` library's
    :class:`~ddsketch.mapping.LogarithmicMapping` (relative accuracy ``relative_accuracy`` =
    alpha, bucket base ``gamma = (1 + alpha) / (1 - alpha)``, value ``x > 0`` in bucket
    ``ceil(log_gamma x)``, bucket ``key`` represented by ``2 gamma^key / (1 + gamma)``) and one
    collapsing-lowest dense store of ``bins`` buckets per sign and unit (the library's
    ``CollapsingLowestDenseStore`` rule), held as (units, bins) integer arrays and updated for a
    whole batch at once.
    """

    units: int
    k: int = 16
    relative_accuracy: float = 0.005
    bins: int = 2048
    n: int = 0
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    m3: np.ndarray = field(init=False)
    top_values: np.ndarray = field(init=False)
    top_indices: np.ndarray = field(init=False)
    bottom_values: np.ndarray = field(init=False)
    bottom_indices: np.ndarray = field(init=False)
    pos_counts: np.ndarray = field(init=False)   # (U, bins): bucket keys pos_top - bins + 1 .. pos_top
    neg_counts: np.ndarray = field(init=False)   # the same for |x| of negative responses ((U, 0) until one comes)
    zero_counts: np.ndarray = field(init=False)  # (U,) responses equal to 0
    pos_top: np.ndarray = field(init=False)      # (U,) highest key seen (_EMPTY_TOP: none)
    neg_top: np.ndarray = field(init=False)
    pos_low: np.ndarray = field(init=False)      # (U,) lowest key seen (_EMPTY_LOW: none)
    neg_low: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        from ddsketch.mapping import LogarithmicMapping

        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if isinstance(self.bins, bool) or int(self.bins) != self.bins or self.bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {self.bins!r}")
        if not 0.0 < float(self.relative_accuracy) < 0.5:
            raise ValueError(f"relative_accuracy must lie in (0, 0.5), got {self.relative_accuracy!r}")
        self.relative_accuracy, self.bins = float(self.relative_accuracy), int(self.bins)
        self._mapping = LogarithmicMapping(self.relative_accuracy)
        self._log_gamma = math.log(self._mapping.gamma)
        u = self.units
        self.mean, self.m2, self.m3 = np.zeros(u), np.zeros(u), np.zeros(u)
        self.top_values = np.zeros((u, 0), np.float32)
        self.bottom_values = np.zeros((u, 0), np.float32)
        self.top_indices = np.zeros((u, 0), np.int64)
        self.bottom_indices = np.zeros((u, 0), np.int64)
        self.pos_counts = np.zeros((u, self.bins), np.int64)
        self.neg_counts = np.zeros((u, 0), np.int64)    # allocated when the first negative response arrives
        self.zero_counts = np.zeros(u, np.int64)
        self.pos_top, self.neg_top = np.full(u, _EMPTY_TOP), np.full(u, _EMPTY_TOP)
        self.pos_low, self.neg_low = np.full(u, _EMPTY_LOW), np.full(u, _EMPTY_LOW)

    @property
    def gamma(self) -> float:
        return float(self._mapping.gamma)

    # -- updates ------------------------------------------------------------------------------
    def update(self, responses: np.ndarray, start: int) -> None:
        """Merge a batch of responses (B, units) of images ``start .. start+B-1``."""
        r = np.asarray(responses)
        if r.ndim != 2 or r.shape[1] != self.units:
            raise ContractError(f"responses must be (batch, {self.units}), got {r.shape}")
        if r.shape[0] == 0:
            return
        if not np.isfinite(r).all():
            row, col = np.argwhere(~np.isfinite(r))[0]
            raise ContractError(f"the scorer returned {r[row, col]} for unit {col} on image {start + row}")
        r32 = r.astype(np.float32)
        b = r32.shape[0]
        idx = np.broadcast_to(np.arange(start, start + b, dtype=np.int64), (self.units, b))
        self.top_values, self.top_indices = _select(
            np.concatenate([self.top_values, r32.T], 1), np.concatenate([self.top_indices, idx], 1), self.k, largest=True)
        self.bottom_values, self.bottom_indices = _select(
            np.concatenate([self.bottom_values, r32.T], 1), np.concatenate([self.bottom_indices, idx], 1), self.k,
            largest=False)
        r64 = r32.astype(np.float64)
        self._merge_moments(r64)
        self._add_to_sketch(r64)

    def _merge_moments(self, r: np.ndarray) -> None:
        nb = r.shape[0]
        mb = r.mean(0)
        d = r - mb
        m2b, m3b = (d ** 2).sum(0), (d ** 3).sum(0)
        na = self.n
        if na == 0:
            self.mean, self.m2, self.m3, self.n = mb, m2b, m3b, nb
            return
        n = na + nb
        delta = mb - self.mean
        self.m3 = (self.m3 + m3b + delta ** 3 * na * nb * (na - nb) / n ** 2
                   + 3.0 * delta * (na * m2b - nb * self.m2) / n)
        self.m2 = self.m2 + m2b + delta ** 2 * na * nb / n
        self.mean = self.mean + delta * nb / n
        self.n = n

    def keys(self, magnitudes: np.ndarray) -> np.ndarray:
        """DDSketch bucket keys ``ceil(log_gamma |x|)`` of positive magnitudes (vectorised)."""
        with np.errstate(divide="ignore"):
            return np.ceil(np.log(magnitudes) / self._log_gamma).astype(np.int64)

    def _add_to_sketch(self, r: np.ndarray) -> None:
        tiny = self._mapping.min_possible            # |x| <= tiny counts as zero (as in the library)
        self.zero_counts += (np.abs(r) <= tiny).sum(0)
        for sign, mask in (("pos", r > tiny), ("neg", r < -tiny)):
            if not mask.any():
                continue
            keys = self.keys(np.where(mask, np.abs(r), 1.0))
            top, low = getattr(self, f"{sign}_top"), getattr(self, f"{sign}_low")
            if getattr(self, f"{sign}_counts").shape[1] == 0:
                setattr(self, f"{sign}_counts", np.zeros((self.units, self.bins), np.int64))
            new_top = np.maximum(top, np.where(mask, keys, _EMPTY_TOP).max(0))
            new_low = np.minimum(low, np.where(mask, keys, _EMPTY_LOW).min(0))
            counts = _shift_window(getattr(self, f"{sign}_counts"), np.where(top == _EMPTY_TOP, 0, new_top - top))
            base = new_top - self.bins + 1
            pos = np.clip(keys - base[None, :], 0, self.bins - 1)   # below the window: collapsed into bucket 0
            unit = np.broadcast_to(np.arange(self.units, dtype=np.int64), mask.shape)
            np.add.at(counts, (unit[mask], pos[mask]), 1)         # no (units, bins) temporary
            setattr(self, f"{sign}_counts", counts)
            setattr(self, f"{sign}_top", new_top)
            setattr(self, f"{sign}_low", new_low)

    # -- read-outs ------------------------------------------------------------------------------
    @property
    def min(self) -> np.ndarray:
        return self.bottom_values[:, 0].astype(np.float64)

    @property
    def max(self) -> np.ndarray:
        return self.top_values[:, 0].astype(np.float64)

    def std(self, ddof: int = 1) -> np.ndarray:
        if self.n - ddof <= 0:
            return np.full(self.units, np.nan)
        return np.sqrt(np.maximum(self.m2, 0.0) / (self.n - ddof))

    def skewness(self) -> np.ndarray:
        """Sample skewness g1 = sqrt(n) M3 / M2^1.5 (0 for a constant unit)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            g = math.sqrt(self.n) * self.m3 / np.maximum(self.m2, 0.0) ** 1.5
        return np.where(self.m2 > 0, g, 0.0)

    def _store_buckets(self, sign: str, units: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Counts, representative magnitudes and magnitude edges (lower, upper) of one sign's store
        (units, bins) for the ``units`` slice."""
        top, low = getattr(self, f"{sign}_top")[units], getattr(self, f"{sign}_low")[units]
        counts = getattr(self, f"{sign}_counts")
        counts = counts[units] if counts.shape[1] else np.zeros((len(top), self.bins), np.int64)
        empty = top == _EMPTY_TOP
        base = np.where(empty, 0, top - self.bins + 1)
        key = base[:, None] + np.arange(self.bins, dtype=np.int64)[None, :]
        g = self._log_gamma
        rep = np.exp(key * g) * (2.0 / (1.0 + self.gamma))                  # the library's value(key)
        hi = np.exp(key * g)
        lo = np.exp((key - 1) * g)
        # bucket 0 also holds every value whose key fell below the window (collapsed): its lower edge
        # is that of the lowest key ever seen
        lo[:, 0] = np.exp((np.where(empty, base, np.minimum(low, base)) - 1) * g)
        return counts, rep, lo, hi

    def buckets(self, units: slice = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All buckets of the ``units`` slice in ascending value order: counts, representative values,
        lower and upper value edges, each (units, 2 bins + 1) (negative store reversed, the zero bucket,
        positive store). Every response lies inside its bucket's edges; edges are clipped to the exact
        [min, max]."""
        nc, nr, nlo, nhi = self._store_buckets("neg", units)
        pc, pr, plo, phi = self._store_buckets("pos", units)
        z = np.zeros((pc.shape[0], 1))
        counts = np.concatenate([nc[:, ::-1], self.zero_counts[units, None], pc], axis=1)
        rep = np.concatenate([-nr[:, ::-1], z, pr], axis=1)
        lower = np.concatenate([-nhi[:, ::-1], z, plo], axis=1)
        upper = np.concatenate([-nlo[:, ::-1], z, phi], axis=1)
        vmin, vmax = self.min[units, None], self.max[units, None]
        return counts, rep, np.clip(lower, vmin, vmax), np.clip(upper, vmin, vmax)

    def _chunks(self) -> list[slice]:
        """Unit slices for the read-outs (bounds their temporary memory to a few units' buckets)."""
        return [slice(i, min(i + _READ_CHUNK, self.units)) for i in range(0, self.units, _READ_CHUNK)]

    @staticmethod
    def _order_statistic(rank: int, cum: np.ndarray, rep: np.ndarray, lower: np.ndarray,
                         upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sketch's estimate of the ``rank``-th smallest response (0-based) and its error bound."""
        rows = np.arange(cum.shape[0])
        b = (cum > rank).argmax(axis=1)              # the bucket holding that order statistic
        a, c = lower[rows, b], upper[rows, b]
        est = np.clip(rep[rows, b], a, c)
        return est, np.maximum(est - a, c - est)

    def quantiles(self, qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Quantiles (U, len(qs)) (numpy's 'linear' definition) and their error bounds (U, len(qs)).

        Order statistics among the k smallest / largest are exact (kept); the others come from the
        sketch: the bucket holding the rank is found from the exact counts, so the true value lies in
        it and the bound is the distance from the estimate to the farther bucket edge,
        ``<= alpha / (1 - alpha) * |estimate|`` for a bucket that did not collapse.
        """
        qs = np.asarray(qs, dtype=np.float64)
        if self.n == 0:
            raise ValueError("no responses yet")
        if ((qs < 0) | (qs > 1)).any():
            raise ValueError(f"quantiles must lie in [0, 1], got {qs}")
        out = np.empty((self.units, len(qs)))
        err = np.zeros((self.units, len(qs)))
        kk = self.top_values.shape[1]
        for sl in self._chunks():
            counts, rep, lower, upper = self.buckets(sl)
            cum = np.cumsum(counts, axis=1)
            m = counts.shape[0]

            def order_stat(r: int) -> tuple[np.ndarray, np.ndarray]:
                if r < kk:
                    return self.bottom_values[sl, r].astype(np.float64), np.zeros(m)
                if r >= self.n - kk:
                    return self.top_values[sl, self.n - 1 - r].astype(np.float64), np.zeros(m)
                return self._order_statistic(r, cum, rep, lower, upper)

            for j, q in enumerate(qs):
                rank = q * (self.n - 1)
                lo_r, hi_r = int(math.floor(rank)), int(math.ceil(rank))
                frac = rank - lo_r
                (a, ea), (b, eb) = order_stat(lo_r), order_stat(hi_r)
                out[sl, j] = a + frac * (b - a)
                err[sl, j] = (1.0 - frac) * ea + frac * eb
        return out, err

    def gini(self) -> tuple[np.ndarray, np.ndarray]:
        """Gini coefficient per unit from the sketch and its error bound (both NaN for units with negative responses).

        Every response x_i is replaced by its bucket's representative y_i (sorted the same way),
        and the exact tracked sum S = n * mean is the denominator:
        ``G_sketch = sum_i (2i - n - 1) y_(i) / (n S)``. As ``G = sum_ij |x_i - x_j| / (2 n S)`` and
        ``| |y_i - y_j| - |x_i - x_j| | <= e_i + e_j`` with ``e_i = |y_i - x_i|``,
        ``|G_sketch - G| <= sum_i e_i / S <= alpha`` (DDSketch: ``e_i <= alpha x_i``). Values of a
        collapsed bucket 0 add ``count * (their bucket's largest error) / S`` to the bound.
        """
        g = np.full(self.units, np.nan)
        bound = np.full(self.units, np.nan)
        ok = self.min >= 0
        if not ok.any() or self.n == 0:
            return g, bound
        num, extra = np.zeros(self.units), np.zeros(self.units)
        z = self.bins + 1                                             # column of positive bucket 0
        collapsed = (self.pos_top != _EMPTY_TOP) & (self.pos_low < self.pos_top - self.bins + 1)
        for sl in self._chunks():
            counts, rep, _, upper = self.buckets(sl)
            c = counts.astype(np.float64)
            s = np.cumsum(c, axis=1) - c                               # ranks before each bucket
            num[sl] = (rep * c * (2.0 * s + c - self.n)).sum(axis=1)
            extra[sl] = np.where(collapsed[sl], c[:, z] * np.maximum(rep[:, z], upper[:, z] - rep[:, z]), 0.0)
        total = self.mean * self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            gs = np.where(total > 0, num / (self.n * total), 0.0)
            bd = np.where(total > 0, self.relative_accuracy + extra / total, 0.0)
        g[ok], bound[ok] = gs[ok], bd[ok]
        return g, bound

    # -- (de)serialisation ---------------------------------------------------------------------
    _ARRAYS = ("mean", "m2", "m3", "top_values", "top_indices", "bottom_values", "bottom_indices", "pos_counts",
               "neg_counts", "zero_counts", "pos_top", "neg_top", "pos_low", "neg_low")

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"units": self.units, "k": self.k, "relative_accuracy": self.relative_accuracy,
                               "bins": self.bins, "n": int(self.n), "sketch": "ddsketch-log-collapsing-lowest"}
        out.update({key: torch.from_numpy(np.ascontiguousarray(getattr(self, key)).copy()) for key in self._ARRAYS})
        return out

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "StreamingScreen":
        if "counts" in state and "sketch" not in state:
            raise RecordError("screen checkpoint was written by an older actmax (fixed-bin histogram quantiles); "
                              "it cannot be resumed: start the screen again with --overwrite")
        try:
            s = cls(int(state["units"]), int(state["k"]), float(state["relative_accuracy"]), int(state["bins"]))
            s.n = int(state["n"])
            for key in cls._ARRAYS:
                arr = state[key].numpy()
                setattr(s, key, arr.astype(np.float64) if key in ("mean", "m2", "m3") else arr)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise RecordError(f"screen checkpoint is missing or has a bad field ({type(exc).__name__}: {exc})") from exc
        u = s.units
        shapes_ok = (s.mean.shape == (u,) and s.top_values.shape == s.top_indices.shape == s.bottom_values.shape
                     == s.bottom_indices.shape and s.top_values.shape[0] == u
                     and s.pos_counts.shape == (u, s.bins) and s.neg_counts.shape in ((u, 0), (u, s.bins))
                     and all(getattr(s, key).shape == (u,) for key in ("zero_counts", "pos_top", "neg_top",
                                                                        "pos_low", "neg_low"))
                     and all(getattr(s, key).dtype == np.int64 for key in ("pos_counts", "neg_counts", "zero_counts"))
                     and int(s.pos_counts.sum() + s.neg_counts.sum() + s.zero_counts.sum()) == s.n * u)
        if not shapes_ok:
            raise RecordError("screen checkpoint arrays have inconsistent shapes (corrupt checkpoint?)")
        return s


def _shift_window(counts: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Move each row's bucket window up by ``shift`` (U,) buckets, collapsing what falls off into bucket 0."""
    rows = np.flatnonzero(shift > 0)
    if rows.size == 0:
        return counts
    width = counts.shape[1]
    for i in range(0, rows.size, _READ_CHUNK):       # a few rows at a time: small temporaries
        r = rows[i:i + _READ_CHUNK]
        sub, s = counts[r], shift[r]
        j = np.arange(width, dtype=np.int64)[None, :] + s[:, None]
        moved = np.take_along_axis(sub, np.minimum(j, width - 1), axis=1)
        moved[j > width - 1] = 0
        moved[:, 0] = np.cumsum(sub, axis=1)[np.arange(r.size), np.minimum(s, width - 1)]
        counts[r] = moved
    return counts


# ============================================================================================
# The screen
# ============================================================================================
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
    from actmax.core.records import atomic_write_bytes

    for name, df in ((TABLE, table), (STATS, stats)):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(rec_path / f"{name}.parquet", buf.getvalue())
        atomic_write_bytes(rec_path / f"{name}.csv", df.to_csv(index=False).encode())


def _make_scorer(scorer: Any, device: torch.device) -> torch.nn.Module:
    from actmax.core.registry import scorers
    s = scorers.create(scorer)
    return s.to(device).eval()


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
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    from actmax.core.evolve import check_device

    dev = check_device(device)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    image_set = images if isinstance(images, _ImageSet) else open_images(
        images, size=size, channels=channels, key=key, layout=layout)
    model = _make_scorer(scorer, dev)
    state = StreamingScreen(int(model.units), k=int(k), relative_accuracy=float(relative_accuracy), bins=int(bins))
    rec = None
    spec = {"scorer": spec_text(scorer), "images": image_set.describe(), "fingerprint": image_set.fingerprint(),
            "k": int(k), "batch_size": int(batch_size), "num_workers": int(num_workers),
            "relative_accuracy": float(relative_accuracy), "bins": int(bins),
            "checkpoint_every": int(checkpoint_every), "device": device,
            "montage_units": None if montage_units is None else [int(u) for u in montage_units],
            "max_montages": int(max_montages)}
    if out_dir is not None:
        from actmax.core.records import RunRecord
        rec = RunRecord.create(out_dir, kind="screen", spec=spec, overwrite=overwrite)
    try:
        return _run(model, image_set, state, rec, spec=spec, start=0, progress=progress)
    finally:
        if rec is not None:
            rec.close()


def _checkpoint_state(state: StreamingScreen, position: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {"next_index": position, "batch_size": int(spec["batch_size"]), "fingerprint": spec["fingerprint"],
            "screen": state.state_dict()}


def _run(model: torch.nn.Module, image_set: _ImageSet, state: StreamingScreen, rec: Any, *, spec: dict[str, Any],
         start: int, progress: bool | None) -> ScreenResult:
    from actmax.core.progress import progress_bar

    t0 = time.time()
    dev = next((b.device for b in list(model.parameters()) + list(model.buffers())), torch.device("cpu"))
    batch_size, workers = int(spec["batch_size"]), int(spec["num_workers"])
    loader = DataLoader(_Indexed(image_set, start), batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=_collate, drop_last=False, persistent_workers=False)
    names = list(getattr(model, "unit_names", [str(i) for i in range(state.units)]))
    bar = progress_bar(progress, total=len(image_set), initial=start, desc="screen", unit="img", leave=False)
    position, batches = start, 0
    try:
        with torch.no_grad():
            for batch in loader:
                resp = model(batch.to(dev))
                state.update(resp.detach().float().cpu().numpy(), position)
                position += batch.shape[0]
                batches += 1
                bar.update(batch.shape[0])
                if rec is not None and batches % int(spec["checkpoint_every"]) == 0 and position < len(image_set):
                    rec.checkpoint(_checkpoint_state(state, position, spec), step=position)
    finally:
        bar.close()
    elapsed = rec.elapsed() if rec is not None else time.time() - t0
    result = _result(state, image_set, names, rec, elapsed)
    if rec is not None:
        _finish(rec, result, spec)
    return result


def _result(state: StreamingScreen, image_set: _ImageSet, names: list[str], rec: Any, elapsed: float) -> ScreenResult:
    table, stats = _tables(state, image_set, names)
    return ScreenResult(state.top_values, state.top_indices, state.bottom_values, state.bottom_indices, table, stats,
                        state, image_set, names, None if rec is None else rec.path, elapsed)


def _finish(rec: Any, result: ScreenResult, spec: dict[str, Any], checkpoint: bool = True) -> None:
    """Derived files (rebuildable from the final checkpoint), final checkpoint, sealed manifest."""
    from actmax.core.apps.plots import plot_mai_lai, plot_screen_summary

    _write_tables(rec.path, result.table, result.stats)
    units = spec.get("montage_units")
    if units is None:
        units = list(range(min(int(spec.get("max_montages", 16)), len(result.unit_names))))
    for u in units:
        if not 0 <= int(u) < len(result.unit_names):
            raise IndexError(f"montage unit {u} out of range: the scorer has {len(result.unit_names)} units")
        plot_mai_lai(result.mais(int(u)), result.lais(int(u)), result.top_values[u], result.bottom_values[u],
                     rec.path / "images" / f"unit_{int(u):04d}.png", title=f"unit {result.unit_names[u]}")
    plot_screen_summary(result, rec.path / "screen_summary.png")
    if checkpoint:   # a repair keeps the verified final checkpoint as it is
        rec.checkpoint(_checkpoint_state(result.state, int(result.state.n), spec), step=int(result.state.n))
    rec.finish(images=int(result.state.n), units=len(result.unit_names))




def resume_screen(out_dir: str | Path, *, scorer: Any = None, progress: bool | None = None, trust: bool = False,
                  repair: bool = False) -> ScreenResult:
    """Continue a killed screen from its checkpoint; the result equals an uninterrupted screen.

    A screen started from a scorer spec is re-created from it; one started from a live scorer
    needs it again as ``scorer``. Same lifecycle rules as every run kind: a finished screen is
    re-verified and its result returned; ``repair`` rebuilds the tables and plots from the
    final checkpoint; ``trust`` allows specs that import non-plugin modules.
    """
    from actmax.core.records import RunRecord

    rec, manifest = RunRecord.open_for_resume(out_dir, "screen", trust=trust, allow_live=scorer is not None)
    try:
        return _resume(rec, manifest, scorer=scorer, progress=progress, repair=repair)
    finally:
        rec.close()


def _resume(rec: Any, manifest: dict[str, Any], *, scorer: Any, progress: bool, repair: bool) -> ScreenResult:
    out_dir = rec.path
    spec = manifest["spec"]
    finished = manifest.get("status") == "finished"
    bad = rec.verify_finished(repair=repair) if finished else []
    ckpt, meta = rec.resume_state(repair=repair)
    scorer_spec = scorer if scorer is not None else spec.get("scorer")
    if scorer_spec is None:
        raise RecordError(f"{out_dir}: the screen was run with a live scorer object; pass it again as scorer=")
    try:
        d = spec["images"]
        image_set = open_images(d["path"], size=d.get("size"), channels=d.get("channels"), key=d.get("key"),
                                layout=d.get("layout") or "auto")
        fingerprint, batch_size = spec["fingerprint"], int(spec["batch_size"])
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{out_dir}: the manifest's spec lacks {exc}") from None
    if image_set.fingerprint() != fingerprint:
        raise RecordError(f"{out_dir}: the image set at {d['path']!r} changed since the screen started "
                          "(files added, removed or resized); start a new screen")
    model = _make_scorer(scorer_spec, torch.device(spec["device"]) if spec.get("device") else torch.device("cpu"))
    if ckpt is None and (finished or repair):
        raise RecordError(f"{out_dir}: the checkpoint is missing, so nothing can be verified or rebuilt; "
                          "start the screen again with --overwrite")
    if ckpt is not None:
        if ckpt.get("fingerprint") != fingerprint or int(ckpt.get("batch_size", -1)) != batch_size:
            raise RecordError(f"{out_dir}: checkpoint does not belong to this screen's spec")
        try:
            state = StreamingScreen.from_state_dict(ckpt["screen"])
            start = int(ckpt["next_index"])
        except KeyError as exc:
            raise RecordError(f"{out_dir}: checkpoint is missing {exc}") from None
        if state.units != int(model.units):
            raise RecordError(f"{out_dir}: checkpoint has {state.units} units, the scorer {model.units}")
        if not 0 < start <= len(image_set) or state.n != start or int(meta.get("step", -1)) != start:
            raise RecordError(f"{out_dir}: checkpoint position {start} does not fit the {len(image_set)} images")
    else:
        if "relative_accuracy" not in spec:
            raise RecordError(f"{out_dir}: the screen was started by an older actmax (fixed-bin histogram "
                              "quantiles); start it again with --overwrite")
        state = StreamingScreen(int(model.units), k=int(spec["k"]), relative_accuracy=float(spec["relative_accuracy"]),
                                bins=int(spec["bins"]))
        start = 0
    if finished:
        if start != len(image_set):
            raise RecordError(f"{out_dir}: finished manifest, but the checkpoint is at image {start} of {len(image_set)}")
        names = list(getattr(model, "unit_names", [str(i) for i in range(state.units)]))
        result = _result(state, image_set, names, rec, float(manifest.get("elapsed_s", 0.0)))
        if bad:
            rec.start_clock(float(manifest.get("elapsed_s", 0.0)))
            _finish(rec, result, spec, checkpoint=False)
            rec.report_repair([b for b in bad if (rec.path / b).exists()], [b for b in bad if not (rec.path / b).exists()])
        return result
    rec.mark_resumed(manifest)
    return _run(model, image_set, state, rec, spec=spec, start=start, progress=progress)


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

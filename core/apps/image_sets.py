"""Image sets a screen streams: a folder of PNG/JPEG files (recursive) or a .npy/.npz array.

Each set has a stable ``fingerprint`` (what a resumed screen checks) and ``describe()`` (what the
record's spec stores); ``batch`` reads images by index (the MAIs / LAIs of a finished screen).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from actmax.core.errors import ContractError, InputError, MissingFileError

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "ArrayImages", "open_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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
            raise MissingFileError(f"image folder {str(self.root)!r} does not exist")
        if channels not in (None, 1, 3):
            raise InputError(f"channels must be 1, 3 or None (as stored), got {channels}")
        self.size, self.channels = size, channels
        self.files = sorted((p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                            key=lambda p: p.relative_to(self.root).as_posix())
        if not self.files:
            raise InputError(f"image folder {str(self.root)!r} holds no {'/'.join(IMAGE_SUFFIXES)} files")
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
            raise InputError(f"cannot read image {str(path)!r}: {exc}") from exc
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
            raise InputError(f"float image has values outside [0, 1] ([{arr.min():.4g}, {arr.max():.4g}])")
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
            raise MissingFileError(f"array file {str(self.path)!r} does not exist")
        if self.path.suffix.lower() not in (".npy", ".npz"):
            raise InputError(f"array datasets must be .npy or .npz files, got {str(self.path)!r}")
        if channels not in (None, 1, 3):
            raise InputError(f"channels must be 1, 3 or None (as stored), got {channels}")
        self.key, self.size, self.channels = key, size, channels
        self._array: np.ndarray | None = None
        arr = self._open()
        self.shape, self.dtype = tuple(arr.shape), arr.dtype
        self.layout = _detect_layout(self.shape, layout, str(self.path))
        if not (self.dtype == np.uint8 or np.issubdtype(self.dtype, np.floating)):
            raise InputError(f"{str(self.path)!r}: images must be uint8 or float, got dtype {self.dtype}")
        if self.shape[0] == 0:
            raise InputError(f"{str(self.path)!r} holds no images (shape {self.shape})")

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
                                raise InputError(f"{str(self.path)!r} holds several arrays {names}; choose one with key=")
                            key = names[0]
                        elif self.key not in names:
                            raise InputError(f"{str(self.path)!r} has no array {self.key!r}; it holds {names}")
                        else:
                            key = self.key
                        self._array = z[key]
            except ValueError as exc:
                if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                    raise InputError(f"{str(self.path)!r} holds Python objects (pickled); actmax reads only "
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
        raise InputError(f"layout must be one of {layouts}, got {layout!r}")
    if len(shape) == 3:
        if layout not in ("auto", "NHW"):
            raise InputError(f"{where}: a 3-d array {shape} is (N, H, W), not {layout}")
        return "NHW"
    if len(shape) != 4:
        raise InputError(f"{where}: expected images (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {shape}")
    last, second = shape[-1] in (1, 3), shape[1] in (1, 3)
    if layout == "auto":
        if last and not second:
            return "NHWC"
        if second and not last:
            return "NCHW"
        if last and second:
            raise InputError(f"{where}: shape {shape} could be (N, H, W, C) or (N, C, H, W); pass layout=")
        raise InputError(f"{where}: shape {shape} has no channel axis of size 1 or 3")
    if (layout == "NHWC" and not last) or (layout == "NCHW" and not second) or layout == "NHW":
        raise InputError(f"{where}: shape {shape} does not fit layout {layout} (channels must be 1 or 3)")
    return layout


def open_images(path: str | Path, *, size: int | None = None, channels: int | None = None,
                key: str | None = None, layout: str = "auto") -> _ImageSet:
    """An image folder (PNG/JPEG, recursive) or an array file (.npy/.npz) as an indexable set."""
    p = Path(path).expanduser()
    if p.is_dir():
        return ImageFolder(p, size=size, channels=channels)
    if p.is_file():
        return ArrayImages(p, key=key, layout=layout, size=size, channels=channels)
    raise MissingFileError(f"image set {str(p)!r} does not exist (give a folder of PNG/JPEG files or a .npy/.npz array)")


def _collate(items: list[torch.Tensor], dataset: Any = None) -> torch.Tensor:
    """Stack images; grey ones are promoted to RGB when a batch mixes both; sizes must agree."""
    if any(t.shape[0] == 3 for t in items):
        items = [t.expand(3, -1, -1) if t.shape[0] == 1 else t for t in items]
    shapes = {tuple(t.shape[-2:]) for t in items}
    if len(shapes) > 1:
        raise InputError(f"images in one batch have different sizes {sorted(shapes)}; pass size= "
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



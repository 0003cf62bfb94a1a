"""PNG previews of stimuli (8-bit, upscaled, labelled as previews; the native stimuli are in the record)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from actmax.core import files as fileio
from actmax.core.records.layout import PREVIEW_KEY, STIMULI, STIMULUS_KEY


def save_image(image: torch.Tensor, path: str | Path, *, stimulus: str | None = None) -> None:
    """One (C, H, W) image in [0, 1] as a PNG preview (atomic); ``stimulus`` names its native copy."""
    save_montage(image[None], path, nrow=1, padding=0, stimulus=stimulus)


def save_montage(images: torch.Tensor, path: str | Path, *, nrow: int = 8, padding: int = 2,
                 upscale_to: int = 96, stimulus: str | None = None, labels: Sequence[str] | None = None,
                 title: str | None = None) -> None:
    """A grid of (N, C, H, W) images in [0, 1] as a PNG preview (atomic); small images are upscaled (nearest).

    ``labels`` (one per image, e.g. a generation number or unit and pole) are written under the
    tiles and ``title`` above the grid (see :mod:`actmax.core.montage_labels`). The PNG's text says
    it is a preview (8-bit, upscaled) and, with ``stimulus``, which entry of the record's
    ``stimuli.safetensors`` holds the native image, so analyses read that instead.
    """
    import torch.nn.functional as F
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    c, h, w = images.shape[1:]
    factor = int(np.ceil(upscale_to / w)) if w < upscale_to else 1
    if factor > 1:
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
    grid = make_grid(images, nrow=max(1, nrow), padding=padding, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    if c == 1:
        arr = arr[..., 0]
    if labels is not None or title:
        from actmax.core.montage_labels import label_grid

        arr = label_grid(arr, n=len(images), nrow=max(1, nrow), tile=images.shape[-2:], padding=padding,
                         labels=labels, title=title)
    info = PngInfo()
    info.add_text(PREVIEW_KEY, f"8-bit preview of {len(images)} stimuli of {c}x{h}x{w}, upscaled x{factor} "
                               f"(nearest); native float stimuli: {STIMULI}")
    if stimulus is not None:
        info.add_text(STIMULUS_KEY, stimulus)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", pnginfo=info)
    fileio.atomic_write_bytes(Path(path), buf.getvalue())

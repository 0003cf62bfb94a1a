"""Natural photographs shipped with scikit-image, and random patches cut from them.

These real photographs are actmax's embedded natural-image source: the Fourier magnitude
prior is computed from them, and the in-silico lab records twin training data on them.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from actmax.core.errors import InputError

#: scikit-image photographs of natural scenes and objects (no synthetic or microscopy images).
GREY_PHOTOS = ("camera", "moon", "coins", "grass", "gravel", "brick", "clock", "page", "text")
RGB_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@lru_cache(maxsize=2)
def photographs(channels: int = 1) -> tuple[np.ndarray, ...]:
    """The photographs as float32 arrays in [0, 1]: (H, W) for grey, (H, W, 3) for RGB.

    Grey includes the RGB photographs converted to luminance.
    """
    import skimage.color
    import skimage.data

    if channels not in (1, 3):
        raise InputError(f"channels must be 1 or 3, got {channels}")
    out = []
    names = RGB_PHOTOS if channels == 3 else RGB_PHOTOS + GREY_PHOTOS
    for name in names:
        img = getattr(skimage.data, name)()
        img = img.astype(np.float32) / 255.0
        if channels == 1 and img.ndim == 3:
            img = skimage.color.rgb2gray(img[..., :3]).astype(np.float32)
        out.append(img)
    return tuple(out)


def sample_patches(n: int, size: int, *, channels: int = 1, seed: int = 0,
                   scales: tuple[float, float] = (1.0, 2.0)) -> np.ndarray:
    """``n`` random square patches (n, C, size, size) in [0, 1] from the photographs.

    Each patch is cut at a random position, at a random scale (side = size * s, s drawn
    log-uniformly from ``scales``) and resized to ``size`` with antialiasing, with a random
    horizontal flip.
    """
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    photos = photographs(channels)
    out = np.empty((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        img = photos[rng.integers(len(photos))]
        side = int(round(size * np.exp(rng.uniform(np.log(scales[0]), np.log(scales[1])))))
        side = min(side, img.shape[0], img.shape[1])
        y = rng.integers(0, img.shape[0] - side + 1)
        x = rng.integers(0, img.shape[1] - side + 1)
        crop = img[y:y + side, x:x + side]
        crop = crop[None] if crop.ndim == 2 else crop.transpose(2, 0, 1)
        if rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(crop))[None]
        if side != size:
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = t[0].clamp(0, 1).numpy()
    return out

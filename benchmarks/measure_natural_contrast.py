"""Measure the default contrast budget: the median RMS contrast of natural image patches.

Random square crops (1/4 to 1/2 of the photo side, 40 per photo) of scikit-image's photographs,
RMS contrast (``actmax.core.transforms.rms_contrast``) measured at 32, 64 and 112 px. The result is
``actmax.core.synthesize.NATURAL_CONTRAST_BY_SIZE``, the budget a scorer without
``input_contrast`` gets. Run: ``python benchmarks/measure_natural_contrast.py`` (a few CPU-seconds).
"""
from __future__ import annotations

import numpy as np
import skimage.data
import torch

from actmax.core.transforms import rms_contrast

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "coins", "moon", "page", "grass", "gravel", "brick", "cell", "colorwheel")
SIZES = (32, 64, 112)


def main() -> None:
    rng = np.random.default_rng(0)
    values: dict[int, list[float]] = {s: [] for s in SIZES}
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        t = torch.tensor(img).permute(2, 0, 1)[None]
        h, w = t.shape[2:]
        for _ in range(40):
            side = int(rng.integers(min(h, w) // 4, min(h, w) // 2))
            y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            patch = t[:, :, y:y + side, x:x + side]
            for s in SIZES:
                values[s].append(float(rms_contrast(patch, s)))
    for s in SIZES:
        q25, q50, q75 = np.percentile(values[s], [25, 50, 75])
        print(f"{s:4d} px: median RMS contrast {q50:.3f} (IQR {q25:.3f}-{q75:.3f}, {len(values[s])} patches)")


if __name__ == "__main__":
    main()

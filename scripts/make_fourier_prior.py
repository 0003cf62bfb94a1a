"""Compute the natural-image Fourier magnitude prior and colour decorrelation matrix.

Source: the real photographs that scikit-image ships (core.natural_images). Output:
generators/data/fourier_prior.npz with, at native size N=128,
  grey (1, N, N//2+1)  mean |rfft2| of Hann-windowed, mean-subtracted grey patches,
  rgb  (3, N, N//2+1)  the same on colour-decorrelated channels,
  color_sqrt (3, 3)    square root of the RGB covariance (decorrelated -> RGB),
stored fftshift-ed along the row (vertical frequency) axis, normalised to mean 1.
Run: python scripts/make_fourier_prior.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from actmax.core.apps.natural_images import RGB_PHOTOS, GREY_PHOTOS, sample_patches

N = 128
PATCHES = 4000


def mean_magnitude(patches: np.ndarray) -> np.ndarray:
    window = np.outer(np.hanning(N), np.hanning(N)).astype(np.float32)
    x = patches - patches.mean(axis=(-2, -1), keepdims=True)
    mag = np.abs(np.fft.rfft2(x * window, axes=(-2, -1))).mean(axis=0)
    mag = np.fft.fftshift(mag, axes=-2)
    return (mag / mag.mean()).astype(np.float32)


def main() -> None:
    grey = sample_patches(PATCHES, N, channels=1, seed=1)
    rgb = sample_patches(PATCHES, N, channels=3, seed=2)
    pixels = rgb.transpose(1, 0, 2, 3).reshape(3, -1)
    cov = np.cov(pixels)
    u, s, _ = np.linalg.svd(cov)
    color_sqrt = u @ np.diag(np.sqrt(s))
    color_sqrt = color_sqrt / np.linalg.norm(color_sqrt, axis=0).max()
    decorrelated = np.einsum("ij,njhw->nihw", np.linalg.inv(color_sqrt), rgb - rgb.mean(axis=(0, 2, 3), keepdims=True))
    out = Path(__file__).resolve().parents[1] / "generators" / "data" / "fourier_prior.npz"
    provenance = {"source": "scikit-image photographs", "grey": list(RGB_PHOTOS + GREY_PHOTOS),
                  "rgb": list(RGB_PHOTOS), "patches": PATCHES, "size": N,
                  "layout": "mean |rfft2| of Hann-windowed patches, fftshift-ed on axis -2, mean 1"}
    np.savez_compressed(out, grey=mean_magnitude(grey), rgb=mean_magnitude(decorrelated),
                        color_sqrt=color_sqrt.astype(np.float32), provenance=json.dumps(provenance))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

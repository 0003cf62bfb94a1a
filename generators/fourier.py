"""Fourier space: images from spectra shaped by a natural-image magnitude prior.

The prior (``generators/data/fourier_prior.npz``, made by ``scripts/make_fourier_prior.py``
from scikit-image's photographs) is the mean rfft2 magnitude of natural patches at 128 px,
stored fftshift-ed on the vertical-frequency axis so it can be resampled in normalised
frequency to any image size. RGB images are built in a colour-decorrelated basis and
recorrelated with the photographs' colour covariance square root (as in Lucent/MACO).
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from actmax.core.registry import generators
from actmax.generators.base import Generator, seeded_normal, size_rule_preset
from actmax.core.errors import InputError


@lru_cache(maxsize=1)
def _prior_file() -> dict[str, np.ndarray]:
    with resources.files("actmax.generators").joinpath("data/fourier_prior.npz").open("rb") as fh:
        data = np.load(fh, allow_pickle=False)
        return {k: data[k] for k in data.files}


def magnitude_prior(size: int, channels: int) -> np.ndarray:
    """Prior magnitude (C, size, size//2+1), unshifted rfft layout, resampled to ``size``."""
    from scipy.interpolate import RegularGridInterpolator

    native = _prior_file()["grey" if channels == 1 else "rgb"]
    n = native.shape[-2]
    fy_native = (np.arange(n) - n // 2) / n
    fx_native = np.arange(native.shape[-1]) / n
    fy = np.fft.fftfreq(size)
    fx = np.arange(size // 2 + 1) / size
    grid = np.stack(np.meshgrid(fy, fx, indexing="ij"), axis=-1)
    out = np.empty((channels, size, size // 2 + 1), dtype=np.float32)
    for c in range(channels):
        interp = RegularGridInterpolator((fy_native, fx_native), native[c], bounds_error=False,
                                         fill_value=None, method="linear")
        out[c] = interp(grid)
    out = np.maximum(out, 1e-6)
    out[:, 0, 0] = 0.0  # no DC: the mean luminance is fixed at grey
    return out / out.mean()


def color_sqrt() -> np.ndarray:
    """Decorrelated -> RGB colour matrix (3, 3) of the photographs."""
    return _prior_file()["color_sqrt"]


@generators.register("fourier")
class FourierGenerator(Generator):
    """Spectrum (complex, or phase only) on a natural-image magnitude prior; grey or RGB.

    Options:
        size: image side in pixels; the code holds one coefficient per rfft2 bin (288-d at 16 px grey)
        channels: 1 (grey) or 3 (RGB, built in a colour-decorrelated basis)
        mode: 'complex' (real and imaginary parts: 2 entries per bin) or 'phase' (phases only, magnitude fixed)
        contrast: pixel contrast (std before the squashing function) of a code drawn by init_codes
    """

    def __init__(self, size: int = 64, channels: int = 1, mode: str = "complex",
                 contrast: float = 1.0) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise InputError(f"fourier: channels must be 1 or 3, got {channels}")
        if mode not in ("complex", "phase"):
            raise InputError(f"fourier: mode must be 'complex' or 'phase', got {mode!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"fourier: size must be an integer >= 1, got {size!r}")
        from actmax.core.bounds import check_memory   # the prior's interpolation grid: ~48 bytes per coefficient
        check_memory(48.0 * channels * size * (size // 2 + 1), f"fourier: size={size}")
        self.image_size, self.channels, self.mode = int(size), int(channels), mode
        self.spec_shape = (self.channels, self.image_size, self.image_size // 2 + 1)
        n_coef = int(np.prod(self.spec_shape))
        self.dim = n_coef * (2 if mode == "complex" else 1)
        self.default_sigma = 0.5 if mode == "complex" else 0.6
        self.register_buffer("magnitude", torch.from_numpy(magnitude_prior(self.image_size, self.channels)))
        self.register_buffer("colors", torch.from_numpy(color_sqrt()))
        # Scale so that a code from init_codes gives pre-squash pixels of std ~ contrast.
        with torch.no_grad():
            self.register_buffer("scale", torch.ones(()))
            probe = self._linear(self.init_codes(16, seed=12345))
            self.scale.fill_(float(contrast) / float(probe.std()))

    @property
    def optimizer_preset(self) -> str:
        """No published lab preset: kept behaviour, pycma up to 1000-d and CholeskyCMAES above,
        starting at ``default_sigma``."""
        return size_rule_preset(self.dim, self.default_sigma)

    def _linear(self, codes: torch.Tensor) -> torch.Tensor:
        n = codes.shape[0]
        if self.mode == "complex":
            z = codes.view(n, *self.spec_shape, 2)
            spectrum = torch.complex(z[..., 0], z[..., 1]) * self.magnitude
        else:
            phase = codes.view(n, *self.spec_shape)
            spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        x = torch.fft.irfft2(spectrum, s=(self.image_size, self.image_size), norm="ortho")
        if self.channels == 3:
            x = torch.einsum("ij,njhw->nihw", self.colors, x)
        return x * self.scale

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._linear(codes))

    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        if self.mode == "phase":
            g = torch.Generator().manual_seed(int(seed))
            return (torch.rand(n, self.dim, generator=g) * 2 - 1) * math.pi
        return seeded_normal(n, self.dim, seed)

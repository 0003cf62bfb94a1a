"""Pixel space: every code entry is one pixel, squashed into [0, 1]."""
from __future__ import annotations

import torch

from actmax.core.registry import generators
from actmax.generators.base import Generator, seeded_normal, size_rule_preset
from actmax.core.errors import InputError


@generators.register("pixel")
class PixelGenerator(Generator):
    """Pixels through a squashing function (sigmoid, or a hard clip around grey).

    Options:
        size: image side in pixels (the code has channels x size x size entries)
        channels: 1 (grey) or 3 (RGB)
        squash: 'sigmoid' (smooth, unbounded codes) or 'clip' (grey + code, clipped to [0, 1])
        init_std: standard deviation of random start codes
    """

    def __init__(self, size: int = 64, channels: int = 1, squash: str = "sigmoid",
                 init_std: float = 0.1) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise InputError(f"pixel: channels must be 1 or 3, got {channels}")
        if squash not in ("sigmoid", "clip"):
            raise InputError(f"pixel: squash must be 'sigmoid' or 'clip', got {squash!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"pixel: size must be an integer >= 1, got {size!r}")
        self.image_size, self.channels, self.squash = int(size), int(channels), squash
        self.dim = self.channels * self.image_size ** 2
        self.init_std = float(init_std)
        self.default_sigma = 0.5 if squash == "sigmoid" else 0.1
        #: codes are laid out as images, so gradient transforms (blur) may treat them as such
        self.code_shape = (self.channels, self.image_size, self.image_size)

    @property
    def optimizer_preset(self) -> str:
        """No published lab preset: kept behaviour, pycma up to 1000-d and CholeskyCMAES above,
        starting at ``default_sigma``."""
        return size_rule_preset(self.dim, self.default_sigma)

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        x = codes.view(-1, *self.code_shape)
        return torch.sigmoid(x) if self.squash == "sigmoid" else (x + 0.5).clamp(0, 1)

    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        scale = 1.0 if self.squash == "sigmoid" else 0.25
        return seeded_normal(n, self.dim, seed, std=self.init_std * scale)

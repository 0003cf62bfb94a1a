"""Gabor space: a sum of K parametric Gabor patches on grey."""
from __future__ import annotations

import math

import torch

from actmax.core.registry import generators
from actmax.generators.base import Generator, seeded_normal, size_rule_preset
from actmax.core.errors import InputError

PARAMS = ("x", "y", "orientation", "frequency", "phase", "size", "aspect", "contrast")


@generators.register("gabor")
class GaborGenerator(Generator):
    """K Gabor patches (position, orientation, spatial frequency, phase, size, aspect, contrast).

    Each patch has 8 unconstrained code entries mapped to bounded parameters: position in
    the image, orientation (periodic), frequency log-spaced in [min_cycles, max_cycles] cycles
    per image, phase (periodic), envelope sigma in
    [min_size, max_size] of the image, aspect ratio in [0.5, 2], signed contrast.

    Options:
        size: image side in pixels
        channels: 1 (grey) or 3 (RGB)
        patches: number of Gabor patches summed (8 code entries each)
        min_cycles: lowest spatial frequency, cycles per image
        max_cycles: highest spatial frequency, cycles per image
        min_size: smallest envelope sigma, as a fraction of the image
        max_size: largest envelope sigma, as a fraction of the image
    """

    def __init__(self, size: int = 64, channels: int = 1, patches: int = 1,
                 min_cycles: float = 1.5, max_cycles: float = 16.0,
                 min_size: float = 0.03, max_size: float = 0.3) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise InputError(f"gabor: channels must be 1 or 3, got {channels}")
        for key, value in (("size", size), ("patches", patches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"gabor: {key} must be an integer >= 1, got {value!r}")
        self.image_size, self.channels, self.patches = int(size), int(channels), int(patches)
        self.dim = 8 * self.patches
        self.default_sigma = 0.5
        self.ranges = dict(min_cycles=min_cycles, max_cycles=max_cycles, min_size=min_size, max_size=max_size)
        axis = (torch.arange(self.image_size, dtype=torch.float32) + 0.5) / self.image_size
        self.register_buffer("yy", axis.view(1, 1, -1, 1))
        self.register_buffer("xx", axis.view(1, 1, 1, -1))

    @property
    def optimizer_preset(self) -> str:
        """No published lab preset: kept behaviour, pycma up to 1000-d and CholeskyCMAES above,
        starting at ``default_sigma``."""
        return size_rule_preset(self.dim, self.default_sigma)

    def parameters_of(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bounded Gabor parameters, each (n, K), from codes (n, 8K)."""
        p = codes.view(codes.shape[0], self.patches, 8)
        r = self.ranges
        lo_f, hi_f = math.log(r["min_cycles"]), math.log(r["max_cycles"])
        return {
            "x": torch.sigmoid(p[..., 0]),
            "y": torch.sigmoid(p[..., 1]),
            "orientation": p[..., 2] * (math.pi / 2),
            "frequency": torch.exp(lo_f + (hi_f - lo_f) * torch.sigmoid(p[..., 3])),
            "phase": p[..., 4] * math.pi,
            "size": r["min_size"] + (r["max_size"] - r["min_size"]) * torch.sigmoid(p[..., 5]),
            "aspect": torch.exp(math.log(2.0) * torch.tanh(p[..., 6])),
            "contrast": torch.tanh(p[..., 7]),
        }

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        q = {k: v[..., None, None] for k, v in self.parameters_of(codes).items()}
        dx, dy = self.xx - q["x"], self.yy - q["y"]
        cos, sin = torch.cos(q["orientation"]), torch.sin(q["orientation"])
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        envelope = torch.exp(-(u ** 2 + (v * q["aspect"]) ** 2) / (2 * q["size"] ** 2))
        carrier = torch.cos(2 * math.pi * q["frequency"] * u + q["phase"])
        image = 0.5 + 0.5 * torch.tanh((q["contrast"] * envelope * carrier).sum(1, keepdim=True) * 2)
        return image.expand(-1, self.channels, -1, -1) if self.channels == 3 else image

    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        return seeded_normal(n, self.dim, seed)

"""Example actmax generator plugin: a grating whose orientation, frequency, phase and contrast are the code.

A generator is a ``torch.nn.Module`` with ``dim``, ``channels``, ``image_size`` (ints),
``default_sigma`` (a step size for evolution in this space), ``forward(codes (n, dim)) ->
images (n, channels, image_size, image_size)`` in [0, 1] (differentiable) and
``init_codes(n, seed)`` (deterministic per seed). Subclassing
:class:`actmax.generators.base.Generator` checks the codes and leaves ``render`` to write.

Register it with an entry point (``pyproject.toml``)::

    [project.entry-points."actmax.generators"]
    example_grating = "actmax_examples.example_generator:GratingGenerator"

or use it unregistered: ``-g path=actmax_examples.example_generator:GratingGenerator,size=32``.
"""
from __future__ import annotations

import math

import torch

from actmax.generators.base import Generator, seeded_normal


class GratingGenerator(Generator):
    """Sinusoidal grating: code = (orientation, log spatial frequency, phase, contrast logit)."""

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.image_size, self.channels, self.dim, self.default_sigma = int(size), 1, 4, 0.5
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, self.image_size), torch.linspace(-1, 1, self.image_size),
                                indexing="ij")
        self.register_buffer("xs", xs)          # buffers follow .to(device)
        self.register_buffer("ys", ys)

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        theta, log_freq, phase, contrast = (codes[:, i, None, None] for i in range(4))
        freq = 2 * math.pi * 4 * torch.exp(log_freq)              # about 4 cycles per image at code 0
        wave = torch.sin(freq * (self.xs * torch.cos(theta) + self.ys * torch.sin(theta)) + phase)
        images = 0.5 + 0.5 * torch.sigmoid(contrast) * wave       # stays inside [0, 1]
        return images[:, None]

    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        return seeded_normal(n, self.dim, seed, std=0.5)

"""Example actmax scorer plugin: two "units" that like bright left and bright right halves.

A scorer is a ``torch.nn.Module`` with ``units`` (int), ``differentiable`` (bool) and
``forward(images (B, C, H, W) in [0, 1]) -> responses (B, units)``. Subclassing
:class:`actmax.scorers.base.Scorer` checks the images and the output shape and leaves
``respond`` to write; a scorer resizes and converts colour itself (``to_channels``, ``to_size``).

Entry point::

    [project.entry-points."actmax.scorers"]
    example_halves = "actmax_examples.example_scorer:HalvesScorer"
"""
from __future__ import annotations

import torch

from actmax.scorers.base import Scorer, to_channels


class HalvesScorer(Scorer):
    """Unit 0: left half brighter than the right; unit 1: the reverse (grey input, any size)."""

    differentiable = True

    def __init__(self, gain: float = 4.0) -> None:
        super().__init__()
        self.units, self.gain = 2, float(gain)

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        grey = to_channels(images, 1)[:, 0]
        half = grey.shape[-1] // 2
        diff = grey[..., :half].mean((-2, -1)) - grey[..., half:].mean((-2, -1))
        return torch.stack([self.gain * diff, -self.gain * diff], dim=1)

"""Scorer contract: images (B, C, H, W) in [0, 1] -> responses (B, units)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from actmax.core.contracts import LUMINANCE, check_images, check_scores, to_channels, to_size  # noqa: F401


class Scorer(nn.Module, ABC):
    """A set of units that respond to images.

    Subclasses set ``units`` and ``differentiable`` and implement :meth:`respond`, which gets
    checked images and does its own resizing / colour conversion / normalisation.
    ``unit_names`` optionally labels the units.
    """

    units: int
    differentiable: bool = True
    #: L2 norm of (image - 0.5) that suits this scorer's input, if it has one (for synthesis).
    input_norm: float | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, where=f"{type(self).__name__} input")
        out = self.respond(images)
        return check_scores(out, images.shape[0], self.units, where=f"{type(self).__name__} output")

    @abstractmethod
    def respond(self, images: torch.Tensor) -> torch.Tensor:
        """Checked images (B, C, H, W) -> responses (B, units)."""

    @property
    def unit_names(self) -> list[str]:
        return [str(i) for i in range(self.units)]

    def check_unit(self, unit: int) -> int:
        if not 0 <= int(unit) < self.units:
            raise IndexError(f"unit {unit} out of range: {type(self).__name__} has {self.units} units")
        return int(unit)

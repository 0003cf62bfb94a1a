"""Scorer contract: images (B, C, H, W) in [0, 1] -> responses (B, units)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from core.contracts import check_images, check_scores

LUMINANCE = (0.299, 0.587, 0.114)


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


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey <-> RGB conversion (luminance weights for RGB -> grey)."""
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 1:
        w = images.new_tensor(LUMINANCE).view(1, 3, 1, 1)
        return (images * w).sum(1, keepdim=True)
    return images.expand(-1, 3, -1, -1)


def to_size(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize to ``size``."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    shrink = images.shape[-1] > hw[1] or images.shape[-2] > hw[0]
    return F.interpolate(images, size=hw, mode="bilinear", align_corners=False, antialias=shrink)

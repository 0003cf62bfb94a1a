"""Scorer contract: images (B, C, H, W) in [0, 1] -> responses (B, units)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from actmax.core.contracts import LUMINANCE, check_images, check_scores, to_channels, to_size  # noqa: F401
from actmax.core.errors import UnitIndexError


class Scorer(nn.Module, ABC):
    """A set of units that respond to images.

    Subclasses set ``units`` and ``differentiable`` and implement :meth:`respond`, which gets
    checked images and does its own resizing / colour conversion / normalisation.
    ``unit_names`` optionally labels the units.
    """

    units: int
    differentiable: bool = True
    #: Contrast budget for synthesis, if the scorer has one: the RMS contrast (pixel std about
    #: the image's mean) of typical inputs, e.g. the median over a twin's training images.
    #: Synthesised images are scaled down to it, so MEIs are no stronger than what the scorer saw.
    input_contrast: float | None = None
    #: The mean luminance of typical inputs, if the scorer states one (e.g. its training data's):
    #: the centre at which synthesis pins or budgets the mean luminance (``luminance`` recipe
    #: option); None: grey, 0.5.
    input_mean: float | None = None
    #: Resolution (px) at which ``input_contrast`` is measured (the data's); None: as rendered.
    input_contrast_size: int | None = None
    #: Legacy budget: L2 norm of (image - 0.5) (includes the mean luminance; used only when
    #: ``input_contrast`` is unset, e.g. twins saved before the RMS budget).
    input_norm: float | None = None
    #: The square input size (px) the scorer is made for, if it has one (e.g. model neurons' RF
    #: grid); None: any size. Loops use it for reference images and previews.
    size: int | None = None
    #: The number of input channels the scorer is made for (1 grey, 3 RGB), if fixed; None: any.
    channels: int | None = None
    #: The weight file a live scorer loaded, if any, and what the registry saw it load
    #: (both go into the provenance of every run the scorer is used in).
    weights_path: str | None = None
    weights_used: tuple = ()
    #: The state the scorer responds at, if it has one (a twin's eye position / behaviour), for the manifest.
    state: dict | None = None

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
            raise UnitIndexError(f"unit {unit} out of range: {type(self).__name__} has {self.units} units")
        return int(unit)

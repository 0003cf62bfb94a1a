"""Generator contract: latent codes (n, dim) -> images (n, C, H, W) in [0, 1], differentiable."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from actmax.core.contracts import check_codes


class Generator(nn.Module, ABC):
    """A stimulus space.

    Subclasses set ``dim``, ``channels``, ``image_size`` and ``default_sigma`` (a sensible
    initial step size for evolution in this space) and implement :meth:`render` and
    :meth:`init_codes`. ``forward`` checks the codes, then renders.
    """

    dim: int
    channels: int
    image_size: int
    default_sigma: float = 1.0

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, self.dim, where=f"{type(self).__name__} codes")
        return self.render(codes)

    @abstractmethod
    def render(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (n, dim) -> images (n, channels, image_size, image_size) in [0, 1]."""

    @abstractmethod
    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        """Draw ``n`` codes from this space's own initial distribution (deterministic per seed)."""

    @property
    def device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"dim={self.dim}, channels={self.channels}, image_size={self.image_size}"


def seeded_normal(n: int, dim: int, seed: int, *, std: float = 1.0) -> torch.Tensor:
    """Standard normal codes from a private, seeded generator (no global RNG state touched)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, dim, generator=g) * std

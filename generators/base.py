"""Generator contract: latent codes (n, dim) -> images (n, C, H, W) in [0, 1], differentiable."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from actmax.core.evolve import LARGE_SPACE_DIM, default_optimizer  # noqa: F401  (one size rule, the kernel's)
from actmax.core.contracts import check_codes


class Generator(nn.Module, ABC):
    """A stimulus space.

    Subclasses set ``dim``, ``channels``, ``image_size`` and ``default_sigma`` (a sensible
    initial step size for evolution in this space) and implement :meth:`render` and
    :meth:`init_codes`. ``forward`` checks the codes, then renders.

    Each space also declares how it is searched when a run names no optimizer
    (:attr:`optimizer_preset`, a spec string: the lab's preset where one is published) and the
    radius of SphereCMA's sphere (:attr:`sphere_norm`).
    """

    dim: int
    channels: int
    image_size: int
    default_sigma: float = 1.0
    #: the shape of one code when it is an image-like array (e.g. Fourier coefficients), for the
    #: synthesis transforms; None: a flat vector
    code_shape: tuple[int, ...] | None = None
    #: the weight file a live generator loaded, and what the registry saw it load (provenance)
    weights_path: str | None = None
    weights_used: tuple = ()

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
    def optimizer_preset(self) -> str:
        """The optimizer spec used when a run names none.

        Default (spaces without a published preset): pycma's full CMA-ES up to 1000-d and the
        lab's CholeskyCMAES above, both starting at ``default_sigma``.
        """
        return size_rule_preset(self.dim, self.default_sigma)

    @property
    def sphere_norm(self) -> float:
        """SphereCMA's radius in this space: the mean norm of 64 initial codes (seed 0)."""
        with torch.no_grad():
            return round(float(self.init_codes(64, seed=0).double().norm(dim=1).mean()), 4)

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


def size_rule_preset(dim: int, sigma0: float) -> str:
    """The kernel's size rule (:func:`actmax.core.evolve.default_optimizer`: pycma's full CMA-ES up to
    1000-d, CholeskyCMAES above) at ``sigma0``."""
    return f"{default_optimizer(dim)}:sigma0={float(sigma0)!r}"

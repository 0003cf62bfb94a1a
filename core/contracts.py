"""The contracts every part obeys, checked where data crosses a module boundary.

Images: float tensors (B, C, H, W), C in {1, 3}, values in [0, 1].
Scores: float tensors (B, units).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import torch
import torch.nn.functional as F

Pole = Literal["high", "low"]
POLES: tuple[str, str] = ("high", "low")


class ContractError(ValueError):
    """Data that breaks one of actmax's contracts (shape, range, NaN)."""


_VALUE_CHECKS: ContextVar[bool] = ContextVar("actmax_value_checks", default=True)


@contextmanager
def shape_checks_only() -> Iterator[None]:
    """Inside a hot loop whose first step was fully checked: keep shape/dtype checks, skip the
    value-range/NaN checks, which need a device-to-host sync on every call."""
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def check_images(images: torch.Tensor, *, where: str = "images", range_tol: float = 1e-4) -> torch.Tensor:
    """Raise a clear error unless ``images`` is a float (B, C, H, W) tensor in [0, 1], C in {1, 3}."""
    if not isinstance(images, torch.Tensor):
        raise ContractError(f"{where}: expected a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ContractError(f"{where}: expected shape (B, C, H, W), got {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ContractError(f"{where}: expected 1 or 3 channels, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ContractError(f"{where}: expected a float tensor in [0, 1], got dtype {images.dtype}")
    if images.numel() and _VALUE_CHECKS.get() and not torch.compiler.is_compiling():
        lo, hi = torch.aminmax(images.detach())
        lo, hi = float(lo), float(hi)
        if lo != lo or hi != hi:
            raise ContractError(f"{where}: contains NaN")
        if lo < -range_tol or hi > 1 + range_tol:
            raise ContractError(f"{where}: values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return images


def check_codes(codes: torch.Tensor, dim: int, *, where: str = "codes") -> torch.Tensor:
    """Raise a clear error unless ``codes`` is a float (n, dim) tensor."""
    if not isinstance(codes, torch.Tensor):
        raise ContractError(f"{where}: expected a torch.Tensor (n, {dim}), got {type(codes).__name__}")
    if codes.ndim != 2 or codes.shape[1] != dim:
        raise ContractError(f"{where}: expected shape (n, {dim}), got {tuple(codes.shape)}")
    if not codes.is_floating_point():
        raise ContractError(f"{where}: expected a float tensor, got dtype {codes.dtype}")
    return codes


def check_scores(scores: torch.Tensor, batch: int, units: int, *, where: str = "scores") -> torch.Tensor:
    """Raise a clear error unless ``scores`` is a finite (batch, units) tensor."""
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (batch, units):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ContractError(f"{where}: expected shape ({batch}, {units}), got {shape}")
    return scores


def check_pole(pole: str) -> str:
    if pole not in POLES:
        raise ContractError(f"pole must be 'high' (MEI) or 'low' (LEI), got {pole!r}")
    return pole


@dataclass(frozen=True)
class Target:
    """One optimisation target: a unit, a pole and a seed."""

    unit: int
    pole: str = "high"
    seed: int = 0

    @property
    def sign(self) -> float:
        return 1.0 if self.pole == "high" else -1.0


def make_targets(units: Sequence[int], poles: Sequence[str] = ("high",),
                 seeds: Sequence[int] = (0,)) -> list[Target]:
    """All units x poles x seeds, in that nesting order (unit outermost)."""
    for p in poles:
        check_pole(p)
    return [Target(int(u), p, int(s)) for u in units for p in poles for s in seeds]


LUMINANCE = (0.299, 0.587, 0.114)


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

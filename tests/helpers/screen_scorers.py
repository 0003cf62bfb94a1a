"""Scorer functions for the screening tests (usable from spec strings: callable:fn=...)."""
from __future__ import annotations

import os

import torch

_CALLS = {"n": 0}


def quantised(images: torch.Tensor) -> torch.Tensor:
    """4 units: three coarse (many exact ties) quadrant means and one signed fine response."""
    g = images.mean(1)
    h, w = g.shape[-2:]
    q = [g[:, : h // 2, : w // 2].mean((1, 2)), g[:, h // 2:, : w // 2].mean((1, 2)), g[:, :, w // 2:].mean((1, 2))]
    coarse = [torch.floor(v * 6) / 6 for v in q]
    signed = g.mean((1, 2)) - 0.5
    return torch.stack(coarse + [signed], 1)


def crashing(images: torch.Tensor) -> torch.Tensor:
    """``quantised``, but raising on call number ``SCREEN_CRASH_AT`` (a simulated crash)."""
    _CALLS["n"] += 1
    at = os.environ.get("SCREEN_CRASH_AT")
    if at and _CALLS["n"] == int(at):
        raise RuntimeError("simulated crash")
    return quantised(images)

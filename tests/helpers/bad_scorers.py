"""Scorer functions that misbehave on purpose (for the bad-input tests)."""
from __future__ import annotations

import torch

from actmax.scorers.model_neurons import ModelNeurons

_NEURONS = ModelNeurons(kind="mixed", n=3, size=16, seed=0)


def nan_half(images: torch.Tensor) -> torch.Tensor:
    """Differentiable model neurons whose second half of the batch responds NaN."""
    out = _NEURONS(images)
    mask = torch.zeros_like(out)
    mask[out.shape[0] // 2:] = float("nan")
    return out + mask


def raises(images: torch.Tensor) -> torch.Tensor:
    """A scorer function with a bug."""
    raise RuntimeError("bug in the lab's scoring code")


def flat(images: torch.Tensor) -> torch.Tensor:
    """Two 'neurons' that never respond (no reliable neuron to fit a twin to)."""
    return torch.zeros(images.shape[0], 2)

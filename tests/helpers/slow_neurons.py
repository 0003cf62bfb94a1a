"""Scorer functions for tests that must be slow (to be killed mid-run) or crash on cue."""
from __future__ import annotations

import os
import time

import torch

from actmax.scorers.model_neurons import ModelNeurons

_NEURONS = ModelNeurons(kind="mixed", n=3, size=32, seed=0)
_CALLS = {"n": 0}


def slow(images: torch.Tensor) -> torch.Tensor:
    """Model neurons that take ``SLOW_NEURONS_DELAY`` seconds (default 0.15) per block."""
    time.sleep(float(os.environ.get("SLOW_NEURONS_DELAY", "0.15")))
    with torch.no_grad():
        return _NEURONS(images)


def crashing(images: torch.Tensor) -> torch.Tensor:
    """Differentiable model neurons that raise on call number ``CRASH_AT`` (if set)."""
    _CALLS["n"] += 1
    crash_at = os.environ.get("CRASH_AT")
    if crash_at and _CALLS["n"] == int(crash_at):
        raise KeyboardInterrupt("simulated kill")
    return _NEURONS(images)

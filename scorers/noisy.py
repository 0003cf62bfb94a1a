"""Poisson spiking around any scorer: the trial-to-trial variability of a recorded neuron, in silico.

``poisson:base='model:kind=dual,n=4',rate_scale=5,window=0.15`` turns the base scorer's
rates into spike counts ``k ~ Poisson(rate_scale * max(rate, 0) * window)`` and reports the
firing rate ``k / window`` (spikes per second). ``window`` defaults to 0.15 s, the paper's
50-200 ms response window.

Reproducibility: the random stream of a call is seeded by ``seed`` and a checksum of the
whole block of images scored, so the same block always gets the same counts (a resumed
evolution ends exactly where an uninterrupted one ends), while different blocks, and
different positions inside a block (repeated presentations of one image), get independent
draws.
"""
from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from actmax.core.registry import scorers
from actmax.scorers.base import Scorer
from actmax.core.errors import InputError


@scorers.register("poisson")
class PoissonSpikes(Scorer):
    """Spike counts (Poisson) from a base scorer's rates: a noisy, recorded-like neuron.

    Options:
        base: spec of the noise-free scorer whose rates are counted, e.g. 'model:kind=simple,n=1'
        rate_scale: multiplies the base scorer's responses to give spikes/s
        window: counting window in seconds (longer: more spikes, relatively less noise)
        seed: seed of the spike-count draws
    """

    differentiable = False

    def __init__(self, base: Any = "model", rate_scale: float = 1.0, window: float = 0.15, seed: int = 0) -> None:
        super().__init__()
        if rate_scale <= 0 or window <= 0:
            raise InputError(f"poisson: rate_scale and window must be > 0, got {rate_scale} and {window}")
        self.base = scorers.create(base)
        self.units = int(self.base.units)
        self.rate_scale, self.window, self.seed = float(rate_scale), float(window), int(seed)
        if getattr(self.base, "size", None) is not None:
            self.size = self.base.size

    @property
    def unit_names(self) -> list[str]:
        return self.base.unit_names

    def rates(self, images: torch.Tensor) -> torch.Tensor:
        """Noise-free firing rates in spikes/s (B, units)."""
        with torch.no_grad():
            return self.base(images).clamp_min(0) * self.rate_scale

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        rates = self.rates(images)
        block = images.detach().float().cpu().contiguous().numpy()
        rng = np.random.default_rng([self.seed, zlib.crc32(block.tobytes())])
        counts = rng.poisson(rates.double().cpu().numpy() * self.window)
        return torch.as_tensor(counts / self.window, dtype=torch.float32, device=images.device)

"""Example actmax optimizer plugin: a (1, lambda) hill climber with a shrinking step.

Subclass :class:`actmax.optimizers.base.Optimizer` and write only the algorithm: ``_ask()`` draws
a new population (pop, dim), ``_tell(codes, scores)`` gets the asked float64 codes and finite
scores to MAXIMISE, ``_config()`` / ``_state()`` / ``_load_state()`` say what a saved state must
match and what it adds. The base class checks shapes, keeps the pending population (asking again
before a tell returns it), enforces the tell rule (the codes of the last ask), counts
``generation``, keeps ``best_code`` / ``best_score`` and writes the state envelope.

The run loop passes these keywords when the constructor accepts them: ``dim``, ``x0`` (start
code), ``sigma0`` (the generator's step size), ``seed``; the benchmark also ``popsize``, ``n_gen``.
``_state()`` may hold only tensors, int, float, str, bool, None, lists and dicts (it is saved in
checkpoints and loaded with ``torch.load(weights_only=True)``).

Entry point::

    [project.entry-points."actmax.optimizers"]
    example_hill = "actmax_examples.example_optimizer:HillClimber"
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actmax.optimizers.base import Optimizer, rng_from_state, rng_state


class HillClimber(Optimizer):
    """(1, lambda) hill climber: samples around the best code so far; the step shrinks when none improves."""

    name = "example_hill"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 1.0, seed: int = 0, popsize: int = 8,
                 shrink: float = 0.85) -> None:
        self.dim, self.popsize, self.shrink = int(dim), int(popsize), float(shrink)
        self.center = np.zeros(self.dim) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(self.dim)
        self.sigma = float(sigma0)
        self.rng = np.random.default_rng(seed)

    # the base class keeps the pending population, counts generations and keeps the best code told;
    # this class only draws a population and learns from its scores
    def _ask(self) -> np.ndarray:
        noise = self.rng.standard_normal((self.popsize - 1, self.dim))
        return np.vstack([self.center, self.center + self.sigma * noise])   # row 0: the centre

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        best = int(np.argmax(scores))
        if best == 0:
            self.sigma *= self.shrink            # no sample beat the centre: search closer
        self.center = codes[best].copy()

    # its state: what a saved state must match, and what it adds to the base's envelope
    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize}

    def _state(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "center": torch.from_numpy(self.center.copy()), "rng": rng_state(self.rng)}

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        self.sigma = float(state["sigma"])
        self.center = state["center"].double().numpy().copy()
        self.rng = rng_from_state(state["rng"])

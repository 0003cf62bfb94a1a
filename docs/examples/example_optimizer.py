"""Example actmax optimizer plugin: a (1, lambda) hill climber with a shrinking step.

Subclass :class:`actmax.optimizers.base.Optimizer` and write only the algorithm: ``_ask()`` returns
the next population (pop, dim) (the same codes until they are told), ``_tell(codes, scores)`` gets
the asked float64 codes and finite scores to MAXIMISE. The base class checks shapes, enforces the
tell rule (the codes of the last ask) and keeps ``best_code`` / ``best_score``.

The run loop passes these keywords when the constructor accepts them: ``dim``, ``x0`` (start
code), ``sigma0`` (the generator's step size), ``seed``; the benchmark also ``popsize``, ``n_gen``.
``state_dict()`` may hold only tensors, int, float, str, bool, None, lists and dicts (it is saved in
checkpoints and loaded with ``torch.load(weights_only=True)``).

Entry point::

    [project.entry-points."actmax.optimizers"]
    example_hill = "actmax_examples.example_optimizer:HillClimber"
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actmax.optimizers.base import Optimizer, OptimizerStateError, rng_from_state, rng_state


class HillClimber(Optimizer):
    """(1, lambda) hill climber: samples around the best code so far; the step shrinks when none improves."""

    name = "example_hill"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 1.0, seed: int = 0, popsize: int = 8,
                 shrink: float = 0.85) -> None:
        self.dim, self.popsize, self.shrink = int(dim), int(popsize), float(shrink)
        self.center = np.zeros(self.dim) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(self.dim)
        self.sigma = float(sigma0)
        self.rng = np.random.default_rng(seed)
        self.generation = 0
        self._pending: np.ndarray | None = None

    def _ask(self) -> np.ndarray:
        if self._pending is None:
            noise = self.rng.standard_normal((self.popsize - 1, self.dim))
            self._pending = np.vstack([self.center, self.center + self.sigma * noise])   # row 0: the centre
        return self._pending.copy()

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        best = int(np.argmax(scores))
        if best == 0:
            self.sigma *= self.shrink            # no sample beat the centre: search closer
        self.center = codes[best].copy()
        self._pending = None
        self.generation += 1

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize, "sigma": self.sigma,
                "center": torch.from_numpy(self.center.copy()), "rng": rng_state(self.rng),
                "generation": self.generation,
                "pending": None if self._pending is None else torch.from_numpy(self._pending.copy()),
                "best_code": None if self.best_code is None else torch.from_numpy(self.best_code.copy()),
                "best_score": float(self.best_score)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("optimizer") != self.name or state.get("dim") != self.dim or state.get("popsize") != self.popsize:
            raise OptimizerStateError(f"{self.name}: state is for another optimizer or configuration")
        self.sigma, self.generation = float(state["sigma"]), int(state["generation"])
        self.center = state["center"].double().numpy().copy()
        self.rng = rng_from_state(state["rng"])
        self._pending = None if state["pending"] is None else state["pending"].double().numpy().copy()
        self._best_code = None if state["best_code"] is None else state["best_code"].double().numpy().copy()
        self._best_score = float(state["best_score"])

"""Random search: every generation draws ``x0 + sigma0 * N(0, I)`` codes, independent of the scores.

The floor of the optimizer benchmark (what evaluations buy without any search); it keeps the
best code told. Registered as ``random`` (the module is not called ``random`` so it cannot
shadow the standard library).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from actmax.core.registry import optimizers
from actmax.optimizers.base import Optimizer, rng_from_state, rng_state
from actmax.optimizers.common import (whole, array, best_state, check_dim, check_shape, check_state, initial_point,
                               load_best, positive, require, tensor)


@optimizers.register("random")
class RandomSearch(Optimizer):
    """Random search around x0 (normal, std sigma0): the benchmark's baseline.

    Options:
        dim: code dimension (from the generator)
        x0: centre of the search (the generator's start code)
        sigma0: standard deviation of the samples around x0
        seed: random seed
        popsize: codes per generation
    """

    name = "random"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 1.0, seed: int = 0, popsize: int = 40) -> None:
        where = self.name
        self.dim = check_dim(dim, where)
        self.x0 = initial_point(x0, self.dim, where)
        self.sigma0 = positive(sigma0, "sigma0", where)
        self.seed, self.popsize = int(seed), whole(popsize, "popsize", "random")
        if self.popsize < 1:
            raise ValueError(f"{where}: popsize must be >= 1, got {self.popsize}")
        self.rng = np.random.default_rng(self.seed)
        self.generation = 0
        self._pending: np.ndarray | None = None
        self._best_code, self._best_score = None, -np.inf

    def _ask(self) -> np.ndarray:
        if self._pending is None:
            self._pending = self.x0 + self.sigma0 * self.rng.standard_normal((self.popsize, self.dim))
        return self._pending.copy()

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        self._pending = None
        self.generation += 1

    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize, "sigma0": self.sigma0}

    def state_dict(self) -> dict[str, Any]:
        return {**self._config(), "seed": self.seed, "x0": tensor(self.x0), "generation": self.generation,
                "rng": rng_state(self.rng), "pending": tensor(self._pending), **best_state(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        where = f"{self.name} state"
        check_state(where, state, self._config())
        require(state, ("x0", "generation", "rng", "pending"), where)
        self.x0 = check_shape(where, "x0", array(state["x0"]), (self.dim,))
        self._pending = check_shape(where, "pending", array(state["pending"]), (self.popsize, self.dim))
        self.rng = rng_from_state(state["rng"])
        self.generation = int(state["generation"])
        load_best(self, state)

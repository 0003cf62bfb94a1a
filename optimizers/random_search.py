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
from actmax.optimizers.common import (whole, array, check_dim, check_shape, initial_point,
                               load_best, positive, require, tensor)
from actmax.core.errors import InputError


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
            raise InputError(f"{where}: popsize must be >= 1, got {self.popsize}")
        self.rng = np.random.default_rng(self.seed)

    def _ask(self) -> np.ndarray:
        return self.x0 + self.sigma0 * self.rng.standard_normal((self.popsize, self.dim))

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        """Random search learns nothing from the scores (the base keeps the best code told)."""

    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize, "sigma0": self.sigma0}

    def _state(self) -> dict[str, Any]:
        return {"seed": self.seed, "x0": tensor(self.x0), "rng": rng_state(self.rng)}

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        require(state, ("x0", "generation", "rng", "pending"), where)
        self.x0 = check_shape(where, "x0", array(state["x0"]), (self.dim,))
        self.rng = rng_from_state(state["rng"])
        load_best(self, state)

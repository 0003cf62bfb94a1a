"""SphereCMA (the lab's ZOHA_Sphere_lr_euclid): search on a sphere of codes with a decaying angle.

The GECCO 2022 benchmark's best optimizer on DeePSim fc6 (Wang & Ponce 2022): its authors found
that what matters is local search with an effective step-size decay, not covariance adaptation.

* Codes live on the sphere ``|x| = sphere_norm``. Each generation evaluates the current centre
  (row 0) and ``popsize - 1`` samples ``ExpMap(centre, mu_g u_i)``: ``u_i ~ N(0, I)`` projected onto
  the tangent plane at the centre, ``mu_g = angle_g * pi / 180 / sqrt(N)`` radians per dimension, so
  each sample lies about ``angle_g`` degrees from the centre along a great circle.
* The exploration angle follows ``schedule``: ``"exp"`` decays geometrically from ``angle_start``
  = 50 deg to ``angle_end`` = 7.33 deg over ``n_gen`` generations (the reference's
  ``lr_schedule(n_gen, "exp", (50, 7.33))``); ``"inv"`` is ``15 + 1 / (0.0017 k + 0.0146)`` deg at
  generation k = 1..n_gen; ``"lin"`` is linear between the two limits. After ``n_gen`` the last
  angle is kept.
* Tell: the samples (the centre excluded unless ``rankbasis=True``) get CMA-style rank weights
  ``log(s + 1/2) - log(rank)`` over the best ``select_size`` (zero for the rest); the weighted
  Euclidean mean is projected back onto the sphere and the new centre is
  ``SLERP(centre, mean, lr)``; ``lr`` = 1.5 extrapolates past the mean along the great circle.

Defaults are the reference's (select_size 20, lr 1.5, exp schedule 50 -> 7.33 deg, n_gen 75, the
GECCO budget of 75 generations, ``sphere_norm`` 300 as for DeePSim fc6) except two choices made
for a fixed evaluation budget: ``popsize`` counts every evaluated code, so the default 40 is the
centre plus 39 samples (the reference evaluates the centre plus 40); and the first generation is
centred on ``x0`` (projected onto the sphere; a zero ``x0`` gives a seeded random direction)
instead of the reference's 40 random codes on the sphere whose weighted mean becomes the first
centre. Side by side with the reference algorithm on the same objectives and budget the two give
the same scores within noise (tests/test_optimizers.py, fixture tests/fixtures/lab_optimizers.py).

The run loop (``evolve``, ``benchmark``) passes ``n_gen`` = the run's number of generations and
``sphere_norm`` = the generator's declared radius (``Generator.sphere_norm``: 300 for DeePSim,
the typical norm of its initial codes for other spaces); options in a spec win. Any
``popsize >= 2`` works: ``select_size`` defaults to min(20, popsize - 1) samples.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from actmax.core.registry import optimizers
from actmax.optimizers.base import Optimizer, rng_from_state, rng_state
from actmax.optimizers.common import (whole, array, best_state, check_dim, check_shape, check_state,
                               initial_point, load_best, positive, require, tensor)

SCHEDULES = ("exp", "inv", "lin")


def rank_weights(n: int, select: int) -> np.ndarray:
    """Weights by rank (index 0 = best): log(s + 1/2) - log(r) for r = 1..s, zero beyond, sum 1."""
    w = np.zeros(n)
    s = min(select, n)
    w[:s] = math.log(select + 0.5) - np.log(np.arange(1, s + 1))
    return w / w.sum()


def exp_map(center: np.ndarray, tangents: np.ndarray) -> np.ndarray:
    """Points reached from ``center`` (on the unit sphere) along each tangent row, angle = row norm."""
    angles = np.linalg.norm(tangents, axis=1, keepdims=True)
    directions = np.divide(tangents, angles, out=np.zeros_like(tangents), where=angles > 0)
    return np.cos(angles) * center[None] + np.sin(angles) * directions


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (t > 1 extrapolates) between unit vectors ``a`` and ``b``."""
    theta = math.acos(float(np.clip(a @ b, -1.0, 1.0)))
    if theta < 1e-12:
        return a.copy()
    out = (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)
    return out / np.linalg.norm(out)


@optimizers.register("sphere_cma")
class SphereCMA(Optimizer):
    """SphereCMA (ZOHA_Sphere_lr_euclid): codes on a sphere, decaying exploration angle, SLERP steps."""

    name = "sphere_cma"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 1.0, seed: int = 0, popsize: int = 40,
                 select_size: int | None = None, lr: float = 1.5, sphere_norm: float = 300.0, n_gen: int = 75,
                 schedule: str = "exp", angle_start: float = 50.0, angle_end: float = 7.33,
                 rankbasis: bool = False) -> None:
        where = self.name
        self.dim = check_dim(dim, where)
        if self.dim < 2:
            raise ValueError(f"{where}: needs dim >= 2 (a sphere of codes), got {self.dim}")
        self.seed, self.popsize = int(seed), whole(popsize, "popsize", "sphere_cma")
        if self.popsize < 2:
            raise ValueError(f"{where}: popsize must be >= 2 (centre + samples), got {self.popsize}")
        self.rankbasis = bool(rankbasis)
        ranked = self.popsize if self.rankbasis else self.popsize - 1
        self.select_size = int(select_size) if select_size is not None else min(20, ranked)
        if not 1 <= self.select_size <= self.popsize:
            raise ValueError(f"{where}: select_size must be in [1, popsize], got {self.select_size}")
        self.lr = positive(lr, "lr", where)
        self.n_gen = int(n_gen)
        if self.n_gen < 1:
            raise ValueError(f"{where}: n_gen must be >= 1, got {self.n_gen}")
        if schedule not in SCHEDULES:
            raise ValueError(f"{where}: schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.schedule = schedule
        self.angle_start = positive(angle_start, "angle_start", where)
        self.angle_end = positive(angle_end, "angle_end", where)
        self.sigma0 = positive(sigma0, "sigma0", where)
        x0 = initial_point(x0, self.dim, where)
        norm0 = float(np.linalg.norm(x0))
        self.sphere_norm = positive(sphere_norm, "sphere_norm", where)
        self.rng = np.random.default_rng(self.seed)
        if norm0 == 0:
            x0 = self.rng.standard_normal(self.dim)
        self.center = x0 / np.linalg.norm(x0)      # unit vector; codes are sphere_norm * unit vectors
        self.generation = 0
        self._pending: np.ndarray | None = None
        self._best_code, self._best_score = None, -np.inf

    def angle(self, generation: int) -> float:
        """Exploration angle in degrees used for the samples of ``generation`` (0-based)."""
        g = min(int(generation), self.n_gen - 1)
        if self.schedule == "inv":
            return 15.0 + 1.0 / (0.0017 * (g + 1) + 0.0146)
        frac = g / (self.n_gen - 1) if self.n_gen > 1 else 0.0
        if self.schedule == "exp":
            return self.angle_start * (self.angle_end / self.angle_start) ** frac
        return self.angle_start + (self.angle_end - self.angle_start) * frac

    def _ask(self) -> np.ndarray:
        if self._pending is None:
            u = self.rng.standard_normal((self.popsize - 1, self.dim))
            u -= np.outer(u @ self.center, self.center)
            mu = self.angle(self.generation) * math.pi / 180.0 / math.sqrt(self.dim)
            unit = np.vstack([self.center[None], exp_map(self.center, mu * u)])
            unit /= np.linalg.norm(unit, axis=1, keepdims=True)
            self._pending = self.sphere_norm * unit
        return self._pending.copy()

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        codes = self._pending
        first = 0 if self.rankbasis else 1           # row 0 is the centre
        ranked = scores[first:]
        ranks = np.argsort(np.argsort(-ranked, kind="stable"), kind="stable")
        weights = np.zeros(len(scores))
        weights[first:] = rank_weights(len(ranked), self.select_size)[ranks]
        mean = weights @ codes
        norm = float(np.linalg.norm(mean))
        if norm > 0:
            self.center = slerp(self.center, mean / norm, self.lr)
        self._pending = None
        self.generation += 1

    @property
    def mean(self) -> np.ndarray:
        return self.sphere_norm * self.center

    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize, "select_size": self.select_size,
                "lr": self.lr, "sphere_norm": self.sphere_norm, "n_gen": self.n_gen, "schedule": self.schedule,
                "angle_start": self.angle_start, "angle_end": self.angle_end, "rankbasis": self.rankbasis}

    def state_dict(self) -> dict[str, Any]:
        return {**self._config(), "seed": self.seed, "generation": self.generation, "rng": rng_state(self.rng),
                "center": tensor(self.center), "pending": tensor(self._pending), **best_state(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        where = f"{self.name} state"
        check_state(where, state, self._config())
        require(state, ("generation", "rng", "center", "pending"), where)
        center = check_shape(where, "center", array(state["center"]), (self.dim,))
        pending = check_shape(where, "pending", array(state["pending"]), (self.popsize, self.dim))
        self.rng = rng_from_state(state["rng"])
        self.center, self._pending, self.generation = center, pending, int(state["generation"])
        load_best(self, state)

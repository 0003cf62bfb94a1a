"""CholeskyCMAES, the Ponce lab's CMA-ES for high-dimensional latent spaces (ask/tell, maximising).

Samples are row vectors ``x_i = m + sigma * z_i A`` with ``z_i ~ N(0, I)``, so the covariance
is ``C = A^T A``; only a rank-1 (evolution path) update of the Cholesky-like factor ``A`` and of
its inverse is made, never a rank-mu update or an eigendecomposition. Defaults (N = dim),
as in the reference implementation:

* ``popsize`` lambda = 4 + floor(3 log2 N), ``mu`` = floor(lambda / 2) parents,
  weights w_i ~ log(mu + 1/2) - log(i) (sum 1), mu_eff = 1 / sum(w_i^2);
* ``cc`` = 4 / (N + 4), ``cs`` = sqrt(mu_eff) / (sqrt(mu_eff) + sqrt(N)), ``c1`` = 2 / (N + sqrt 2)^2,
  ``damps`` = 1 + cs + 2 max(0, sqrt((mu_eff - 1) / (N + 1)) - 1),
  chi_N = sqrt(N) (1 - 1/(4N) + 1/(21 N^2));
* ``sigma0`` = 3.0 (the fc6 preset) when created directly; the run loop passes the generator's
  ``default_sigma`` instead, and an explicit ``sigma0=`` in the spec wins over both;
* ``a_update_freq`` (the reference's ``Aupdate_freq``) = 10: ``A`` and ``A^-1`` are updated when
  more than ``a_update_freq * lambda`` evaluations passed since the last update
  (``None``: every lambda / c1 / N / 10 evaluations, as the reference).

Each tell: m <- sum_i w_i x_(i) over the best mu; z_w = sum_i w_i z_(i);
p_s <- (1 - cs) p_s + sqrt(cs (2 - cs) mu_eff) z_w; p_c <- (1 - cc) p_c + sqrt(cc (2 - cc) mu_eff) z_w A;
sigma <- sigma exp(cs / damps (|p_s| / chi_N - 1)); then (when due) with v = p_c A^-1,
A <- sqrt(1 - c1) (I + a v^T v) A with a = (sqrt(1 + c1 |v|^2 / (1 - c1)) - 1) / |v|^2, which makes
C <- (1 - c1) C + c1 p_c^T p_c exactly, and A^-1 gets the matching inverse
(I + a v^T v)^-1 = I - a / (1 + a |v|^2) v^T v.

**First generation.** The reference first evaluates ``x0`` alone (a one-image generation) and
its first step only sets the mean to ``x0`` without adapting anything. Here the first ``ask``
already returns lambda samples around ``x0`` and every ``tell`` adapts, so no evaluation is
spent on an uninformative generation (a budget of 75 x 40 gives 75 informative generations);
the sequence of updates is otherwise the reference's. ``x0`` itself is not evaluated.

**Efficiency.** ``A`` is never formed as a dense N x N matrix while few updates were made:
it is kept as ``A = s * M_K ... M_1 * A_base`` with ``M_k = I + a_k v_k^T v_k``, so sampling
costs O(K lambda N) instead of O(lambda N^2), a rank-1 update O(K N), and the state dict stays
O(K N) (a dense 4096 x 4096 pair would be 256 MB per checkpoint). After ``max_factors`` updates the
factors are folded into a dense ``A_base`` / ``A_base^-1`` (O(N^2) memory from then on).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from actmax.core.registry import optimizers
from actmax.optimizers.base import Optimizer, rng_from_state, rng_state
from actmax.optimizers.common import (whole, array, check_dim, check_shape, default_popsize, initial_point, positive,
                               require, tensor)
from actmax.core.errors import InputError


class FactoredCholesky:
    """``A = scale * M_K ... M_1 * base`` with ``M_k = I + alpha_k v_k^T v_k`` (row-vector convention)."""

    def __init__(self, dim: int, max_factors: int) -> None:
        self.dim, self.max_factors = dim, max_factors
        self.scale = 1.0
        self.alphas: list[float] = []
        self.vectors: list[np.ndarray] = []
        self.base: np.ndarray | None = None       # None = identity
        self.base_inv: np.ndarray | None = None

    def apply(self, z: np.ndarray) -> np.ndarray:
        """Rows of ``z`` times ``A``."""
        y = np.array(z, dtype=np.float64, copy=True)
        for alpha, v in zip(reversed(self.alphas), reversed(self.vectors)):
            y += alpha * np.outer(y @ v, v)
        if self.base is not None:
            y = y @ self.base
        return self.scale * y

    def apply_inverse(self, p: np.ndarray) -> np.ndarray:
        """Rows of ``p`` times ``A^-1``."""
        y = np.array(p, dtype=np.float64, copy=True)
        if self.base_inv is not None:
            y = y @ self.base_inv
        for alpha, v in zip(self.alphas, self.vectors):
            y -= alpha / (1.0 + alpha * float(v @ v)) * np.outer(y @ v, v)
        return y / self.scale

    def rank_one_update(self, pc: np.ndarray, c1: float) -> None:
        """Make ``C = A^T A`` into ``(1 - c1) C + c1 pc^T pc`` by updating ``A`` (and ``A^-1``)."""
        v = self.apply_inverse(pc[None])[0]
        norm2 = float(v @ v)
        if norm2 > 0:
            self.alphas.append((math.sqrt(1.0 + norm2 * c1 / (1.0 - c1)) - 1.0) / norm2)
            self.vectors.append(v)
        self.scale *= math.sqrt(1.0 - c1)
        if len(self.alphas) > self.max_factors:
            self.fold()

    def fold(self) -> None:
        """Multiply the factors out into a dense base and its inverse: O(K N^2), no N x N matmul."""
        base = np.eye(self.dim) if self.base is None else self.base.copy()
        base_inv = np.eye(self.dim) if self.base_inv is None else self.base_inv.copy()
        for alpha, v in zip(self.alphas, self.vectors):        # oldest first
            base += alpha * np.outer(v, v @ base)                # M_k @ base   (M_k symmetric)
            base_inv -= alpha / (1.0 + alpha * float(v @ v)) * np.outer(base_inv @ v, v)  # base_inv @ M_k^-1
        self.base, self.base_inv = base * self.scale, base_inv / self.scale
        self.scale, self.alphas, self.vectors = 1.0, [], []

    def dense(self) -> np.ndarray:
        return self.apply(np.eye(self.dim))

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "alphas": list(self.alphas),
                "vectors": tensor(np.stack(self.vectors)) if self.vectors else None,
                "base": tensor(self.base), "base_inv": tensor(self.base_inv)}

    def load_state_dict(self, state: dict[str, Any], where: str) -> None:
        require(state, ("scale", "alphas", "vectors", "base", "base_inv"), where)
        vectors = array(state["vectors"])
        alphas = [float(a) for a in state["alphas"]]
        if vectors is None:
            vectors = np.zeros((0, self.dim))
        check_shape(where, "A factors", vectors, (len(alphas), self.dim))
        self.base = check_shape(where, "A base", array(state["base"]), (self.dim, self.dim))
        self.base_inv = check_shape(where, "A^-1 base", array(state["base_inv"]), (self.dim, self.dim))
        self.scale, self.alphas, self.vectors = float(state["scale"]), alphas, list(vectors)


@optimizers.register("cholesky_cma")
class CholeskyCMA(Optimizer):
    """CholeskyCMAES (Ponce lab): rank-1 Cholesky-factor CMA-ES for high-dimensional codes.

    Options:
        dim: code dimension (from the generator)
        x0: start code (the generator's)
        sigma0: initial step size (the lab's 3 in DeePSim fc6)
        seed: random seed
        popsize: codes per generation (default 4 + floor(3 log2 dim))
        mu: parents per generation (default popsize // 2)
        cc: learning rate of the evolution path (default 4 / (dim + 4))
        cs: learning rate of the step-size path (CSA)
        c1: learning rate of the rank-1 covariance update (default 2 / (dim + 1.41)^2)
        damps: damping of the step-size update
        a_update_freq: refresh the Cholesky factor every this many popsizes of evaluations
        max_factors: most rank-1 factors kept (default max(8, dim // 8))
    """

    name = "cholesky_cma"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 3.0, seed: int = 0,
                 popsize: int | None = None, mu: int | None = None, cc: float | None = None,
                 cs: float | None = None, c1: float | None = None, damps: float | None = None,
                 a_update_freq: float | None = 10, max_factors: int | None = None) -> None:
        where = self.name
        self.dim = check_dim(dim, where)
        n = self.dim
        self.x0 = initial_point(x0, n, where)
        self.sigma0 = positive(sigma0, "sigma0", where)
        self.seed = int(seed)
        self.popsize = whole(popsize, "popsize", "cholesky_cma", 2) if popsize is not None else default_popsize(n)
        if self.popsize < 2:
            raise InputError(f"{where}: popsize must be >= 2, got {self.popsize}")
        self.mu = int(mu) if mu is not None else self.popsize // 2
        if not 1 <= self.mu <= self.popsize:
            raise InputError(f"{where}: mu must be in [1, popsize={self.popsize}], got {self.mu}")
        w = math.log(self.mu + 0.5) - np.log(np.arange(1, self.mu + 1))
        self.weights = w / w.sum()
        self.mueff = float(1.0 / np.sum(self.weights ** 2))
        self.cc = float(cc) if cc is not None else 4.0 / (n + 4.0)
        self.cs = float(cs) if cs is not None else math.sqrt(self.mueff) / (math.sqrt(self.mueff) + math.sqrt(n))
        self.c1 = float(c1) if c1 is not None else 2.0 / (n + math.sqrt(2.0)) ** 2
        for name, value in (("cc", self.cc), ("cs", self.cs), ("c1", self.c1)):
            if not 0 < value < 1:
                raise InputError(f"{where}: {name} must be in (0, 1), got {value}")
        self.damps = float(damps) if damps is not None else \
            1.0 + self.cs + 2.0 * max(0.0, math.sqrt((self.mueff - 1.0) / (n + 1.0)) - 1.0)
        self.chi_n = math.sqrt(n) * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n ** 2))
        self.a_update_freq = None if a_update_freq is None else float(a_update_freq)
        self.update_crit = (self.popsize / self.c1 / n / 10.0 if self.a_update_freq is None
                            else self.a_update_freq * self.popsize)
        self.max_factors = int(max_factors) if max_factors is not None else max(8, n // 8)
        if self.max_factors < 1:
            raise InputError(f"{where}: max_factors must be >= 1, got {self.max_factors}")
        self._reset()

    def _reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.mean = self.x0.copy()
        self.sigma = self.sigma0
        self.ps = np.zeros(self.dim)
        self.pc = np.zeros(self.dim)
        self.factor = FactoredCholesky(self.dim, self.max_factors)
        self.counteval = 0
        self.eigeneval = 0
        self.generation = 0
        self._z: np.ndarray | None = None      # the standard normal samples behind the pending population
        self._asked, self._best_code, self._best_score = None, None, -np.inf

    # -- ask / tell -----------------------------------------------------------------------
    def _ask(self) -> np.ndarray:
        self._z = self.rng.standard_normal((self.popsize, self.dim))
        self.counteval += self.popsize
        return self.mean + self.sigma * self.factor.apply(self._z)

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        top = np.argsort(-scores, kind="stable")[: self.mu]
        old_mean = self.mean
        self.mean = self.weights @ codes[top]
        zw = self.weights @ self._z[top]
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * zw
        # z_w A = (new mean - old mean) / sigma, computed without touching A
        self.pc = (1 - self.cc) * self.pc + math.sqrt(self.cc * (2 - self.cc) * self.mueff) * \
            (self.mean - old_mean) / self.sigma
        self.sigma *= math.exp(self.cs / self.damps * (float(np.linalg.norm(self.ps)) / self.chi_n - 1.0))
        if self.counteval - self.eigeneval > self.update_crit:
            self.eigeneval = self.counteval
            self.factor.rank_one_update(self.pc, self.c1)
        self._z = None

    # -- introspection --------------------------------------------------------------------
    @property
    def covariance_factor(self) -> np.ndarray:
        """The dense factor ``A`` (C = A^T A); O(N^2), for inspection and tests."""
        return self.factor.dense()

    @property
    def covariance_factor_inverse(self) -> np.ndarray:
        return self.factor.apply_inverse(np.eye(self.dim))

    # -- state ----------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize, "mu": self.mu,
                "cc": self.cc, "cs": self.cs, "c1": self.c1, "damps": self.damps,
                "update_crit": float(self.update_crit), "max_factors": self.max_factors}

    def _state(self) -> dict[str, Any]:
        return {"seed": self.seed, "sigma0": self.sigma0, "x0": tensor(self.x0), "rng": rng_state(self.rng),
                "mean": tensor(self.mean), "sigma": float(self.sigma), "ps": tensor(self.ps),
                "pc": tensor(self.pc), "counteval": int(self.counteval), "eigeneval": int(self.eigeneval),
                "factor": self.factor.state_dict(), "z": tensor(self._z)}

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        require(state, ("generation", "rng", "mean", "sigma", "ps", "pc", "counteval", "eigeneval",
                        "factor", "z", "pending"), where)
        n = self.dim
        mean = check_shape(where, "mean", array(state["mean"]), (n,))
        ps = check_shape(where, "ps", array(state["ps"]), (n,))
        pc = check_shape(where, "pc", array(state["pc"]), (n,))
        z = check_shape(where, "z", array(state["z"]), (self.popsize, n))
        factor = FactoredCholesky(n, self.max_factors)
        factor.load_state_dict(state["factor"], where)
        self.rng = rng_from_state(state["rng"])
        self.mean, self.ps, self.pc, self.factor = mean, ps, pc, factor
        self.sigma = float(state["sigma"])
        self.counteval, self.eigeneval = int(state["counteval"]), int(state["eigeneval"])
        self._z = z
        if "x0" in state:
            self.x0 = array(state["x0"])
        if "sigma0" in state:
            self.sigma0 = float(state["sigma0"])

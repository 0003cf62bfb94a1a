"""CMA-ES through pycma (full or diagonal covariance), as a seeded ask/tell optimizer.

pycma samples from numpy's global RNG. Each instance keeps its own copy of that state and
swaps it in only around its own calls (under a lock), so several optimizers can run in
parallel threads and each stays reproducible. pycma's internal state is restored by
replaying the told scores from the seed (cheap next to the evaluations that produced
them); a digest of each generation's codes guards against a replay that diverges.

``sampler="vd"`` / ``"vkd"`` switch pycma (4.x) to its restricted Gaussian samplers
(``cma.restricted_gaussian_sampler.GaussVDSampler`` / ``GaussVkDSampler``: VD-CMA and VkD-CMA,
covariance D(I + v v^T)D or D(I + V V^T)D, O(N) / O(kN) per sample), set through the
``CMA_sampler`` option with the options each sampler's ``extend_cma_options`` asks for
(``CMA_active=False``; VkD also ``AdaptSigma=False``). They are meant for high dimensions where
the full covariance (O(N^2) memory and time per generation) is too slow.
"""
from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from actmax.core.registry import optimizers
from actmax.optimizers.base import Optimizer, OptimizerStateError
from actmax.core.errors import InputError
from actmax.optimizers.common import positive

_NUMPY_GLOBAL_RNG = threading.Lock()
SAMPLERS = ("full", "vd", "vkd")


def _digest(codes: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(codes, dtype=np.float64).tobytes()).hexdigest()


@optimizers.register("cma")
class PyCMA(Optimizer):
    """pycma CMA-ES; ``diagonal=True`` for separable covariance, ``sampler="vd"|"vkd"`` for VD/VkD-CMA.

    Options:
        dim: code dimension (from the generator)
        x0: start code (the generator's)
        sigma0: initial step size (the generator's default_sigma)
        popsize: codes per generation (default 4 + 3 ln dim)
        diagonal: separable (diagonal) covariance: cheaper in large spaces
        sampler: 'full', or 'vd' / 'vkd' for the VD-/VkD-CMA samplers
        seed: random seed
        options: extra pycma options (dict), passed to cma.CMAEvolutionStrategy
    """

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 1.0, popsize: int | None = None,
                 diagonal: bool = False, sampler: str = "full", seed: int = 0,
                 options: dict[str, Any] | None = None) -> None:
        self.dim, self.sigma0, self.seed, self.diagonal = int(dim), positive(sigma0, "sigma0", "cma"), int(seed), bool(diagonal)
        if sampler not in SAMPLERS:
            raise InputError(f"cma: sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler != "full" and self.diagonal:
            raise InputError(f"cma: sampler={sampler!r} and diagonal=True exclude each other")
        self.sampler = sampler
        x0 = np.zeros(self.dim) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1)
        if x0.shape != (self.dim,):
            raise InputError(f"cma: x0 must have {self.dim} entries, got {x0.shape}")
        self.x0 = x0
        if popsize is not None and (isinstance(popsize, bool) or not isinstance(popsize, int) or popsize < 2):
            raise InputError(f"cma: popsize must be an integer >= 2, got {popsize!r}")
        self.popsize = int(popsize) if popsize is not None else 4 + int(3 * np.log(self.dim))
        self.extra_options = dict(options or {})
        self._np_state = np.random.RandomState(self.seed).get_state()
        self._history: list[np.ndarray] = []
        self._digests: list[str] = []
        self._es = self._new_es()

    def _options(self) -> dict[str, Any]:
        import cma
        opts = {"popsize": self.popsize, "seed": np.nan, "verbose": -9, "verb_disp": 0,
                "verb_log": 0, "CMA_diagonal": self.diagonal, "tolfun": 0, "tolflatfitness": 10**9,
                "tolfunhist": 0, "tolstagnation": 10**9, "tolx": 0, "maxfevals": np.inf}
        if self.sampler != "full":
            from cma import restricted_gaussian_sampler as rgs
            cls = rgs.GaussVDSampler if self.sampler == "vd" else rgs.GaussVkDSampler
            opts = cls.extend_cma_options(opts)
        known = cma.CMAOptions()
        unknown = [k for k in self.extra_options if k not in known]
        if unknown:
            raise InputError(f"cma: unknown pycma option {unknown[0]!r}")
        opts.update(self.extra_options)
        return opts

    @contextmanager
    def _own_rng(self) -> Iterator[None]:
        with _NUMPY_GLOBAL_RNG:
            saved = np.random.get_state()
            np.random.set_state(self._np_state)
            try:
                yield
            finally:
                self._np_state = np.random.get_state()
                np.random.set_state(saved)

    def _new_es(self) -> Any:
        import cma
        with self._own_rng():
            return cma.CMAEvolutionStrategy(self.x0, self.sigma0, self._options())

    name = "cma"

    def _ask(self) -> np.ndarray:
        with self._own_rng():
            return np.asarray(self._es.ask(), dtype=np.float64)

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        with self._own_rng():
            self._es.tell(list(codes), list(-scores))
        self._digests.append(_digest(codes))
        self._history.append(scores.copy())

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self._es.mean, dtype=np.float64)

    @property
    def sigma(self) -> float:
        return float(self._es.sigma)

    def state_dict(self) -> dict[str, Any]:
        best_code, best_score = self.best
        return {"optimizer": "cma", "dim": self.dim, "seed": self.seed, "popsize": self.popsize,
                "diagonal": self.diagonal, "sampler": self.sampler, "sigma0": self.sigma0,
                "x0": torch.from_numpy(self.x0.copy()),
                "scores": [torch.from_numpy(s) for s in self._history], "digests": list(self._digests),
                "best_code": None if best_code is None else torch.from_numpy(best_code),
                "best_score": float(best_score)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("dim", "seed", "popsize", "diagonal", "sampler", "sigma0"):
            if state.get(key, "full" if key == "sampler" else None) != getattr(self, key):
                raise OptimizerStateError(f"cma state has {key}={state.get(key)!r}, this optimizer "
                                          f"has {getattr(self, key)!r}")
        self.x0 = state["x0"].numpy().astype(np.float64)
        self._np_state = np.random.RandomState(self.seed).get_state()
        self._history, self._digests = [], []
        self._es, self.generation = self._new_es(), 0
        self._asked, self._best_code, self._best_score = None, None, -np.inf
        for g, (scores, digest) in enumerate(zip(state["scores"], state["digests"])):
            codes = self.ask()
            if _digest(codes) != digest:
                raise OptimizerStateError(f"cma: replay diverged at generation {g} (different numpy/pycma "
                                          "version?); the state cannot be restored exactly")
            self.tell(codes, scores.numpy())
        if state.get("best_code") is not None:
            self._best_code, self._best_score = state["best_code"].numpy(), float(state["best_score"])

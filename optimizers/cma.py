"""CMA-ES through pycma (full or diagonal covariance), as a seeded ask/tell optimizer.

pycma samples from numpy's global RNG. Each instance keeps its own copy of that state and
swaps it in only around its own calls (under a lock), so several optimizers can run in
parallel threads and each stays reproducible.

**State.** ``state_dict()`` holds the strategy's numeric state in its saved form
(:mod:`actmax.optimizers.pycma_state`: mean, step size, covariance and its eigen decomposition or
the VD/VkD factors, evolution paths, counters, fitness history, as tensors and plain values) plus
this instance's numpy RNG state; ``load_state_dict()`` writes it into a freshly built strategy, so
the next ``ask()`` is bit-identical to an uninterrupted run and nothing is replayed. The full
covariance stores ``C`` and ``B`` (2 N^2 float64: 268 MB at N = 4096); the diagonal, VD and VkD
forms are O(N). States written before this form (``scores`` + ``digests``, actmax up to
issue 22) are still loaded, by the *legacy* replay of the told scores from the seed
(:meth:`PyCMA._load_legacy_replay`); nothing writes that form any more.

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
from actmax.optimizers.common import array, check_shape, positive, require
from actmax.optimizers.pycma_state import es_state, restore_es

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
        self._es = self._new_es()
        self._es_fresh = True             # nothing asked or restored yet: a restore may fill it in place

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
        self._es_fresh = False
        with self._own_rng():
            return np.asarray(self._es.ask(), dtype=np.float64)

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        with self._own_rng():
            self._es.tell(list(codes), list(-scores))

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self._es.mean, dtype=np.float64)

    @property
    def sigma(self) -> float:
        return float(self._es.sigma)

    # -- state: the saved form ------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"optimizer": "cma", "dim": self.dim, "seed": self.seed, "popsize": self.popsize,
                "diagonal": self.diagonal, "sampler": self.sampler, "sigma0": self.sigma0,
                "options": _options_text(self.extra_options)}

    def _state(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = self._np_state
        return {"x0": torch.from_numpy(self.x0.copy()), "es": es_state(self._es),
                "numpy_rng": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                              "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state (the saved form; a legacy ``scores``/``digests`` state is replayed)."""
        if isinstance(state, dict) and "es" not in state and "digests" in state:
            self._load_legacy_replay(state)
            return
        super().load_state_dict(state)

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        require(state, ("x0", "es", "numpy_rng", "generation", "pending"), where)
        x0 = check_shape(where, "x0", array(state["x0"]), (self.dim,))
        rng = state["numpy_rng"]
        try:
            keys = np.asarray(rng["keys"].numpy(), dtype=np.int64)
            if rng["kind"] != "MT19937" or keys.shape != (624,) or keys.min() < 0 or keys.max() >= 2 ** 32:
                raise ValueError("not an MT19937 state")
            np_state = ("MT19937", keys.astype(np.uint32), int(rng["pos"]), int(rng["has_gauss"]),
                        float(rng["cached_gaussian"]))
            np.random.RandomState().set_state(np_state)       # validates it
        except Exception as exc:  # noqa: BLE001
            raise OptimizerStateError(f"{where}: numpy_rng is not a numpy RandomState state ({exc})") from None
        fresh = self._es if self._es_fresh else self._new_es()
        self._es = restore_es(fresh, state["es"])
        self._es_fresh = False
        self.x0, self._np_state = x0, np_state

    def _load_legacy_replay(self, state: dict[str, Any]) -> None:
        """LEGACY loader, only for checkpoints written before the saved form (told scores + code digests).

        Rebuilds pycma's state by replaying ask/tell from the seed with the stored scores; each
        generation's codes must match their stored digest. Kept so old records resume; new states
        never take this path.
        """
        for key in ("dim", "seed", "popsize", "diagonal", "sampler", "sigma0"):
            if state.get(key, "full" if key == "sampler" else None) != getattr(self, key):
                raise OptimizerStateError(f"cma state has {key}={state.get(key)!r}, this optimizer "
                                          f"has {getattr(self, key)!r}")
        try:
            self.x0 = state["x0"].numpy().astype(np.float64)
            pairs = list(zip(state["scores"], state["digests"]))
        except Exception as exc:  # noqa: BLE001
            raise OptimizerStateError(f"cma legacy state is malformed ({type(exc).__name__}: {exc})") from None
        self._np_state = np.random.RandomState(self.seed).get_state()
        self._es, self.generation = self._new_es(), 0
        self._asked, self._best_code, self._best_score = None, None, -np.inf
        for g, (scores, digest) in enumerate(pairs):
            codes = self.ask()
            if _digest(codes) != digest:
                raise OptimizerStateError(f"cma: replay diverged at generation {g} (different numpy/pycma "
                                          "version?); the state cannot be restored exactly")
            self.tell(codes, scores.numpy())
        if state.get("best_code") is not None:
            self._best_code, self._best_score = state["best_code"].numpy(), float(state["best_score"])


def _options_text(options: dict[str, Any]) -> str:
    """The extra pycma options as canonical text (a state must have been written with the same ones)."""
    import json
    return json.dumps(options, sort_keys=True, default=repr)

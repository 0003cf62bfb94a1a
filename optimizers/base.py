"""Gradient-free optimizer contract: ask/tell, maximising, seeded, with state save/restore."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from actmax.core.errors import OptimizerStateError  # noqa: F401  (re-exported for optimizers)


class Optimizer(ABC):
    """Ask for a population of codes, tell their scores (higher is better).

    ``ask() -> (pop, dim)`` float array, ``tell(codes, scores)`` with ``scores`` of shape
    (pop,). An LEI search tells negated responses. ``state_dict()`` holds only tensors,
    numbers, strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``.
    """

    dim: int
    generation: int = 0

    @abstractmethod
    def ask(self) -> np.ndarray:
        """Codes of the next population, shape (pop, dim)."""

    @abstractmethod
    def tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        """Update with the scores (to maximise) of the codes returned by :meth:`ask`."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this optimizer is."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`."""

    @property
    def best(self) -> tuple[np.ndarray | None, float]:
        """Best code told so far and its score."""
        return getattr(self, "_best_code", None), getattr(self, "_best_score", -np.inf)

    def _check_tell(self, codes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.asarray(codes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if codes.ndim != 2 or codes.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__}.tell: codes must have shape (pop, {self.dim}), "
                             f"got {codes.shape}")
        if scores.shape[0] != codes.shape[0]:
            raise ValueError(f"{type(self).__name__}.tell: {codes.shape[0]} codes but "
                             f"{scores.shape[0]} scores")
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise ValueError(f"{type(self).__name__}.tell: non-finite scores at indices "
                             f"{bad[:10].tolist()} (NaN/inf responses cannot guide the search)")
        i = int(np.argmax(scores))
        if scores[i] > getattr(self, "_best_score", -np.inf):
            self._best_score = float(scores[i])
            self._best_code = codes[i].copy()
        return codes, scores


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON/weights_only-safe state of a numpy Generator."""
    state = rng.bit_generator.state
    return {"bit_generator": state["bit_generator"],
            "state": {k: int(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    if state.get("bit_generator") != "PCG64":
        raise OptimizerStateError(f"unsupported bit generator {state.get('bit_generator')!r}")
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": dict(state["state"]),
                               "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]}
    return rng

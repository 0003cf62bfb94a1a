"""Gradient-free optimizer contract: ask/tell, maximising, seeded, with state save/restore.

:class:`Optimizer` is a template (as nevergrad's base optimizer): the base owns the generation
counter, the pending population (asked, not yet told: asking again returns it), the best code
told so far and the state envelope (configuration, generation, pending population, best). A
subclass implements only its algorithm: :meth:`~Optimizer._ask` (draw a new population),
:meth:`~Optimizer._tell` (update with it), :meth:`~Optimizer._config` (what a state must match)
and its extra state (:meth:`~Optimizer._state`, :meth:`~Optimizer._load_state`).

**The one tell rule** (every optimizer): ``tell(codes, scores)`` takes the codes returned by the
last ``ask()``, equal to within :data:`TELL_TOLERANCE` (relative to the largest code entry), so
codes that went through float32 on the way to the generator still count; the update then uses
the optimizer's own float64 copy of the asked codes, so the numbers do not depend on the caller's
precision. Anything else (other codes, a tell without an ask) is an error.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from actmax.core.contracts import ContractError, check_state_roundtrip  # noqa: F401  (re-exported)
from actmax.core.errors import OptimizerStateError  # noqa: F401  (re-exported for optimizers)
from actmax.core.errors import InputError

#: codes told back may have gone through float32 (rendering); anything closer than this (relative to
#: the largest asked entry) to the asked codes counts as "the same codes".
TELL_TOLERANCE = 1e-5


class Optimizer(ABC):
    """Ask for a population of codes, tell their scores (higher is better).

    ``ask() -> (pop, dim)`` float64 array, ``tell(codes, scores)`` with ``scores`` of shape
    (pop,). An LEI search tells negated responses. ``state_dict()`` holds only tensors,
    numbers, strings, bools, lists and dicts, so it loads with ``torch.load(weights_only=True)``.

    Subclasses set ``dim`` (and ``popsize`` when the population size is fixed) and implement
    ``_ask()`` (the next population; asking twice without a tell returns the same codes),
    ``_tell(codes, scores)`` (update with the asked float64 codes and checked finite scores),
    ``state_dict()`` and ``load_state_dict()``.
    """

    dim: int
    generation: int = 0
    #: ask/tell (False) or the gradient ``ascent`` protocol (True)
    gradient_based: bool = False
    #: a fixed population size (None: the optimizer decides per generation)
    popsize: int | None = None
    seed: int | None = None
    _asked: np.ndarray | None = None        # the pending population (asked, not yet told)
    _best_code: np.ndarray | None = None
    _best_score: float = -np.inf

    @property
    def part_name(self) -> str:
        """How errors name this optimizer: its registry name and class."""
        name = getattr(self, "name", None)
        cls = type(self).__name__
        return f"optimizer {name!r} ({cls})" if isinstance(name, str) else f"optimizer {cls}"

    # -- template -----------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """Codes of the next population, shape (pop, dim), checked (shape, finite values)."""
        if self._asked is not None:             # asked, not yet told: the same population again
            return self._asked.copy()
        codes = self._ask()
        if not isinstance(codes, np.ndarray):
            codes = np.asarray(codes)
        pop = self.popsize
        if codes.ndim != 2 or codes.shape[1] != self.dim or codes.shape[0] < 1 or \
                (isinstance(pop, int) and codes.shape[0] != pop):
            expected = f"({pop if isinstance(pop, int) else 'pop'}, {self.dim})"
            raise ContractError(f"{self.part_name}: ask() returned codes of shape {codes.shape}, "
                                f"expected {expected}; this is a bug in the optimizer")
        codes = np.asarray(codes, dtype=np.float64)
        if not np.all(np.isfinite(codes)):
            raise ContractError(f"{self.part_name}: ask() returned NaN or inf codes")
        self._asked = codes.copy()
        return codes.copy()

    def tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        """Update with the scores (to maximise) of the codes returned by the last :meth:`ask`."""
        where = f"{self.part_name}.tell"
        asked = self._asked
        if asked is None:
            raise InputError(f"{where}: no population pending; call ask() before tell()")
        codes = np.asarray(codes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if codes.shape != asked.shape:
            raise InputError(f"{where}: codes must have the shape of the last ask() {asked.shape}, "
                             f"got shape {codes.shape}")
        if scores.shape[0] != codes.shape[0]:
            raise InputError(f"{where}: {codes.shape[0]} codes but {scores.shape[0]} scores")
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise InputError(f"{where}: non-finite scores at indices {bad[:10].tolist()} "
                             "(NaN/inf responses cannot guide the search)")
        if not np.array_equal(codes, asked):
            tol = TELL_TOLERANCE * (1.0 + float(np.abs(asked).max(initial=0.0)))
            if not np.all(np.abs(codes - asked) <= tol):
                raise InputError(f"{where}: codes must be those returned by the last ask() "
                                 f"(within a relative {TELL_TOLERANCE:g}; the update uses the asked codes)")
        before = self.generation
        self._tell(asked, scores)
        self._asked = None
        if self.generation == before:   # (optimizers written before the base owned the counter count themselves)
            self.generation += 1
        i = int(np.argmax(scores))
        if scores[i] > self._best_score:
            self._best_score = float(scores[i])
            self._best_code = asked[i].copy()

    @abstractmethod
    def _ask(self) -> np.ndarray:
        """A new population (pop, dim); called once per generation (the base keeps it until it is told)."""

    @abstractmethod
    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        """Update with the asked codes (float64) and their finite scores (pop,); the base counts the generation."""

    # -- state envelope -----------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        """What a saved state must match to load here (the setup, not the progress)."""
        return {"optimizer": getattr(self, "name", type(self).__name__), "dim": self.dim}

    def _state(self) -> dict[str, Any]:
        """The subclass's own state (tensors, numbers, strings, lists, dicts)."""
        return {}

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        """Restore :meth:`_state` (the envelope is restored by the base); nothing to restore by default."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this optimizer is: the envelope plus :meth:`_state`."""
        from actmax.optimizers.common import best_state, tensor
        return {**self._config(), "generation": self.generation, **self._state(), "pending": tensor(self._asked),
                **best_state(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (one OptimizerStateError if it belongs to another setup)."""
        from actmax.optimizers.common import array, check_shape, check_state, load_best
        where = f"{getattr(self, 'name', type(self).__name__)} state"
        check_state(where, state, self._config())
        self._load_state(state, where)
        if "generation" in state:
            self.generation = int(state["generation"])
        pending = array(state.get("pending"))
        if pending is not None and self.popsize is not None:
            check_shape(where, "pending", pending, (int(self.popsize), self.dim))
        self._asked = pending
        load_best(self, state)

    # -- best so far --------------------------------------------------------------------------
    @property
    def best_code(self) -> np.ndarray | None:
        """Best code told so far (None before the first tell)."""
        return self._best_code

    @property
    def best_score(self) -> float:
        """Best score told so far (-inf before the first tell)."""
        return self._best_score

    @property
    def best(self) -> tuple[np.ndarray | None, float]:
        """(best code, best score) told so far."""
        return self._best_code, self._best_score


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

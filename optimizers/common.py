"""Helpers shared by the ask/tell optimizers: argument checks and state I/O (the tell rule is in base.py).

State dicts hold only tensors, numbers, strings, lists and dicts (``torch.load(weights_only=True)``
safe); arrays are stored as float64 tensors so a restore is bit-exact.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from actmax.optimizers.base import OptimizerStateError


def check_dim(dim: int, where: str) -> int:
    if int(dim) < 1:
        raise ValueError(f"{where}: dim must be >= 1, got {dim}")
    return int(dim)


def initial_point(x0: Any, dim: int, where: str) -> np.ndarray:
    """``x0`` as a float64 vector of length ``dim`` (zeros when None)."""
    if x0 is None:
        return np.zeros(dim)
    if isinstance(x0, torch.Tensor):
        x0 = x0.detach().cpu().double().numpy()
    x = np.asarray(x0, dtype=np.float64).reshape(-1)
    if x.shape != (dim,):
        raise ValueError(f"{where}: x0 must have {dim} entries, got {np.asarray(x0).shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: x0 contains NaN or inf")
    return x.copy()


def positive(value: float, name: str, where: str) -> float:
    value = float(value)
    if not value > 0 or not np.isfinite(value):
        raise ValueError(f"{where}: {name} must be a positive number, got {value}")
    return value


def whole(value: Any, name: str, where: str, minimum: int | None = None) -> int:
    """``value`` as an int; a fractional number (``popsize=7.5``), a bool or text is an error, never truncated."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or float(value) != int(value):
        raise ValueError(f"{where}: {name} must be a whole number, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def default_popsize(dim: int) -> int:
    """The CMA-ES default population 4 + floor(3 log2 N) (as the lab's CholeskyCMAES)."""
    return 4 + int(np.floor(3 * np.log2(dim))) if dim > 1 else 4


def tensor(a: np.ndarray | None) -> torch.Tensor | None:
    """float64 tensor copy of an array (None stays None)."""
    if a is None:
        return None
    return torch.from_numpy(np.array(a, dtype=np.float64, copy=True))


def array(t: Any) -> np.ndarray | None:
    """float64 array copy of a stored tensor/list (None stays None)."""
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().double().numpy().copy()
    return np.asarray(t, dtype=np.float64).copy()


def check_state(where: str, state: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise unless the saved configuration matches this optimizer's (a state belongs to one setup)."""
    if not isinstance(state, Mapping):
        raise OptimizerStateError(f"{where}: state must be a dict, got {type(state).__name__}")
    if state.get("optimizer") != expected["optimizer"]:
        raise OptimizerStateError(f"{where}: state is for optimizer {state.get('optimizer')!r}, "
                                  f"not {expected['optimizer']!r}")
    for key, value in expected.items():
        saved = state.get(key)
        same = np.allclose(saved, value, rtol=1e-12, atol=0) if isinstance(value, float) and saved is not None \
            else saved == value
        if not same:
            raise OptimizerStateError(f"{where}: state has {key}={saved!r}, this optimizer has {value!r}")


def require(state: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise OptimizerStateError(f"{where}: state is missing {missing} (truncated or from another optimizer)")


def check_shape(where: str, name: str, a: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if a is not None and a.shape != shape:
        raise OptimizerStateError(f"{where}: state entry {name!r} has shape {a.shape}, expected {shape}")
    return a


def best_state(opt: Any) -> dict[str, Any]:
    """The best code/score told so far, for a state dict."""
    code, score = opt.best
    return {"best_code": tensor(code), "best_score": float(score)}


def load_best(opt: Any, state: Mapping[str, Any]) -> None:
    code = array(state.get("best_code"))
    opt._best_code = code
    opt._best_score = float(state.get("best_score", -np.inf)) if code is not None else -np.inf

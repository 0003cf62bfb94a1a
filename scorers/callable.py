"""Any Python function as a scorer: ``callable:fn=package.module:function,units=N``."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from actmax.core.registry import scorers
from actmax.scorers.base import Scorer
from actmax.core.errors import CallableError, InputError  # noqa: F401  (CallableError: defined in the bottom layer)


def import_function(path: str) -> Callable[[torch.Tensor], object]:
    """``"pkg.module:function"`` -> the function (a clear error if it cannot be found)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"callable: fn must look like 'package.module:function', got {path!r}")
    from actmax.core.trust import import_code   # refuses foreign code inside an untrusted resume
    try:
        obj = import_code(module_name, f"callable:fn={path}")
    except ImportError as exc:
        raise InputError(f"callable: cannot import module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"callable: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"callable: {path!r} is not callable")
    return obj


@scorers.register("callable")
class CallableScorer(Scorer):
    """A function images (B, C, H, W) -> responses (B, units), e.g. an experiment's own model.

    Options:
        fn: 'package.module:function' (or, in Python, the function itself)
        units: number of units (columns) the function returns
        differentiable: whether gradients flow through it (allows synthesis)
    """

    def __init__(self, fn: str | Callable[[torch.Tensor], object], units: int = 1,
                 differentiable: bool = False) -> None:
        super().__init__()
        self.fn = import_function(fn) if isinstance(fn, str) else fn
        self.fn_name = fn if isinstance(fn, str) else getattr(fn, "__qualname__", repr(fn))
        self.units, self.differentiable = int(units), bool(differentiable)

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        try:
            out = self.fn(images)
        except Exception as exc:  # noqa: BLE001 - the user's function failed: one clear error, not a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise CallableError(f"callable scorer {self.fn_name!r} raised {type(exc).__name__}: {first}") from exc
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out, dtype=np.float32))
        out = out.to(images.device, torch.float32)
        if out.ndim == 1 and self.units == 1:
            out = out[:, None]
        return out

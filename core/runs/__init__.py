"""One run lifecycle for every kind of run: the :class:`RunKind` protocol, the ``RUN_KINDS`` table
and the one driver (:func:`execute`, :func:`resume`). Submodules load on first use."""
from __future__ import annotations

from typing import Any

__all__ = ["RunKind", "BaseRun", "RUN_KINDS", "run_kind", "register_kind", "execute", "drive", "finish", "resume"]


def __getattr__(name: str) -> Any:
    if name in ("RunKind", "BaseRun", "RUN_KINDS", "run_kind", "register_kind"):
        from actmax.core.runs import kind
        return getattr(kind, name)
    if name in ("execute", "drive", "finish", "resume"):
        from actmax.core.runs import driver
        return getattr(driver, name)
    raise AttributeError(name)

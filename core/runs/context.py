"""Provenance owned by one run: the weight files and random networks its parts used.

A part logs a weight file it resolves or loads (:func:`record_use`) and a random network it
builds on request (:func:`record_random`). The entries go to every :func:`capture` that is open
in the current context, never to a process-global log: the registry opens one around each part
it creates (and keeps what it caught on the part, ``part.weights_used``), and a run opens one
around building its parts. A run's provenance is therefore what its own parts used, whatever
else the process built before (issue 19: a random AlexNet built earlier no longer shows up in a
later synthesis). Live parts that were built without the registry name their file in
``weights_path``.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["record_use", "record_random", "capture", "RunProvenance"]

_OPEN: ContextVar[tuple[dict[str, dict[str, Any]], ...]] = ContextVar("actmax_provenance", default=())


def _log(key: str, entry: dict[str, Any]) -> None:
    for log in _OPEN.get():
        old = log.pop(key, None)
        if old is not None:
            for k, v in entry.items():
                if v and not old.get(k):
                    old[k] = v
            entry = old
        log[key] = dict(entry)


def record_use(path: str | Path, *, name: str = "", source: str = "", used_by: str = "") -> None:
    """Log a weight file a part is about to use (into every open :func:`capture`)."""
    key = str(Path(path).absolute())
    _log(key, {"path": key, "name": name, "source": source, "used_by": used_by})


def record_random(name: str, *, seed: int | None, used_by: str = "") -> None:
    """Log that a part built a *random* network on request (said in the run's manifest)."""
    _log(f"random:{name}:{seed}:{used_by}", {"name": name, "random": True, "seed": seed, "used_by": used_by})


@contextmanager
def capture() -> Iterator[dict[str, dict[str, Any]]]:
    """Collect what is logged inside the block (nested captures all see it), oldest first."""
    log: dict[str, dict[str, Any]] = {}
    token = _OPEN.set(_OPEN.get() + (log,))
    try:
        yield log
    finally:
        _OPEN.reset(token)


class RunProvenance:
    """The weights one run used: what was logged while its parts were built, plus what its parts carry."""

    def __init__(self) -> None:
        self.log: dict[str, dict[str, Any]] = {}

    @contextmanager
    def building(self) -> Iterator[None]:
        """Open around building the run's parts."""
        with capture() as log:
            yield
        for key, entry in log.items():
            self.log.setdefault(key, entry)

    def add_parts(self, parts: Iterable[Any]) -> None:
        """Add what live parts carry: ``weights_used`` (caught by the registry) and ``weights_path``."""
        for part in parts:
            for entry in getattr(part, "weights_used", ()) or ():
                key = entry.get("path") or f"random:{entry.get('name')}:{entry.get('seed')}:{entry.get('used_by')}"
                self.log.setdefault(key, dict(entry))
            path = getattr(part, "weights_path", None)
            if path:
                key = str(Path(path).absolute())
                self.log.setdefault(key, {"path": key, "name": "", "source": "", "used_by": type(part).__name__})

    def entries(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.log.values()]

"""The run-kind protocol and the table of run kinds.

A run kind (evolve, synthesize, screen, ...) is a class that the one driver
(:mod:`actmax.core.runs.driver`) steps, checkpoints, finishes and resumes. It knows its own
science; the driver knows the lifecycle (record, lock, checkpoint commit order, progress bar,
verification, repair). ``RUN_KINDS`` maps a record's ``kind`` to the class that runs it, by import
path and loaded on first use, so the kernel imports no application: ``actmax resume``, campaigns
and reports look kinds up here and nowhere else.
"""
from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

from actmax.core.errors import RecordError

__all__ = ["RunKind", "BaseRun", "RUN_KINDS", "run_kind", "register_kind"]


@runtime_checkable
class RunKind(Protocol):
    """What the driver needs from a run of one kind (see the driver for the order of the calls)."""

    kind: ClassVar[str]          # the record's ``kind``
    progress_unit: ClassVar[str]  # the progress bar's unit ("gen", "step", "img")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], path: Path, **live: Any) -> "RunKind":
        """Rebuild the run from a record's spec (``live``: objects a spec could not name)."""

    def record_spec(self) -> dict[str, Any]:
        """The spec written into the manifest (what :meth:`from_spec` reads back)."""

    @property
    def position(self) -> int:
        """Steps done (the checkpoint's ``step``)."""

    @property
    def total(self) -> int:
        """Steps of a whole run."""

    def step(self) -> int:
        """Advance one step; returns how far the progress bar moves."""

    def commit(self, rec: Any) -> bool:
        """After a step with a record: write the step's files; True when a checkpoint is due now."""

    def claims(self) -> list[str]:
        """Record files the next checkpoint vouches for (sha256)."""

    def state(self) -> dict[str, Any]:
        """The checkpoint state (tensors and plain values only)."""

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`; anything that does not fit is one RecordError."""

    def result(self, rec: Any, elapsed: float) -> Any:
        """The run's result object (``rec`` None: no record)."""

    def write_final(self, rec: Any, result: Any) -> None:
        """The derived files of a finished record (all rebuildable from the final checkpoint)."""

    def summary(self, result: Any) -> dict[str, Any]:
        """Fields the finished manifest gets."""

    def parts(self) -> list[Any]:
        """The run's parts (their weights go into the run's provenance)."""

    def description(self) -> str:
        """The progress bar's label."""

    def postfix(self) -> str | None:
        """The progress bar's running note (e.g. the best score so far)."""

    def on_record(self, rec: Any) -> None:
        """A new record was created: write what the run brings with it (reference images, recipe)."""

    def on_resumed(self, rec: Any, from_checkpoint: bool) -> None:
        """A killed run is about to continue."""

    def end_steps(self) -> None:
        """No more steps (free thread pools, data loaders); may be called more than once."""

    def close(self) -> None:
        """The run is over, in any way (give back what it changed in the parts passed in)."""


class BaseRun:
    """Defaults of the optional :class:`RunKind` methods."""

    kind: ClassVar[str] = ""
    progress_unit: ClassVar[str] = "step"

    def parts(self) -> list[Any]:
        return []

    def description(self) -> str:
        return self.kind

    def postfix(self) -> str | None:
        return None

    def claims(self) -> list[str]:
        return []

    def on_record(self, rec: Any) -> None:
        return None

    def on_resumed(self, rec: Any, from_checkpoint: bool) -> None:
        return None

    def stepping(self) -> Any:
        """A context the steps run in (e.g. a thread setting); none by default."""
        return contextlib.nullcontext()

    def end_steps(self) -> None:
        return None

    def close(self) -> None:
        self.end_steps()

    @classmethod
    def stored_result(cls, rec: Any, manifest: Mapping[str, Any], state: Mapping[str, Any],
                      meta: Mapping[str, Any]) -> Any:
        """The result of a finished, verified record read from its files (None: rebuild the run to get it)."""
        return None

    # -- what analyses read from a finished record of this kind ------------------------------
    @classmethod
    def read_stimuli(cls, rec: Any) -> list[tuple[str, Any]]:
        """The record's native stimuli as (label, (C, H, W)) pairs."""
        raise RecordError(f"{rec.path} is a {cls.kind!r} record; stimuli come from evolve and synthesize records")

    @classmethod
    def extremes(cls, record: Path, units: int) -> tuple[Any, Any, str]:
        """(highest, lowest response per unit, what they are) for the bidirectional analysis."""
        raise RecordError(f"{record}: expected a screen or synthesize record, got {cls.kind!r}")


#: record kind -> "module:Class" of its run kind (loaded on first use; plugins may add kinds)
RUN_KINDS: dict[str, str] = {
    "evolve": "actmax.core.runs.evolve:EvolveRun",
    "synthesize": "actmax.core.runs.synthesize:SynthesizeRun",
    "screen": "actmax.core.apps.screen:ScreenRun",
    "closed_loop": "actmax.core.apps.closed_loop_run:ClosedLoopRun",
}


def register_kind(kind: str, target: str | type) -> None:
    """Add a run kind: ``target`` is its class or ``"module:Class"``."""
    RUN_KINDS[kind] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def run_kind(kind: Any, where: str | Path = "record", doing: str = "resume") -> type:
    """The class that runs records of ``kind`` (one RecordError for an unknown kind)."""
    target = RUN_KINDS.get(kind) if isinstance(kind, str) else None
    if target is None:
        raise RecordError(f"{where}: cannot {doing} a run of kind {kind!r}; known kinds: {', '.join(sorted(RUN_KINDS))}")
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj

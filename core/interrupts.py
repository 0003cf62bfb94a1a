"""What to tell the user when a run stops early (Ctrl-C): where it stopped and how to continue.

:meth:`actmax.core.records.RunRecord.checkpoint` notes every commit here (folder, kind, step), so
the CLI can answer a KeyboardInterrupt with ``interrupted at generation N; continue with
`actmax resume DIR``` (exit 130) instead of a bare exit.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["note_started", "note_checkpoint", "interrupt_message"]

_STEP_WORD = {"evolve": "generation", "synthesize": "step", "screen": "image"}
_last: dict[str, object] = {}


def note_started(path: Path, kind: str) -> None:
    """A run began writing ``path`` (no checkpoint yet)."""
    _last.clear()
    _last.update(path=Path(path), kind=kind, step=None)


def note_checkpoint(path: Path, kind: str, step: int) -> None:
    _last.update(path=Path(path), kind=kind, step=int(step))


def interrupt_message() -> str:
    """One line for a Ctrl-C: where the last run stopped and the command that continues it."""
    if not _last:
        return "interrupted"
    path, kind, step = _last["path"], str(_last["kind"]), _last["step"]
    if step is None:
        return (f"interrupted before the first checkpoint of {path}; run the same command again "
                "(nothing was committed, so it starts over)")
    return f"interrupted at {_STEP_WORD.get(kind, 'step')} {step}; continue with `actmax resume {path}`"

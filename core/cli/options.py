"""Options shared by several commands."""
from __future__ import annotations

from typing import Any, Optional

import typer


def _resolve_progress(value: Optional[bool]) -> bool:
    from actmax.core.progress import show_progress

    return show_progress(value)


def progress_option() -> Any:
    """``--progress/--no-progress``; unset: a bar only when stderr is a terminal (never in logs)."""
    return typer.Option(None, "--progress/--no-progress", callback=_resolve_progress,
                        help="progress bars (default: only when stderr is a terminal)")

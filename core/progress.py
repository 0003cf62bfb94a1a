"""Progress bars that appear where someone is watching and nowhere else.

``progress=None`` (the default of the Python API and the CLI) means *auto*: a bar when
standard error is a terminal or the code runs in a Jupyter notebook, none otherwise, so
logs and redirected output never fill with carriage returns. ``True``/``False`` force it.
"""
from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm.auto draws a widget)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an odd IPython: treat as no notebook
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def show_progress(progress: bool | None = None) -> bool:
    """Resolve ``progress``: ``None`` -> on for a terminal or notebook, off otherwise."""
    if progress is None:
        return in_notebook() or stderr_is_terminal()
    return bool(progress)


def progress_bar(progress: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks) shown per :func:`show_progress`."""
    return tqdm(disable=not show_progress(progress), **kwargs)

"""Size bounds: a part whose size would exhaust memory is refused up front, with a clear message.

:func:`check_memory` compares an estimate of the bytes a part will allocate with the memory
available now (``MemAvailable`` of ``/proc/meminfo``, else physical pages) and raises a
ValueError (one ``error:`` line on the CLI) naming the option, the estimate and what is free.
``ACTMAX_MEMORY_CHECK=0`` turns the check off (e.g. on a machine with swap you mean to use).
"""
from __future__ import annotations

import os

__all__ = ["available_memory", "check_memory", "human_bytes"]


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (None if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PB"


def check_memory(nbytes: float, what: str) -> None:
    """Refuse ``what`` (e.g. ``fourier: size=1000000000``) if it would need more than the available memory."""
    if os.environ.get("ACTMAX_MEMORY_CHECK", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise ValueError(f"{what} needs about {human_bytes(nbytes)} of memory, but only {human_bytes(avail)} is "
                         "available; use a smaller value (or set ACTMAX_MEMORY_CHECK=0 to try anyway)")


def os_error_line(exc: OSError) -> str:
    """One line for a failed read or write: what failed, the path, and the free space on its disk."""
    import shutil
    from pathlib import Path

    path = exc.filename if exc.filename is not None else None
    text = exc.strerror or str(exc)
    where = Path(os.fspath(path)) if path is not None else Path.cwd()
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{human_bytes(shutil.disk_usage(probe).free)} free on that disk"
    except OSError:
        free = "free space unknown"
    name = f" {where}" if path is not None else ""
    return f"cannot write or read{name}: {text} ({free})"

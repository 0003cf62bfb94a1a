"""The record lock: an exclusive, process-reentrant ``flock`` held for a run's life."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from actmax.core.errors import RecordError
from actmax.core.files import now
from actmax.core.records.layout import LOCK

_HELD: dict[str, list[Any]] = {}   # real folder path -> [open lock file, nesting count]


class RecordLock:
    """An exclusive, process-reentrant ``flock`` on ``<folder>/.actmax.lock``.

    The kernel drops the lock when the holder exits in any way (SIGKILL included), so a
    lock file left by a dead process never blocks a new run. The file holds the holder's
    pid, host and start time, for the error a second writer gets.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._key: str | None = None

    def acquire(self) -> "RecordLock":
        import fcntl

        if self._key is not None:
            return self
        if self.folder.exists() and not self.folder.is_dir():
            raise RecordError(f"{self.folder} is a file, not a record folder; choose another --out folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise RecordError(f"cannot create the record folder {self.folder}: {exc}") from None
        key = os.path.realpath(self.folder)
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
            self._key = key
            return self
        path = self.folder / LOCK
        try:   # never through a symlink planted in the folder
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise RecordError(f"cannot open the lock file {path}: {exc.strerror}") from None
        fh = os.fdopen(fd, "r+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RecordError(f"{self.folder} is in use by {holder}; wait for that run to end "
                              "(or stop it) before writing to this record") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on host {socket.gethostname()} since {now()}\n")
        fh.flush()
        _HELD[key] = [fh, 1]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        held = _HELD.get(self._key)
        self._key = None
        if held is None:
            return
        held[1] -= 1
        if held[1] <= 0:
            _HELD.pop(os.path.realpath(self.folder), None)
            held[0].close()   # closing the file drops the flock

    @property
    def held(self) -> bool:
        return self._key is not None

    def __enter__(self) -> "RecordLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

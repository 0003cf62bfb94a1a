"""Files and hashing: atomic writes (readers see the old file or the new one), sha256, canonical JSON."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["atomic_write_bytes", "atomic_write_json", "json_default", "versions", "now", "sha256_bytes",
           "sha256_file", "spec_hash"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one.

    The file gets the permissions of an ordinary new file (0666 minus the umask), not the
    0600 of a temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:   # read-only or full disk: name the record file
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_UMASK)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:   # name the record file (not the temporary) in the error
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=json_default) + "\n").encode())


def json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def versions() -> dict[str, str]:
    """Versions of the software that shapes a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from actmax.core import __version__
    try:
        pycma = version("cma")
    except PackageNotFoundError:
        pycma = "not installed"
    return {"actmax": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "pycma": pycma, "platform": platform.platform()}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of a spec's canonical JSON (what a checkpoint cross-checks against the manifest)."""
    return sha256_bytes(json.dumps(spec, sort_keys=True, default=json_default).encode())



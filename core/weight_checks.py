"""Checking a weight file against what is known of it: the hub's sha256 (the Hugging Face cache keeps it
as the blob's name), torchvision's sha256 prefix in the file name, a known size, and its structure
(zip / safetensors / JSON). A truncated or empty file is ``corrupt``."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actmax.core.weights import WeightSpec

__all__ = ["sha256_file", "verify"]


# -- verification ------------------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The file's sha256 (hex), cached per (path, size, mtime) within the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    h.update(path.read_bytes())
    return h.hexdigest()


def _structure_problem(path: Path) -> str | None:
    """Why the file cannot be a whole weight/config file (None when its structure is intact)."""
    import json
    import struct
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(8)
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        if size < 8:
            return "shorter than a safetensors header"
        (n,) = struct.unpack("<Q", head)
        try:
            with open(path, "rb") as fh:
                fh.seek(8)
                header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a broken header
            return f"unreadable safetensors header ({type(exc).__name__})"
        return None if size == 8 + n + end else f"{size} bytes, the header says {8 + n + end}"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001
            return f"not valid JSON ({type(exc).__name__}: truncated?)"
        return None
    if head[:2] == b"PK":  # torch's zip format: the central directory sits at the end
        try:
            with zipfile.ZipFile(path) as zf:
                if not any(n.endswith("data.pkl") for n in zf.namelist()):
                    return "a zip file without a torch data.pkl"
        except (zipfile.BadZipFile, OSError) as exc:
            return f"truncated or damaged zip archive ({exc})"
        return None
    return None  # the legacy (pre-1.6) torch format has no cheap structural check


def _hf_blob_id(path: Path) -> str | None:
    """The Hugging Face cache's blob name for a cached file: the hub's sha256 (LFS) or git sha1."""
    try:
        target = path.resolve()
    except OSError:
        return None
    if target.parent.name == "blobs" and target.parent.parent.name.startswith("models--"):
        name = target.name
        if len(name) in (40, 64) and all(c in "0123456789abcdef" for c in name):
            return name
    return None


def verify(path: str | os.PathLike[str], spec: str | WeightSpec | None = None) -> tuple[str, str]:
    """``("verified" | "present" | "corrupt", detail)`` for a weight file.

    ``verified``: its sha256 matches what the hub publishes (the HF cache's blob name), actmax's
    table or torchvision's file-name prefix. ``present``: whole as far as its structure tells,
    no hash known to compare with. ``corrupt``: empty, wrong size, hash mismatch or broken
    structure (what an interrupted download leaves).
    """
    from actmax.core.weights import weight_spec

    p = Path(path)
    sp = weight_spec(spec) if spec is not None else None
    if not p.is_file():
        return "corrupt", "not a file"
    size = p.stat().st_size
    if size == 0:
        return "corrupt", "empty file (an interrupted download?)"
    if sp is not None and sp.size is not None and size != sp.size:
        return "corrupt", f"{size} bytes, expected {sp.size}"
    blob = _hf_blob_id(p)
    if blob is not None:
        actual = sha256_file(p) if len(blob) == 64 else _git_blob_sha1(p.resolve())
        if actual != blob:
            return "corrupt", f"{'sha256' if len(blob) == 64 else 'git sha1'} {actual[:12]}... differs from the hub's {blob[:12]}..."
        return "verified", f"{'sha256' if len(blob) == 64 else 'git sha1'} matches the hub's"
    if sp is not None and sp.sha256:
        actual = sha256_file(p)
        if actual != sp.sha256:
            return "corrupt", f"sha256 {actual[:12]}... differs from the known {sp.sha256[:12]}..."
        return "verified", "sha256 matches"
    if sp is not None and sp.sha256_prefix and p.name == sp.filename:
        actual = sha256_file(p)
        if not actual.startswith(sp.sha256_prefix):
            return "corrupt", f"sha256 {actual[:12]}... does not start with {sp.sha256_prefix} (the name's hash)"
        return "verified", "sha256 prefix in the file name matches"
    problem = _structure_problem(p)
    if problem:
        return "corrupt", problem
    return "present", "structure intact; no published hash to compare with"



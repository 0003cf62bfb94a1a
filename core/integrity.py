"""Integrity wherever a record is read: a file is returned only if the manifest vouches for it.

A finished record's manifest carries its own sha256 and the sha256 of every record file
(:meth:`actmax.core.records.RunRecord.finish`). Every reader (``load_run``, ``actmax analyze``,
campaign gather, the campaign's skip of finished cells) goes through :func:`check_record_file`,
so a flipped byte, a truncated, deleted or swapped file, or a manifest swapped in from another
run is one :class:`~actmax.core.errors.RecordError` naming the file, with
``actmax resume --repair DIR`` as the fix, never different data.

An unfinished record (status ``running``) holds no file digests yet: only its manifest's own
checksum and the files its checkpoint claims are checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from actmax.core.errors import RecordError

__all__ = ["check_record_file", "expected_files", "repair_hint"]


def repair_hint(path: Path) -> str:
    return f"`actmax resume --repair {path}` rebuilds what it can"


def expected_files(manifest: Mapping[str, Any], names: Iterable[str]) -> set[str]:
    """Those of ``names`` that a finished manifest lists (a reader must find them intact)."""
    files = manifest.get("files") if manifest.get("status") == "finished" else None
    return {n for n in names if isinstance(files, Mapping) and n in files}


def check_record_file(rec: Any, rel: str) -> Path:
    """``rec.path / rel`` once it matches the record's manifest (finished) or checkpoint claim (unfinished)."""
    from actmax.core.records import sha256_file

    manifest = rec.manifest(verify=True)
    path = rec.path / rel
    if manifest.get("status") == "finished":
        files = manifest.get("files")
        if not isinstance(files, Mapping):
            raise RecordError(f"{rec.path}: the finished manifest lists no file checksums; {repair_hint(rec.path)}")
        if rel not in files:
            if path.exists():
                raise RecordError(f"{path} is not one of the record's files (the manifest has no sha256 for it: "
                                  f"a file or manifest from another run?); {repair_hint(rec.path)}")
            raise RecordError(f"{rec.path}: {rel} is not part of this record")
        if not path.is_file():
            raise RecordError(f"{path} is missing (the manifest lists it); {repair_hint(rec.path)}")
        if sha256_file(path) != files[rel]:
            raise RecordError(f"{path} is corrupt or from another run (sha256 differs from the manifest's); "
                              f"{repair_hint(rec.path)}")
        return path
    if rec.has_checkpoint():
        meta = rec.load_checkpoint().get("meta") or {}
        if meta.get("run_id") != manifest.get("run_id"):
            raise RecordError(f"{rec.path}: the manifest and the checkpoint belong to different runs; "
                              f"{repair_hint(rec.path)}")
        claims = meta.get("files") or {}
        if rel in claims and (not path.is_file() or sha256_file(path) != claims[rel]):
            raise RecordError(f"{path} is missing or corrupt (sha256 differs from the checkpoint's); "
                              f"{repair_hint(rec.path)}")
    return path

"""Run records: one folder per run, one lifecycle for every run kind (evolve, synthesize, screen).

Layout (DESIGN.md): ``manifest.json`` (spec, seeds, versions, status, times, checksums),
``scores.parquet`` (one row per evaluated image), ``codes.safetensors`` (best code per
generation, or final codes of a synthesis), ``stimuli.safetensors`` (the native stimuli: float32
images at the generator's own resolution, what every analysis reads), ``images/`` (PNG
previews: 8-bit, upscaled, labelled as previews in their PNG text) and ``best.png``, and
``checkpoint.pt`` (loaded with ``weights_only=True``: no pickle is ever executed).

The lifecycle (:class:`RunRecord`), the same for every kind:

* **create** (or **open_for_resume**) takes an exclusive lock on the folder (``.actmax.lock``,
  ``fcntl.flock``: held for the run's life, released by the kernel on any exit, so a lock
  left by a dead process is free again); a second writer gets one error naming the holder.
* **checkpoint** is the commit point of a step: every file the step writes (scores table,
  montages) lands first, then the checkpoint that claims them by sha256, together with the
  run id, the spec's hash, the step count and the elapsed time so far.
* **finish** writes the derived files, re-saves the final checkpoint (kept: it is what
  ``--repair`` rebuilds from) and marks the manifest ``finished`` with the sha256 of every
  record file; elapsed time is summed over resumes.
* **resume** verifies the manifest, the checkpoint and every claimed file; a mismatch is one
  :class:`RecordError` (``actmax resume --repair`` rebuilds what the checkpoint can rebuild
  and says what it dropped). Resuming a *finished* run is a no-op that re-verifies the
  record and returns its result.
"""
from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import torch

from actmax.core.errors import InputError, RecordError
from actmax.core.files import json_default, now, sha256_bytes, sha256_file, spec_hash, versions
from actmax.core import files as fileio
from actmax.core.records.checkpoint import checkpoint_bytes, load_checkpoint_file
from actmax.core.records.layout import (CHECKPOINT, CODES, LOCK, MANIFEST, PART_KEYS, RECORD_FILES, SCORES,
                                        STIMULI)
from actmax.core.records.lock import RecordLock
from actmax.core.records.parts import PARTS, PartLog
from actmax.core.records.trust import check_trusted


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return sha256_bytes(json.dumps(body, sort_keys=True, default=json_default).encode())


class RunRecord:
    """The folder of one run, and the one lifecycle every run kind goes through.

    ``create`` / ``open_for_resume`` lock the folder; ``checkpoint`` commits a step;
    ``finish`` seals the record; ``close`` (or the end of the process) releases the lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = RecordLock(self.path)
        self._t0 = time.time()
        self._elapsed_before = 0.0
        self.identity: dict[str, Any] = {}
        self._untrusted = False
        #: append-only per-step parts (a kind that uses them starts or restores the log)
        self.parts = PartLog(self.path)

    # -- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, kind: str, spec: Mapping[str, Any], overwrite: bool = False,
               weights_used: Iterable[Mapping[str, Any]] = ()) -> "RunRecord":
        """Lock ``path`` and start a new record there (``overwrite`` replaces an old one).

        ``weights_used`` is the run's own weight log (its provenance, see :mod:`actmax.core.runs.context`).
        """
        from actmax.core.provenance import collect as collect_provenance

        rec = cls(path)
        rec.lock()
        try:
            if (rec.path / MANIFEST).exists():
                if not overwrite and rec._never_committed():
                    overwrite = True   # a run stopped before its first checkpoint: nothing to lose, run it again
                if not overwrite:
                    raise RecordError(f"{rec.path} already holds a run record; use `actmax resume {rec.path}` "
                                      "to continue it, or choose another --out folder")
                rec._clear()
            rec._clean_temporaries()
            manifest = {"kind": kind, "spec": dict(spec), "status": "running", "created": now(),
                        "updated": now(), "versions": versions(), "run_id": uuid.uuid4().hex,
                        "provenance": collect_provenance(spec, weights_used)}
            rec.write_manifest(manifest)
            rec.identity = rec._identity(manifest)
            from actmax.core.interrupts import note_started
            note_started(rec.path, kind)
        except BaseException:
            rec.close()
            raise
        return rec

    def _never_committed(self) -> bool:
        """A ``running`` record without a checkpoint (stopped or failed before its first commit)."""
        try:
            status = json.loads((self.path / MANIFEST).read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            return False
        return status == "running" and not self.has_checkpoint()

    @classmethod
    def open_for_resume(cls, path: str | Path, kind: str, *, trust: bool = False,
                        allow_live: bool = False) -> tuple["RunRecord", dict[str, Any]]:
        """Lock a record of ``kind`` for resuming: manifest verified, live-object and untrusted specs refused."""
        rec = cls(path)
        if not (rec.path / MANIFEST).exists():
            raise RecordError(f"{rec.path} is not a run record: {MANIFEST} is missing")
        rec.lock()
        if not trust:   # until close(): code named by the record is refused where it would be imported
            from actmax.core.trust import enter_untrusted
            enter_untrusted(str(rec.path))
            rec._untrusted = True
        try:
            manifest = rec.manifest(verify=True)
            if manifest.get("kind") != kind:
                raise RecordError(f"{path} holds a {manifest.get('kind')!r} run, not a {kind!r} run")
            spec = manifest.get("spec")
            if not isinstance(spec, dict):
                raise RecordError(f"{path}: {MANIFEST} has no spec")
            live = sorted(k for k, v in spec.items()
                          if k in PART_KEYS and (v is None or (isinstance(v, list) and None in v)))
            if live and not allow_live:
                raise RecordError(f"{path} was started from live Python objects ({', '.join(live)}); "
                                  "only runs built from specs can be resumed")
            check_trusted(path, spec, trust)
            rec.identity = rec._identity(manifest)
            from actmax.core.interrupts import note_started
            note_started(rec.path, kind)
            if manifest.get("status") != "finished":
                rec._clean_temporaries()
        except BaseException:
            rec.close()
            raise
        return rec, manifest

    # backwards-compatible name
    for_resume = open_for_resume

    def lock(self) -> "RunRecord":
        self._lock.acquire()
        return self

    def close(self) -> None:
        """Release the folder's lock (the end of the process releases it too) and leave the untrusted scope."""
        if self._untrusted:
            from actmax.core.trust import leave_untrusted
            self._untrusted = False
            leave_untrusted()
        self._lock.release()

    def start_clock(self, elapsed_before: float = 0.0) -> None:
        self._t0, self._elapsed_before = time.time(), float(elapsed_before)

    def elapsed(self) -> float:
        """Seconds spent on this run, summed over every resume."""
        return self._elapsed_before + time.time() - self._t0

    def mark_resumed(self, manifest: Mapping[str, Any]) -> None:
        self.update_manifest(status="running", resumed=int(manifest.get("resumed", 0)) + 1)

    def checkpoint(self, state: Mapping[str, Any], *, step: int, claims: Iterable[str] = ()) -> None:
        """Commit one step: ``claims`` (record-relative files already written) are sealed by sha256."""
        files = {}
        for rel in sorted(set(claims)):
            p = self.path / rel
            if p.exists():
                files[rel] = sha256_file(p)
        meta = {**self.identity, "step": int(step), "elapsed_s": self.elapsed(), "files": files}
        claim = self.parts.claim()
        if claim is not None:   # a fixed-size claim on the per-step parts (their index's prefix and sha256)
            meta["parts"] = claim
        self.save_checkpoint({"meta": meta, "state": dict(state)})
        from actmax.core.interrupts import note_checkpoint
        note_checkpoint(self.path, str(self.identity.get("kind")), step)

    def resume_state(self, *, repair: bool = False) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(state, meta) of the checkpoint, verified against the manifest; (None, {}) if there is none.

        Claimed files that no longer match are an error, or with ``repair`` are deleted and
        listed in ``meta["dropped"]`` (the caller rebuilds what it can).
        """
        if not self.has_checkpoint():
            return None, {}
        ckpt = self.load_checkpoint()
        meta, state = ckpt.get("meta"), ckpt.get("state")
        if not isinstance(meta, dict) or not isinstance(state, dict):
            raise RecordError(f"{self.path / CHECKPOINT} is not an actmax run checkpoint (no meta/state)")
        for key, value in self.identity.items():
            if meta.get(key) != value:
                raise RecordError(f"{self.path}: the checkpoint belongs to another run or spec ({key} "
                                  f"{meta.get(key)!r} != manifest's {value!r}); the manifest or checkpoint "
                                  "was edited or mixed up")
        dropped = []
        repaired_away = {rel for note in self.manifest().get("repairs", []) or []
                         for rel in (note.get("dropped", []) if isinstance(note, dict) else [])}
        for rel, digest in dict(meta.get("files", {})).items():
            p = self.path / rel
            if rel in repaired_away and not p.exists():
                continue   # an earlier --repair dropped it (and said so)
            if not p.exists() or sha256_file(p) != digest:
                if not repair:
                    raise RecordError(f"{self.path}: {rel} is missing or corrupt (sha256 differs from the "
                                      "checkpoint's); `actmax resume --repair` rebuilds what it can")
                p.unlink(missing_ok=True)
                dropped.append(rel)
        claim = meta.get("parts")
        if claim is not None and (not isinstance(claim, dict) or claim.get("end") != meta.get("step")):
            raise RecordError(f"{self.path}: the checkpoint's claim on {PARTS}/ does not end at its step "
                              f"{meta.get('step')} (corrupt or edited)")
        dropped += self.parts.restore(claim, repair=repair)
        meta = {**meta, "dropped": dropped}
        self._elapsed_before = float(meta.get("elapsed_s", 0.0))
        return state, meta

    def report_repair(self, rebuilt: list[str], dropped: list[str]) -> None:
        """Say (log warning + manifest ``repairs``) what a ``--repair`` rebuilt and what it dropped."""
        import logging

        note = {"rebuilt": sorted(rebuilt), "dropped": sorted(dropped)}
        logging.getLogger("actmax").warning(
            "repair of %s: rebuilt %s; dropped %s", self.path, ", ".join(note["rebuilt"]) or "nothing",
            (", ".join(note["dropped"]) + " (cannot be rebuilt from the checkpoint)") if dropped else "nothing")
        m = self.manifest()
        self.update_manifest(repairs=list(m.get("repairs", [])) + [note])

    def finish(self, **fields: Any) -> dict[str, Any]:
        """Seal the record: status finished, finish time, summed elapsed time, sha256 of every file."""
        return self.update_manifest(status="finished", finished=now(), elapsed_s=round(self.elapsed(), 3),
                                    files=self.file_digests(), **fields)

    def verify_finished(self, *, repair: bool = False) -> list[str]:
        """Check every file the finished manifest lists; returns the mismatching ones (error unless ``repair``)."""
        manifest = self.manifest(verify=True)
        bad = []
        for rel, digest in dict(manifest.get("files", {})).items():
            p = self.path / rel
            if not p.is_file() or sha256_file(p) != digest:
                bad.append(rel)
        if repair:
            for rel in bad:
                if rel != CHECKPOINT:   # the checkpoint is what a repair rebuilds from: load it, do not drop it
                    (self.path / rel).unlink(missing_ok=True)
        elif bad:
            raise RecordError(f"{self.path}: {bad[0]} is missing or corrupt (sha256 differs from the manifest's"
                              f"{'' if len(bad) == 1 else f'; {len(bad)} files in all'}); "
                              "`actmax resume --repair` rebuilds what it can")
        return bad

    def check_file(self, rel: str) -> Path:
        """``path/rel`` after checking it (see :func:`actmax.core.integrity.check_record_file`)."""
        from actmax.core.integrity import check_record_file
        return check_record_file(self, rel)

    def file_digests(self) -> dict[str, str]:
        out = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path).as_posix()
            if p.is_file() and rel not in (MANIFEST, LOCK) and not p.name.startswith("."):
                out[rel] = sha256_file(p)
        return out

    def _identity(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        spec = manifest.get("spec") or {}
        return {"run_id": manifest.get("run_id"), "kind": manifest.get("kind"),
                "seed": spec.get("seed", spec.get("seeds")), "spec_sha256": spec_hash(spec)}

    def _clear(self) -> None:
        import shutil

        old = []
        try:
            old = list(json.loads((self.path / MANIFEST).read_text()).get("files", {}))
        except Exception:  # noqa: BLE001 - a corrupt old manifest: remove the known names only
            pass
        for rel in list(RECORD_FILES) + old:
            p = self.path / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    def _clean_temporaries(self) -> None:
        """Remove temporary files a killed writer left behind (we hold the lock: nobody else writes)."""
        for folder in (self.path, self.path / "images", self.path / PARTS):
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    p.unlink(missing_ok=True)

    # -- manifest -------------------------------------------------------------------------
    def manifest(self, *, verify: bool = False) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            raise RecordError(f"{self.path} is not a run record: {MANIFEST} is missing")
        try:
            m = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordError(f"{path} is corrupt: {exc}") from exc
        if not isinstance(m, dict):
            raise RecordError(f"{path} is corrupt: not a JSON object")
        if verify:
            if "sha256" not in m:
                raise RecordError(f"{path} has no checksum (edited, or written by an older actmax)")
            if _manifest_digest(m) != m["sha256"]:
                raise RecordError(f"{path} is corrupt or was edited (its sha256 does not match its content)")
        return m

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        m = {k: v for k, v in manifest.items() if k != "sha256"}
        m = json.loads(json.dumps(m, default=json_default))  # the digest covers what JSON stores
        m["sha256"] = _manifest_digest(m)
        fileio.atomic_write_json(self.path / MANIFEST, m)

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        m = self.manifest()
        m.update(fields)
        m["updated"] = now()
        self.write_manifest(m)
        return m

    # -- tables and arrays ----------------------------------------------------------------
    def write_scores(self, table: pd.DataFrame) -> None:
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        fileio.atomic_write_bytes(self.path / SCORES, buf.getvalue())

    def scores(self, *, verify: bool = True) -> pd.DataFrame:
        """The scores table; ``verify`` (default) checks it against the finished manifest's sha256 first."""
        path = self.path / SCORES
        if verify:
            self.check_file(SCORES)
        if not path.exists():
            raise RecordError(f"{self.path}: {SCORES} is missing")
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
            raise RecordError(f"{path} is corrupt or truncated: {exc}") from exc

    def write_codes(self, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
        from safetensors.torch import save
        data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=dict(metadata or {}))
        fileio.atomic_write_bytes(self.path / CODES, data)

    def codes(self, *, verify: bool = True) -> dict[str, torch.Tensor]:
        if verify:
            self.check_file(CODES)
        return self._tensors(CODES)

    def write_stimuli(self, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
        """The native stimuli (float32 (N, C, H, W) or (C, H, W) in [0, 1], the generator's own size), lossless.

        At most one ``metadata`` entry: safetensors writes several in no fixed order, and a
        record's bytes must not change when it is rebuilt.
        """
        if len(metadata or {}) > 1:
            raise InputError("write_stimuli: give at most one metadata entry (several have no fixed byte order)")
        from safetensors.torch import save
        data = save({k: (v.detach().float() if v.is_floating_point() else v).cpu().contiguous()
                     for k, v in tensors.items()}, metadata=dict(metadata or {}))
        fileio.atomic_write_bytes(self.path / STIMULI, data)

    def stimuli(self, *, verify: bool = True) -> dict[str, torch.Tensor]:
        if verify:
            self.check_file(STIMULI)
        return self._tensors(STIMULI)

    def _tensors(self, name: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file
        path = self.path / name
        if not path.exists():
            raise RecordError(f"{self.path}: {name} is missing")
        try:
            return load_file(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
            raise RecordError(f"{path} is corrupt or truncated: {exc}") from exc

    # -- checkpoint -----------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        fileio.atomic_write_bytes(self.path / CHECKPOINT, checkpoint_bytes(state))

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint_file(self.path / CHECKPOINT)

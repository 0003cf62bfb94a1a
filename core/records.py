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

import hashlib
import io
import json
import os
import platform
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.errors import RecordError
from actmax.core.provenance import collect as collect_provenance

MANIFEST, SCORES, CODES, CHECKPOINT, BEST = "manifest.json", "scores.parquet", "codes.safetensors", "checkpoint.pt", "best.png"
#: the native stimuli (float32, the generator's own resolution and channels): what analyses read
STIMULI = "stimuli.safetensors"
#: PNG text keys that mark a record's PNG as a preview and name its native stimulus in STIMULI
PREVIEW_KEY, STIMULUS_KEY = "actmax-preview", "actmax-stimulus"
LOCK = ".actmax.lock"
CHECKPOINT_VERSION = 2
#: spec entries that name parts (None there means the run was built from a live object)
PART_KEYS = ("generator", "generators", "scorer", "optimizers", "ascent")
#: files a record may hold (removed by ``overwrite``; other files in the folder are left alone)
RECORD_FILES = (MANIFEST, SCORES, CODES, STIMULI, CHECKPOINT, BEST, "best.csv", "trajectory.png", "targets.csv",
                "reference_images.safetensors", "screen.parquet", "screen.csv", "unit_stats.parquet",
                "unit_stats.csv", "screen_summary.png", "images")


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
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
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
    return sha256_bytes(json.dumps(spec, sort_keys=True, default=_json_default).encode())


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return sha256_bytes(json.dumps(body, sort_keys=True, default=_json_default).encode())


# ==========================================================================================
# Locking
# ==========================================================================================
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


# ==========================================================================================
# Trust: a record is data
# ==========================================================================================
def imported_modules(spec: Any) -> list[tuple[str, str]]:
    """(module, where) for every module outside the installed plugins that the spec's parts name."""
    from actmax.core.trust import foreign_modules
    return foreign_modules({k: spec.get(k) for k in PART_KEYS if k in spec})


def check_trusted(path: str | Path, spec: Mapping[str, Any], trust: bool) -> None:
    """Refuse (before anything is built) a record whose spec names a module that is not an installed plugin.

    The decisive check is at import time (:func:`actmax.core.trust.import_code`, inside the
    :func:`actmax.core.trust.untrusted` scope every resume enters); this one fails early and names the part.
    """
    if trust:
        return
    from actmax.core.trust import TRUST_HINT
    foreign = imported_modules(spec)
    if foreign:
        module, part = foreign[0]
        raise RecordError(f"{path}: the record's spec imports module {module!r} ({part}), which is not an "
                          f"installed actmax plugin; {TRUST_HINT}")


# ==========================================================================================
# The record folder and its lifecycle
# ==========================================================================================
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

    # -- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, kind: str, spec: Mapping[str, Any], overwrite: bool = False) -> "RunRecord":
        """Lock ``path`` and start a new record there (``overwrite`` replaces an old one)."""
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
                        "provenance": collect_provenance(spec)}
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
        for folder in (self.path, self.path / "images"):
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
        m = json.loads(json.dumps(m, default=_json_default))  # the digest covers what JSON stores
        m["sha256"] = _manifest_digest(m)
        atomic_write_json(self.path / MANIFEST, m)

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
        atomic_write_bytes(self.path / SCORES, buf.getvalue())

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
        atomic_write_bytes(self.path / CODES, data)

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
            raise ValueError("write_stimuli: give at most one metadata entry (several have no fixed byte order)")
        from safetensors.torch import save
        data = save({k: (v.detach().float() if v.is_floating_point() else v).cpu().contiguous()
                     for k, v in tensors.items()}, metadata=dict(metadata or {}))
        atomic_write_bytes(self.path / STIMULI, data)

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
        atomic_write_bytes(self.path / CHECKPOINT, checkpoint_bytes(state))

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint_file(self.path / CHECKPOINT)


def checkpoint_bytes(state: Mapping[str, Any]) -> bytes:
    """A checkpoint file: the state's ``torch.save`` bytes wrapped with their sha256."""
    inner = io.BytesIO()
    torch.save(dict(state), inner)
    body = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, "sha256": sha256_bytes(body),
                "body": torch.frombuffer(bytearray(body), dtype=torch.uint8)}, outer)
    return outer.getvalue()


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its sha256; any damage is one RecordError."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"checkpoint {path} is missing")

    def load(src: Any) -> Any:
        return torch.load(src, map_location="cpu", weights_only=True)

    try:
        outer = load(path)
        ok = (isinstance(outer, dict) and outer.get("version") == CHECKPOINT_VERSION
              and isinstance(outer.get("body"), torch.Tensor) and isinstance(outer.get("sha256"), str))
        if ok:
            body = outer["body"].numpy().tobytes()
            if sha256_bytes(body) != outer["sha256"]:
                raise RecordError(f"checkpoint {path} is corrupt, truncated or edited (sha256 mismatch)")
            state = load(io.BytesIO(body))
    except RecordError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle refused, garbage bytes...
        raise RecordError(f"checkpoint {path} is corrupt, truncated or not an actmax checkpoint "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not ok or not isinstance(state, dict):
        raise RecordError(f"checkpoint {path} is not an actmax checkpoint of version {CHECKPOINT_VERSION}")
    return state


def state_field(state: Mapping[str, Any], *keys: str, where: str = "checkpoint") -> Any:
    """``state[k1][k2]...`` or one RecordError naming the missing key (never a bare KeyError)."""
    value: Any = state
    for k in keys:
        if not isinstance(value, Mapping) or k not in value:
            raise RecordError(f"{where} is missing {'/'.join(keys)} (corrupt or from another kind of run)")
        value = value[k]
    return value


@dataclass
class LoadedRun:
    """A run record read back: its manifest, score table, codes and native stimuli.

    ``stimuli`` holds float32 images at the generator's own resolution (evolve: ``best`` and per
    space ``<space>/best`` and ``<space>/best_per_generation`` with ``<space>/generations``;
    synthesize: ``images``, one per row of ``targets.csv``). The PNGs in a record are previews.
    """

    path: Path
    manifest: dict[str, Any]
    scores: pd.DataFrame
    codes: dict[str, torch.Tensor]
    stimuli: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind"))

    def __repr__(self) -> str:
        m = self.manifest
        return (f"LoadedRun({self.kind}, status={m.get('status')!r}, rows={len(self.scores)}, "
                f"codes={sorted(self.codes)}, stimuli={sorted(self.stimuli)}, path={str(self.path)!r})")


def load_run(path: str | Path, *, verify: bool = True) -> LoadedRun:
    """Read a run record folder (evolve, synthesize or screen) for analysis.

    ``verify`` (default): the manifest's own checksum is checked and, for a finished run, every
    file returned against the manifest's sha256 (a file the manifest lists but that is missing is
    an error too); any mismatch is one RecordError naming the file, with ``actmax resume --repair``
    as the fix. ``verify=False`` reads whatever is there (e.g. to inspect a damaged record).
    """
    rec = RunRecord(path)
    manifest = rec.manifest(verify=verify)
    if verify:
        from actmax.core.integrity import expected_files
        wanted = expected_files(manifest, (SCORES, CODES, STIMULI))
    else:
        wanted = set()
    scores = rec.scores(verify=verify) if (rec.path / SCORES).exists() or SCORES in wanted else pd.DataFrame()
    codes = rec.codes(verify=verify) if (rec.path / CODES).exists() or CODES in wanted else {}
    stimuli = rec.stimuli(verify=verify) if (rec.path / STIMULI).exists() or STIMULI in wanted else {}
    return LoadedRun(rec.path, manifest, scores, codes, stimuli)


def save_image(image: torch.Tensor, path: str | Path, *, stimulus: str | None = None) -> None:
    """One (C, H, W) image in [0, 1] as a PNG preview (atomic); ``stimulus`` names its native copy."""
    save_montage(image[None], path, nrow=1, padding=0, stimulus=stimulus)


def save_montage(images: torch.Tensor, path: str | Path, *, nrow: int = 8, padding: int = 2,
                 upscale_to: int = 96, stimulus: str | None = None, labels: Sequence[str] | None = None,
                 title: str | None = None) -> None:
    """A grid of (N, C, H, W) images in [0, 1] as a PNG preview (atomic); small images are upscaled (nearest).

    ``labels`` (one per image, e.g. a generation number or unit and pole) are written under the
    tiles and ``title`` above the grid (see :mod:`actmax.core.montage_labels`). The PNG's text says
    it is a preview (8-bit, upscaled) and, with ``stimulus``, which entry of the record's
    ``stimuli.safetensors`` holds the native image, so analyses read that instead.
    """
    import torch.nn.functional as F
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    c, h, w = images.shape[1:]
    factor = int(np.ceil(upscale_to / w)) if w < upscale_to else 1
    if factor > 1:
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
    grid = make_grid(images, nrow=max(1, nrow), padding=padding, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    if c == 1:
        arr = arr[..., 0]
    if labels is not None or title:
        from actmax.core.montage_labels import label_grid

        arr = label_grid(arr, n=len(images), nrow=max(1, nrow), tile=images.shape[-2:], padding=padding,
                         labels=labels, title=title)
    info = PngInfo()
    info.add_text(PREVIEW_KEY, f"8-bit preview of {len(images)} stimuli of {c}x{h}x{w}, upscaled x{factor} "
                               f"(nearest); native float stimuli: {STIMULI}")
    if stimulus is not None:
        info.add_text(STIMULUS_KEY, stimulus)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(Path(path), buf.getvalue())

"""Run records: one folder per run, one lifecycle for every run kind (see :mod:`.record`).

The package is split by job: :mod:`.layout` (file names), :mod:`.lock` (the folder lock),
:mod:`.trust` (a record is data), :mod:`.checkpoint` (the checkpoint codec), :mod:`.record`
(:class:`RunRecord`, the lifecycle), :mod:`.load` (:func:`load_run`) and :mod:`.previews` (PNG
previews). Files and hashing live in :mod:`actmax.core.files`. Everything is re-exported here.
"""
from __future__ import annotations

from actmax.core.files import (atomic_write_bytes, atomic_write_json, json_default, now, sha256_bytes, sha256_file,
                               spec_hash, versions)
from actmax.core.records.checkpoint import checkpoint_bytes, load_checkpoint_file, state_field
from actmax.core.records.layout import (BEST, CHECKPOINT, CHECKPOINT_VERSION, CODES, LOCK, MANIFEST, PART_KEYS,
                                        PREVIEW_KEY, RECORD_FILES, SCORES, STIMULI, STIMULUS_KEY)
from actmax.core.records.load import LoadedRun, load_run
from actmax.core.records.lock import RecordLock
from actmax.core.records.previews import save_image, save_montage
from actmax.core.records.record import RunRecord
from actmax.core.records.trust import check_trusted, imported_modules

__all__ = ["atomic_write_bytes", "atomic_write_json", "json_default", "now", "sha256_bytes", "sha256_file",
           "spec_hash", "versions", "checkpoint_bytes", "load_checkpoint_file", "state_field", "BEST", "CHECKPOINT",
           "CHECKPOINT_VERSION", "CODES", "LOCK", "MANIFEST", "PART_KEYS", "PREVIEW_KEY", "RECORD_FILES", "SCORES",
           "STIMULI", "STIMULUS_KEY", "LoadedRun", "load_run", "RecordLock", "save_image", "save_montage",
           "RunRecord", "check_trusted", "imported_modules"]

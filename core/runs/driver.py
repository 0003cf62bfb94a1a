"""The one driver of every run kind: start, step, checkpoint, finish, resume.

Commit order per step: the step's files first (scores table, montages: ``commit``), then the
checkpoint that claims them by sha256, so a kill never leaves a checkpoint ahead of its files.
Finishing writes the derived files (compacting per-step parts, :mod:`actmax.core.records.parts`),
re-saves the final checkpoint (holding the run's data inline), removes the parts and seals the manifest.
Resuming verifies the record (checksums, run id, spec, step counter), rebuilds the run from its
spec, loads the checkpoint and continues; a finished run is re-verified and its result returned
(``repair`` rebuilds its derived files from the final checkpoint).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from actmax.core.errors import RecordError
from actmax.core.progress import progress_bar
from actmax.core.records import RunRecord
from actmax.core.runs.context import RunProvenance
from actmax.core.runs.kind import RunKind, run_kind

__all__ = ["execute", "drive", "finish", "resume"]


def execute(build: Callable[[], RunKind], *, out_dir: str | Path | None, overwrite: bool = False,
            progress: bool | None = None) -> Any:
    """Build a run (its parts' weights are logged into the run's own provenance) and drive it to the end."""
    provenance = RunProvenance()
    with provenance.building():
        run = build()
    rec = None
    try:
        provenance.add_parts(run.parts())
        if out_dir is not None:
            rec = RunRecord.create(out_dir, kind=run.kind, spec=run.record_spec(), overwrite=overwrite,
                                   weights_used=provenance.entries())
            run.on_record(rec)
        return drive(run, rec, progress)
    finally:
        run.close()
        if rec is not None:
            rec.close()


def drive(run: RunKind, rec: RunRecord | None, progress: bool | None) -> Any:
    """Step ``run`` to its end, checkpointing into ``rec`` (when given), then finish it."""
    bar = progress_bar(progress, total=run.total, initial=run.position, desc=run.description(),
                       unit=run.progress_unit, leave=False)
    try:
        with run.stepping():
            while run.position < run.total:
                moved = run.step()
                if rec is not None and run.commit(rec):
                    rec.checkpoint(run.state(), step=run.position, claims=run.claims())
                bar.update(moved)
                postfix = run.postfix()
                if postfix:
                    bar.set_postfix(best=postfix)
    finally:
        bar.close()
        run.end_steps()
    result = run.result(rec, rec.elapsed() if rec is not None else 0.0)
    if rec is not None:
        finish(run, rec, result)
    return result


def finish(run: RunKind, rec: RunRecord, result: Any, *, checkpoint: bool = True) -> None:
    """Derived files, the final checkpoint (kept as it is by a repair), the sealed manifest."""
    run.write_final(rec, result)           # compacts any per-step parts into the record's tables
    if checkpoint:
        rec.parts.retire()                  # the final checkpoint holds the run's data inline ...
        rec.checkpoint(run.state(), step=run.position, claims=run.claims())
    rec.parts.remove()                      # ... so the parts go before the manifest is sealed
    rec.finish(**run.summary(result))


def resume(path: str | Path, *, progress: bool | None = None, trust: bool = False, repair: bool = False,
           kind: str | None = None, **live: Any) -> Any:
    """Continue (or re-verify) the record at ``path``, whatever its kind (looked up in ``RUN_KINDS``).

    ``kind`` insists on one kind; ``live`` passes objects the record could not name (a screen's
    live scorer); ``trust`` allows specs that import non-plugin modules; ``repair`` rebuilds
    what the checkpoint can rebuild and says what it dropped.
    """
    if kind is None:
        kind = RunRecord(path).manifest().get("kind")
    cls = run_kind(kind, path)
    allow_live = any(v is not None for v in live.values())
    rec, manifest = RunRecord.open_for_resume(path, kind, trust=trust, allow_live=allow_live)
    run = None
    try:
        finished = manifest.get("status") == "finished"
        bad = rec.verify_finished(repair=repair) if finished else []
        state, meta = rec.resume_state(repair=repair)
        if finished and not bad and state is not None:   # verified: the stored result if the kind can read it
            stored = cls.stored_result(rec, manifest, state, meta)
            if stored is not None:
                return stored
        try:
            run = cls.from_spec(manifest["spec"], rec.path, **live)
        except (KeyError, TypeError) as exc:
            raise RecordError(f"{rec.path}: the manifest's spec lacks {exc}") from None
        if state is None and (finished or repair):
            raise RecordError(f"{rec.path}: the checkpoint is missing, so nothing can be verified or rebuilt; "
                              "start the run again with --overwrite")
        if state is not None:
            run.load_state(state)
            if int(meta.get("step", -1)) != run.position:
                raise RecordError(f"{rec.path}: the checkpoint's step counter {meta.get('step')} disagrees with "
                                  f"its state ({run.position} {run.progress_unit} done)")
        if finished:
            return _resumed_finished(run, rec, manifest, bad)
        if meta.get("dropped"):
            rec.report_repair([], meta["dropped"])
        rec.mark_resumed(manifest)
        run.on_resumed(rec, state is not None)
        return drive(run, rec, progress)
    finally:
        if run is not None:
            run.close()
        rec.close()


def _resumed_finished(run: RunKind, rec: RunRecord, manifest: dict[str, Any], bad: list[str]) -> Any:
    if run.position != run.total:
        raise RecordError(f"{rec.path}: finished manifest, but the checkpoint holds {run.position} of "
                          f"{run.total} {run.progress_unit}")
    elapsed = float(manifest.get("elapsed_s", 0.0))
    run.end_steps()
    result = run.result(rec, elapsed)
    if bad:   # --repair of a finished run: rebuild the derived files from the final checkpoint
        rec.start_clock(elapsed)
        finish(run, rec, result, checkpoint=False)
        rec.report_repair([b for b in bad if (rec.path / b).exists()], [b for b in bad if not (rec.path / b).exists()])
    return result

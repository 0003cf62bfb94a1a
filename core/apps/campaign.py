"""Campaigns: a grid of runs (units x generator spaces x optimizers x seeds [x poles]) fanned out.

A campaign spec (TOML, YAML or JSON) names one scorer and the axes of the grid; every grid
cell is one ordinary run record (:func:`actmax.core.evolve.evolve` or :func:`actmax.core.synthesize.synthesize`
with ``out_dir``) in a folder whose name is derived from the cell itself, so the same spec
always maps to the same folders. Cells run

* locally in parallel processes (``backend="local"``, ``workers`` processes,
  :class:`concurrent.futures.ProcessPoolExecutor`; ``workers <= 1`` runs them in this process), or
* on a cluster through **submitit** (``backend="submitit"``; SLURM, or submitit's local
  executor with ``cluster="local"``, which starts each job as a local process). Cells are
  packed into ``jobs`` array jobs so that a few hundred tiny runs do not become a few hundred
  scheduler jobs.

Running a spec again is safe: finished cells (manifest ``status == "finished"``) are skipped,
killed ones (``status == "running"`` with a checkpoint) continue with
:func:`actmax.core.evolve.resume_evolution` / :func:`actmax.core.synthesize.resume_synthesis`, and cells
without a usable record start afresh. :func:`gather` merges the records into tidy parquet
tables. Example spec::

    scorer = "model:kind=mixed,n=6,size=32"
    units = [0, 1, 2]                       # or "all"
    spaces = ["gabor:size=32", ["fourier:size=32", "gabor:size=32"]]   # a list = paired evolution
    optimizers = ["cholesky_cma:popsize=12", "genetic:popsize=12"]
    seeds = 3                               # or a list of seeds
    generations = 20
    [reference]                             # optional natural reference images in every block
    n = 8
    [cluster]                               # optional submitit parameters (e.g. slurm_partition)
    timeout_min = 120
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from actmax.core.apps.campaign_gather import (CAMPAIGN_FILE, EXECUTED, LOG_FILE, RUNS_DIR, TABLES_DIR,  # noqa: F401
                                              _campaign_cells, campaign_log, executions, gather, iter_records)
from actmax.core.apps.campaign_spec import (CELL_KINDS, KINDS, REFERENCE_KEYS, SPEC_KEYS, CampaignSpec, Cell,  # noqa: F401
                                            _canonical, load_spec)
from actmax.core.errors import CellSpecError, InputError, RecordError  # noqa: F401  (CellSpecError re-exported)

log = logging.getLogger("actmax")

__all__ = ["Cell", "CampaignSpec", "CampaignReport", "load_spec", "run_campaign", "run_cell", "cell_status",
           "gather", "BACKENDS"]

BACKENDS = ("local", "submitit")
CLUSTER_DIR = "cluster"


# ============================================================================================
# Running one cell
# ============================================================================================
def cell_status(path: str | Path) -> str:
    """``new`` (no record), ``finished``, ``interrupted`` (running with a checkpoint) or ``broken``."""
    from actmax.core.records import RunRecord

    rec = RunRecord(path)
    if not (rec.path / "manifest.json").exists():
        return "new"
    try:
        status = rec.manifest().get("status")
    except RecordError:
        return "broken"
    if status == "finished":
        return "finished"
    if status == "running" and rec.has_checkpoint():
        return "interrupted"
    return "broken"


def _reference_images(ref: Mapping[str, int], scorer_size: int | None) -> Any:
    import torch

    from actmax.core.apps.natural_images import sample_patches

    size = int(ref.get("size", scorer_size or 64))
    patches = sample_patches(int(ref["n"]), size, channels=int(ref.get("channels", 1)), seed=int(ref.get("seed", 0)))
    return torch.from_numpy(patches)


def _fresh(cell: Cell, path: Path) -> Any:
    """Run the cell afresh: its run kind built from the cell's run spec, by the one driver."""
    from actmax.core.runs import execute, run_kind

    live: dict[str, Any] = {}
    if cell.reference:
        from actmax.core.registry import scorers
        size = scorers.create(cell.scorer).size if "size" not in cell.reference else None
        live["reference_images"] = _reference_images(cell.reference, size)
    cls = run_kind(cell.kind, path, "run")
    spec = CELL_KINDS[cell.kind].run_spec(cell)
    return execute(lambda: cls.from_spec(spec, path, **live), out_dir=path, overwrite=True, progress=False)


def expected_cell_spec(cell: Cell) -> dict[str, Any]:
    """The part specs (and numbers) a cell's record must hold for the cell to be resumed from it."""
    return CELL_KINDS[cell.kind].expected_spec(cell)


def check_cell_spec(cell: Cell, path: Path) -> None:
    """Refuse to resume a cell whose record's spec is not the campaign file's (it would run the record's code)."""
    from actmax.core.records import RunRecord

    spec = RunRecord(path).manifest(verify=True).get("spec")
    if not isinstance(spec, Mapping):
        raise CellSpecError(f"{path}: the record has no spec; remove the folder to run the cell again")
    for key, want in expected_cell_spec(cell).items():
        have = spec.get(key)
        if have != want:
            raise CellSpecError(f"{path}: the record's {key} is {have!r}, the campaign file's is {want!r}; a cell "
                                "resumes only with the campaign's spec (remove the folder to run the cell again)")


def _resume(cell: Cell, path: Path) -> Any:
    # trust=True only after the record's spec was checked to be the campaign file's (the user's) spec
    check_cell_spec(cell, path)
    from actmax.core.runs import resume
    return resume(path, kind=cell.kind, trust=True, progress=False)


def run_cell(cell: Cell | Mapping[str, Any], root: str | Path, *, threads: int | None = 1) -> dict[str, Any]:
    """Run one cell into ``root/runs/<cell.name>``: skip it if finished, resume it if killed.

    Returns a row for the campaign log: name, ``action`` (skipped, ran, resumed, restarted or
    failed), seconds, error and the process id that ran it. Errors are caught and reported so
    that one bad cell does not stop the others. The cell's record folder is locked for the
    whole time, so two campaigns on one folder never write the same cell at once.
    """
    import torch

    from actmax.core.records import RecordLock

    cell = cell if isinstance(cell, Cell) else Cell.from_dict(cell)
    path = Path(root) / RUNS_DIR / cell.name
    row: dict[str, Any] = {"name": cell.name, "action": "skipped", "seconds": 0.0, "error": "", "pid": os.getpid()}
    lock = RecordLock(path)
    try:
        lock.acquire()
    except RecordError as exc:
        row.update(action="failed", error=f"RecordError: {exc}")
        return row
    before = torch.get_num_threads()          # the caller's setting is restored afterwards
    if threads:
        torch.set_num_threads(int(threads))
    try:
        status = cell_status(path)
        if status == "finished":
            verify_finished_cell(path, row)
            return row
        t0 = time.time()
        _execute(cell, path, status, row)
        row["seconds"] = round(time.time() - t0, 3)
        return row
    finally:
        torch.set_num_threads(before)
        lock.release()


def _execute(cell: Cell, path: Path, status: str, row: dict[str, Any]) -> None:
    try:
        if status == "interrupted":
            try:
                _resume(cell, path)
                row["action"] = "resumed"
            except RecordError as exc:  # a damaged checkpoint: start over rather than fail the cell
                log.warning("campaign: %s could not be resumed (%s); starting it again", cell.name, exc)
                _fresh(cell, path)
                row.update(action="restarted", error=f"resume failed: {exc}")
        else:
            _fresh(cell, path)
            row["action"] = "ran" if status == "new" else "restarted"
    except Exception as exc:  # noqa: BLE001 - reported per cell, the campaign goes on
        row.update(action="failed", error=f"{type(exc).__name__}: {exc}")


def verify_finished_cell(path: Path, row: dict[str, Any]) -> bool:
    """A finished cell is skipped only once every file matches its manifest; else the row fails, naming the file."""
    from actmax.core.records import RunRecord

    try:
        RunRecord(path).verify_finished()
    except RecordError as exc:
        row.update(action="failed", error=f"RecordError: {exc}")
        return False
    return True


def run_cells(cells: Sequence[Mapping[str, Any]], root: str, threads: int | None = 1) -> list[dict[str, Any]]:
    """Run several cells one after another (the body of one submitit job)."""
    return [run_cell(c, root, threads=threads) for c in cells]


def _init_worker(threads: int) -> None:
    """Worker start: torch threads, and die with the parent (Linux ``PR_SET_PDEATHSIG``)."""
    import torch
    torch.set_num_threads(int(threads))
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux only; elsewhere a no-op)."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc.so.6
        return
    if os.getppid() == 1:  # the parent already died before prctl took effect
        os._exit(1)


class CampaignInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) reached the campaign: workers are stopped, the next run resumes."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    import signal
    raise CampaignInterrupted(f"campaign stopped by {signal.Signals(signum).name}")


# ============================================================================================
# Running a campaign
# ============================================================================================
@dataclass
class CampaignReport:
    """What one invocation did: one row per cell (name, action, seconds, error, pid, ...)."""

    table: pd.DataFrame
    root: Path
    elapsed_s: float
    backend: str

    def counts(self) -> dict[str, int]:
        c = self.table["action"].value_counts()
        return {a: int(c.get(a, 0)) for a in ("ran", "resumed", "restarted", "skipped", "failed")}

    def summary(self) -> str:
        c = self.counts()
        return (f"{len(self.table)} cells in {self.elapsed_s:.1f} s ({self.backend}): " +
                ", ".join(f"{v} {k}" for k, v in c.items()) + f"; records in {self.root / RUNS_DIR}")


def _write_campaign_file(root: Path, spec: CampaignSpec, cells: Sequence[Cell]) -> None:
    from actmax.core.records import atomic_write_json, now

    path = root / CAMPAIGN_FILE
    previous = json.loads(path.read_text()) if path.exists() else {}
    known = {Cell.from_dict(c).name: c for c in previous.get("cells", [])}
    known.update({c.name: c.to_dict() for c in cells})  # a grown grid keeps the older cells listed
    spec_dict = asdict(spec)
    spec_dict["spaces"] = [list(s) for s in spec.spaces]
    atomic_write_json(path, {"name": spec.name, "spec": spec_dict, "updated": now(), "cells": list(known.values())})


def _append_log(root: Path, table: pd.DataFrame) -> None:
    path = root / LOG_FILE
    table.to_csv(path, mode="a", header=not path.exists(), index=False)


def run_campaign(spec: CampaignSpec | Mapping[str, Any] | str | Path, *, out: str | Path | None = None,
                 backend: str = "local", workers: int = 1, jobs: int | None = None, cluster: str | None = None,
                 cluster_params: Mapping[str, Any] | None = None, progress: bool = False) -> CampaignReport:
    """Run every cell of ``spec`` that is not finished yet; return what was done.

    ``backend="local"``: ``workers`` processes (``<= 1``: in this process). ``backend="submitit"``:
    cells packed into ``jobs`` array jobs (default ``workers``) on ``cluster`` (``"slurm"``,
    ``"local"`` or ``None`` = SLURM when available, else local processes); ``cluster_params``
    (merged over the spec's ``[cluster]`` table) go to ``executor.update_parameters``.
    """
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, Mapping):
        spec = CampaignSpec.from_mapping(spec)
    if backend not in BACKENDS:
        raise InputError(f"campaign: backend must be one of {BACKENDS}, got {backend!r}")
    root_text = out if out is not None else spec.out
    if root_text is None:
        raise InputError("campaign: no output folder (give --out or 'out' in the spec)")
    root = Path(root_text).resolve()
    spec.validate_parts()
    if backend == "local" and spec.cluster:
        log.warning("campaign: the spec's [cluster] keys (%s) are ignored by the local backend",
                    ", ".join(sorted(spec.cluster)))
    if root.exists() and not root.is_dir():
        raise InputError(f"campaign: the output {root} is a file, not a folder")
    root.mkdir(parents=True, exist_ok=True)
    cells = spec.cells()
    _write_campaign_file(root, spec, cells)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    pending = []
    for cell in cells:
        if cell_status(root / RUNS_DIR / cell.name) == "finished":
            row = {"name": cell.name, "action": "skipped", "seconds": 0.0, "error": "", "pid": os.getpid()}
            verify_finished_cell(root / RUNS_DIR / cell.name, row)   # skipped only if intact, else failed
            rows.append(row)
        else:
            pending.append(cell)
    if pending:
        with _stop_on_signals():
            if backend == "local":
                rows += _run_local(pending, root, workers=workers, threads=spec.threads, progress=progress)
            else:
                params = {**spec.cluster, **dict(cluster_params or {})}
                rows += _run_submitit(pending, root, jobs=jobs or max(1, workers), cluster=cluster, params=params,
                                      threads=spec.threads, progress=progress)
    by_name = {c.name: c for c in cells}
    table = pd.DataFrame(rows)
    order = {c.name: i for i, c in enumerate(cells)}
    table = table.sort_values("name", key=lambda s: s.map(order)).reset_index(drop=True)
    table.insert(1, "unit", [CELL_KINDS[by_name[n].kind].unit(by_name[n]) for n in table["name"]])
    table.insert(2, "space", [by_name[n].space_label for n in table["name"]])
    table.insert(3, "optimizer", [by_name[n].optimizer for n in table["name"]])
    table.insert(4, "seed", [by_name[n].seed for n in table["name"]])
    from actmax.core.records import now
    table.insert(0, "invocation", now())
    _append_log(root, table)
    return CampaignReport(table=table, root=root, elapsed_s=time.time() - t0, backend=backend)


class _stop_on_signals:
    """While a campaign runs (main thread only): SIGTERM raises :class:`CampaignInterrupted` like
    Ctrl-C does, so the pool's workers are killed on the way out instead of being orphaned."""

    def __enter__(self) -> "_stop_on_signals":
        import signal
        import threading

        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


def _run_local(cells: Sequence[Cell], root: Path, *, workers: int, threads: int, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), disable=not progress, desc="campaign", unit="run")
    rows = []
    try:
        if workers <= 1:
            for cell in cells:
                rows.append(run_cell(cell, root, threads=threads))
                bar.update(1)
            return rows
        import multiprocessing as mp

        # spawn: forked children of a process that already ran torch's thread pools can hang
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(run_cell, cell.to_dict(), str(root), threads=threads): cell for cell in cells}
            try:
                for fut in as_completed(futures):
                    try:
                        rows.append(fut.result())
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker process died
                        rows.append({"name": futures[fut].name, "action": "failed", "seconds": 0.0,
                                     "error": f"{type(exc).__name__}: {exc}", "pid": -1})
                    bar.update(1)
            except BaseException:
                for f in futures:
                    f.cancel()
                _stop_workers(pool)
                raise
        return rows
    finally:
        bar.close()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill every worker of ``pool`` now (their records stay resumable) and shut the pool down."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        try:
            p.kill()
        except (OSError, AttributeError):
            pass
    for p in procs:
        p.join(timeout=5)
    pool.shutdown(wait=False, cancel_futures=True)


def _chunks(items: Sequence[Any], n: int) -> list[list[Any]]:
    n = max(1, min(int(n), len(items)))
    return [list(items[i::n]) for i in range(n)]


def _run_submitit(cells: Sequence[Cell], root: Path, *, jobs: int, cluster: str | None, params: Mapping[str, Any],
                  threads: int, progress: bool) -> list[dict]:
    try:
        import submitit
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the submitit backend needs submitit: pip install 'actmax[cluster]'") from exc
    from tqdm.auto import tqdm

    executor = submitit.AutoExecutor(folder=str(root / CLUSTER_DIR), cluster=cluster)
    if executor.cluster == "slurm":   # one log folder per SLURM job; %j is only expanded by SLURM
        executor = submitit.AutoExecutor(folder=str(root / CLUSTER_DIR / "%j"), cluster=cluster)
    else:
        ignored = sorted(k for k in params if k.startswith("slurm_"))
        if ignored:
            log.warning("campaign: [cluster] keys %s apply to SLURM only and are ignored on this %s run",
                        ", ".join(ignored), executor.cluster)
    settings = {"timeout_min": 60, "name": "actmax-campaign", **dict(params)}
    executor.update_parameters(**settings)
    chunks = _chunks(list(cells), jobs)
    payload = [[c.to_dict() for c in chunk] for chunk in chunks]
    submitted = executor.map_array(run_cells, payload, [str(root)] * len(payload), [threads] * len(payload))
    rows: list[dict] = []
    bar = tqdm(total=len(cells), disable=not progress, desc=f"campaign ({executor.cluster})", unit="run")
    try:
        for job, chunk in zip(submitted, chunks):
            try:
                rows += job.result()
            except Exception as exc:  # noqa: BLE001 - a failed / timed-out job fails its cells
                first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                rows += [{"name": c.name, "action": "failed", "seconds": 0.0, "pid": -1,
                          "error": f"job {job.job_id}: {type(exc).__name__}: {first}"} for c in chunk]
            bar.update(len(chunk))
    except BaseException:   # Ctrl-C / SIGTERM: cancel the jobs (local processes are killed, SLURM jobs scancelled)
        for job in submitted:
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        raise
    finally:
        bar.close()
    return rows



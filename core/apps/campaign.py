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
import re
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from actmax.core.errors import RecordError
from actmax.core.registry import spec_text

log = logging.getLogger("actmax")

__all__ = ["Cell", "CampaignSpec", "CampaignReport", "load_spec", "run_campaign", "run_cell", "cell_status",
           "gather", "BACKENDS"]

KINDS = ("evolve", "synthesize")
BACKENDS = ("local", "submitit")
SPEC_KEYS = {"name", "kind", "scorer", "units", "spaces", "optimizers", "seeds", "poles", "generations",
             "reference", "image_every", "out", "device", "threads", "cluster", "checkpoint_every", "plots"}
REFERENCE_KEYS = {"n", "size", "channels", "seed"}
RUNS_DIR, CAMPAIGN_FILE, LOG_FILE, TABLES_DIR, CLUSTER_DIR = "runs", "campaign.json", "campaign_log.csv", "tables", "cluster"
EXECUTED = ("ran", "resumed", "restarted")


# ============================================================================================
# Spec and cells
# ============================================================================================
def _canonical(spec: Any, what: str) -> str:
    """Canonical ``name:k=v`` text of a part spec string or dict (options sorted, defaults dropped:
    equal specs share folders)."""
    kind = {"space": "generator"}.get(what, what)
    if isinstance(spec, str):
        return spec_text(spec, kind)
    if isinstance(spec, Mapping):
        if "name" not in spec and "path" not in spec:
            raise ValueError(f"campaign: {what} spec {dict(spec)!r} has no 'name' key")
        return spec_text(spec, kind)
    raise ValueError(f"campaign: {what} must be a 'name:key=value' string or a table with a name, "
                     f"got {type(spec).__name__}")


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit].rstrip("-") or "x"


@dataclass(frozen=True)
class Cell:
    """One grid cell = one run record."""

    kind: str
    scorer: str
    spaces: tuple[str, ...]          # one space, or several for paired evolution
    optimizer: str
    seed: int
    units: tuple[int, ...]           # evolve: exactly one unit; synthesize: the batched units
    poles: tuple[str, ...]           # evolve: exactly one pole; synthesize: the batched poles
    generations: int = 0             # evolve only
    reference: Mapping[str, int] | None = None
    image_every: int = 0
    checkpoint_every: int = 25
    device: str | None = None
    plots: bool = True               # False: no per-run trajectory.png (saves ~0.2-0.7 s per tiny run)

    def identity(self) -> dict[str, Any]:
        """Everything that shapes the run's numbers (the folder name hashes this)."""
        ident = {"kind": self.kind, "scorer": self.scorer, "spaces": list(self.spaces),
                 "optimizer": self.optimizer, "seed": self.seed, "units": list(self.units),
                 "poles": list(self.poles)}
        if self.kind == "evolve":
            ident.update(generations=self.generations, reference=dict(self.reference) if self.reference else None)
        return ident

    @property
    def name(self) -> str:
        key = zlib.crc32(json.dumps(self.identity(), sort_keys=True).encode())
        spaces = "+".join(_slug(s, 24) for s in self.spaces)
        opt = _slug(self.optimizer, 28)
        if self.kind == "evolve":
            head = f"u{self.units[0]:04d}-{self.poles[0]}"
        else:
            head = f"units{len(self.units)}-{'-'.join(self.poles)}"
        return f"{head}__{spaces}__{opt}__s{self.seed}__{key:08x}"

    @property
    def space_label(self) -> str:
        return "+".join(self.spaces)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spaces"], d["units"], d["poles"] = list(self.spaces), list(self.units), list(self.poles)
        d["reference"] = dict(self.reference) if self.reference else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Cell":
        d = dict(d)
        d["spaces"], d["units"], d["poles"] = tuple(d["spaces"]), tuple(d["units"]), tuple(d["poles"])
        return cls(**d)


@dataclass
class CampaignSpec:
    """A parsed, validated campaign spec."""

    scorer: str
    spaces: list[tuple[str, ...]]
    optimizers: list[str]
    units: list[int] | str = "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    poles: list[str] = field(default_factory=lambda: ["high"])
    kind: str = "evolve"
    generations: int = 75
    reference: dict[str, int] | None = None
    image_every: int = 0
    checkpoint_every: int = 25
    device: str | None = None
    threads: int = 1
    plots: bool = True
    name: str = "campaign"
    out: str | None = None
    cluster: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> "CampaignSpec":
        """Validate a spec table; every problem is one ValueError naming the key."""
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise ValueError(f"campaign spec: unknown key(s) {unknown}; valid keys: {sorted(SPEC_KEYS)}")
        for key in ("scorer", "spaces", "optimizers"):
            if key not in raw:
                raise ValueError(f"campaign spec: missing required key {key!r}")
        kind = str(raw.get("kind", "evolve"))
        if kind not in KINDS:
            raise ValueError(f"campaign spec: kind must be one of {KINDS}, got {kind!r}")
        spaces_raw = raw["spaces"]
        if isinstance(spaces_raw, (str, Mapping)):
            spaces_raw = [spaces_raw]
        spaces: list[tuple[str, ...]] = []
        for entry in spaces_raw:
            group = entry if isinstance(entry, (list, tuple)) else [entry]
            if not group:
                raise ValueError("campaign spec: an entry of 'spaces' is an empty list")
            if kind == "synthesize" and len(group) > 1:
                raise ValueError("campaign spec: paired spaces (a list inside 'spaces') need kind = 'evolve'")
            spaces.append(tuple(_canonical(g, "space") for g in group))
        opts_raw = raw["optimizers"]
        if isinstance(opts_raw, (str, Mapping)):
            opts_raw = [opts_raw]
        optimizers = [_canonical(o, "optimizer") for o in opts_raw]
        if not spaces or not optimizers:
            raise ValueError("campaign spec: 'spaces' and 'optimizers' need at least one entry each")
        units = raw.get("units", "all")
        if isinstance(units, str):
            if units != "all":
                raise ValueError(f"campaign spec: units must be a list of integers or 'all', got {units!r}")
        else:
            units = _int_list(units, "units", 0)
        seeds_raw = raw.get("seeds", [0])
        if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
            seeds = list(range(_strict_int(seeds_raw, "seeds (a count)", 1)))
        else:
            seeds = _int_list(seeds_raw, "seeds", 0)
        poles_raw = raw.get("poles", ["high"])
        poles = [poles_raw] if isinstance(poles_raw, str) else [str(p) for p in poles_raw]
        bad = [p for p in poles if p not in ("high", "low")]
        if bad or not poles:
            raise ValueError(f"campaign spec: poles must be 'high' and/or 'low', got {poles_raw!r}")
        generations = _strict_int(raw.get("generations", 75), "generations", 1 if kind == "evolve" else None)
        reference = raw.get("reference")
        if reference is not None:
            if not isinstance(reference, Mapping):
                raise ValueError("campaign spec: reference must be a table (n, size, channels, seed)")
            extra = sorted(set(reference) - REFERENCE_KEYS)
            if extra:
                raise ValueError(f"campaign spec: unknown reference key(s) {extra}; valid: {sorted(REFERENCE_KEYS)}")
            if kind != "evolve":
                raise ValueError("campaign spec: reference images apply to kind = 'evolve' only")
            reference = {k: _strict_int(v, f"reference.{k}") for k, v in reference.items()}
            if reference.get("n", 0) < 1:
                raise ValueError("campaign spec: reference.n (number of natural images) must be >= 1")
        cluster = raw.get("cluster", {}) or {}
        if not isinstance(cluster, Mapping):
            raise ValueError("campaign spec: cluster must be a table of submitit parameters")
        threads = _strict_int(raw.get("threads", 1), "threads", 1)
        return cls(scorer=_canonical(raw["scorer"], "scorer"), spaces=spaces, optimizers=optimizers, units=units,
                   seeds=seeds, poles=poles, kind=kind, generations=generations, reference=reference,
                   image_every=_strict_int(raw.get("image_every", 0), "image_every", 0),
                   checkpoint_every=_strict_int(raw.get("checkpoint_every", 25), "checkpoint_every", 1),
                   device=raw.get("device"), threads=threads, plots=bool(raw.get("plots", True)), name=str(raw.get("name", "campaign")),
                   out=raw.get("out"), cluster=dict(cluster))

    def validate_parts(self) -> None:
        """Check every part spec's name and option names against the registry before any cell runs.

        Only signatures are inspected (no generator or scorer is built, so no weights load);
        a typo such as ``cma:popsiz=4`` is one ValueError naming the part, not N failed cells.
        """
        from actmax.core.registry import RegistryError, _parameters, generators, optimizers, parse_spec, scorers

        checks = [(scorers, self.scorer, "scorer")]
        checks += [(generators, g, "space") for group in self.spaces for g in group]
        checks += [(optimizers, o, "optimizer") for o in self.optimizers]
        for registry, text, what in checks:
            name, options = parse_spec(text)
            try:
                entry = registry.entry(name)
            except RegistryError as exc:
                raise ValueError(f"campaign spec: {what} {text!r}: {exc}") from None
            accepted, var_kw = _parameters(entry.factory)
            unknown = [k for k in options if k not in accepted and not var_kw]
            if unknown:
                raise ValueError(f"campaign spec: {what} {text!r} has no option {unknown[0]!r}; valid options: "
                                 f"{', '.join(sorted(accepted)) or 'none'}")
            is_gradient = bool(getattr(entry.factory, "gradient_based", False))
            if what == "optimizer" and self.kind == "synthesize" and not is_gradient:
                raise ValueError(f"campaign spec: kind 'synthesize' needs the gradient optimizer (ascent), "
                                 f"got {text!r}")
            if what == "optimizer" and self.kind == "evolve" and is_gradient:
                raise ValueError(f"campaign spec: kind 'evolve' needs gradient-free optimizers, got {text!r}")

    def resolved_units(self) -> list[int]:
        """The unit list (``"all"`` asks the scorer how many units it has)."""
        from actmax.core.registry import scorers

        scorer = scorers.create(self.scorer)
        if self.units == "all":
            return list(range(scorer.units))
        return [scorer.check_unit(u) for u in self.units]

    def cells(self) -> list[Cell]:
        """Every grid cell, in a fixed order (unit, pole, space, optimizer, seed)."""
        units = self.resolved_units()
        common = dict(kind=self.kind, scorer=self.scorer, reference=self.reference, image_every=self.image_every,
                      checkpoint_every=self.checkpoint_every, device=self.device, plots=self.plots)
        out: list[Cell] = []
        if self.kind == "evolve":
            for u in units:
                for pole in self.poles:
                    for spaces in self.spaces:
                        for opt in self.optimizers:
                            for seed in self.seeds:
                                out.append(Cell(spaces=spaces, optimizer=opt, seed=seed, units=(u,), poles=(pole,),
                                                generations=self.generations, **common))
        else:
            for spaces in self.spaces:
                for opt in self.optimizers:
                    for seed in self.seeds:
                        out.append(Cell(spaces=spaces, optimizer=opt, seed=seed, units=tuple(units),
                                        poles=tuple(self.poles), **common))
        names = [c.name for c in out]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"campaign spec: the grid repeats a cell ({dup}); remove duplicate entries")
        return out


def _strict_int(value: Any, key: str, minimum: int | None = None) -> int:
    """An integer option (2.5, "3" or True are errors, not silently coerced)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"campaign spec: {key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"campaign spec: {key} must be >= {minimum}, got {value}")
    return int(value)


def _int_list(values: Any, key: str, minimum: int | None = None) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"campaign spec: {key} must be a list of integers, got {values!r}")
    out = [_strict_int(v, key, minimum) for v in values]
    if not out:
        raise ValueError(f"campaign spec: {key} is empty")
    if len(set(out)) != len(out):
        raise ValueError(f"campaign spec: {key} has repeated entries: {values!r}")
    return out


def load_spec(path: str | Path) -> CampaignSpec:
    """Read a campaign spec from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"campaign spec {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ValueError(f"campaign spec {path}: unknown format {suffix!r}; use .toml, .yaml/.yml or .json")
    text = path.read_bytes()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                import tomli as tomllib
            raw = tomllib.loads(text.decode())
        elif suffix == ".json":
            raw = json.loads(text)
        else:
            import yaml
            raw = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - a parser's own error type (TOMLDecodeError, YAMLError...)
        raise ValueError(f"campaign spec {path} could not be parsed: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ValueError(f"campaign spec {path} must hold a table of keys, got {type(raw).__name__}")
    return CampaignSpec.from_mapping(raw)


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
    if cell.kind == "evolve":
        from actmax.core.evolve import evolve

        reference = None
        if cell.reference:
            from actmax.core.registry import scorers
            size = getattr(scorers.create(cell.scorer), "size", None) if "size" not in cell.reference else None
            reference = _reference_images(cell.reference, size)
        return evolve(list(cell.spaces) if len(cell.spaces) > 1 else cell.spaces[0], cell.scorer, cell.optimizer,
                      unit=cell.units[0], pole=cell.poles[0], generations=cell.generations, seed=cell.seed,
                      out_dir=path, reference_images=reference, image_every=cell.image_every, device=cell.device,
                      plots=cell.plots, overwrite=True)
    from actmax.core.synthesize import synthesize

    return synthesize(cell.spaces[0], cell.scorer, units=list(cell.units), poles=list(cell.poles), seeds=(cell.seed,),
                      ascent=cell.optimizer, out_dir=path, checkpoint_every=cell.checkpoint_every, device=cell.device,
                      overwrite=True)


class CellSpecError(ValueError):
    """A cell's record holds another spec than the campaign file's (edited or swapped): never resumed."""


def expected_cell_spec(cell: Cell) -> dict[str, Any]:
    """The part specs (and numbers) a cell's record must hold for the cell to be resumed from it."""
    from actmax.core.registry import spec_text

    if cell.kind == "evolve":
        return {"generators": [spec_text(s, "generator") for s in cell.spaces],
                "scorer": spec_text(cell.scorer, "scorer"),
                "optimizers": [spec_text(cell.optimizer, "optimizer")] * len(cell.spaces),
                "unit": cell.units[0], "pole": cell.poles[0], "generations": cell.generations, "seed": cell.seed}
    return {"generator": spec_text(cell.spaces[0], "generator"), "scorer": spec_text(cell.scorer, "scorer"),
            "ascent": spec_text(cell.optimizer, "optimizer"), "units": list(cell.units),
            "poles": list(cell.poles), "seeds": [cell.seed]}


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
    if cell.kind == "evolve":
        from actmax.core.evolve import resume_evolution
        return resume_evolution(path, trust=True)
    from actmax.core.synthesize import resume_synthesis
    return resume_synthesis(path, trust=True)


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
        raise ValueError(f"campaign: backend must be one of {BACKENDS}, got {backend!r}")
    root_text = out if out is not None else spec.out
    if root_text is None:
        raise ValueError("campaign: no output folder (give --out or 'out' in the spec)")
    root = Path(root_text).resolve()
    spec.validate_parts()
    if backend == "local" and spec.cluster:
        log.warning("campaign: the spec's [cluster] keys (%s) are ignored by the local backend",
                    ", ".join(sorted(spec.cluster)))
    if root.exists() and not root.is_dir():
        raise ValueError(f"campaign: the output {root} is a file, not a folder")
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
    table.insert(1, "unit", [by_name[n].units[0] if by_name[n].kind == "evolve" else -1 for n in table["name"]])
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


# ============================================================================================
# Gather
# ============================================================================================
def _campaign_cells(root: Path) -> list[Cell]:
    path = root / CAMPAIGN_FILE
    if not path.exists():
        raise RecordError(f"{root} is not a campaign folder: {CAMPAIGN_FILE} is missing")
    try:
        data = json.loads(path.read_text())
        return [Cell.from_dict(c) for c in data["cells"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RecordError(f"{path} is corrupt: {exc}") from exc


def _cell_columns(cell: Cell) -> dict[str, Any]:
    return {"cell": cell.name, "kind": cell.kind, "scorer": cell.scorer, "space_spec": cell.space_label,
            "optimizer": cell.optimizer, "seed": cell.seed}


def gather(root: str | Path, *, out: str | Path | None = None, include_unfinished: bool = False) -> dict[str, pd.DataFrame]:
    """Merge a campaign's run records into tidy tables, written as parquet to ``out`` (default ``root/tables``).

    * ``runs``: one row per cell (record status, best score, evaluations, elapsed seconds,
      resumes, and the last invocation's action and error from ``campaign_log.csv``);
    * ``scores`` (evolve): one row per evaluated image: the cell columns plus the record's
      generation, thread, space, index, unit, score (reference images have space ``reference``);
    * ``trajectories`` (evolve): per cell, space and generation: mean, max, min and count;
    * ``synthesis`` (synthesize): one row per target: unit, pole, seed and final response.

    Only finished runs contribute scores unless ``include_unfinished``.
    """
    from actmax.core.records import RunRecord

    root = Path(root)
    cells = _campaign_cells(root)
    runs, scores, synth = [], [], []
    for cell in cells:
        path = root / RUNS_DIR / cell.name
        status = cell_status(path)
        row = {**_cell_columns(cell), "unit": cell.units[0] if cell.kind == "evolve" else -1,
               "units": ",".join(map(str, cell.units)), "pole": ",".join(cell.poles), "status": status,
               "generations": cell.generations if cell.kind == "evolve" else None, "path": str(path)}
        manifest: dict[str, Any] = {}
        if status in ("finished", "interrupted"):
            manifest = RunRecord(path).manifest(verify=True)
        for key in ("best_score", "best_space", "evaluations", "elapsed_s", "generations_done", "steps_done",
                    "created", "finished", "resumed"):
            row[key] = manifest.get(key)
        row["resumed"] = int(row["resumed"] or 0)
        runs.append(row)
        if status != "finished" and not (include_unfinished and status == "interrupted"):
            continue
        rec = RunRecord(path)
        if cell.kind == "evolve":
            if (path / "scores.parquet").exists() or status == "finished":
                s = rec.scores()   # verified against the manifest (a damaged cell is an error, not merged)
                for k, v in reversed(list(_cell_columns(cell).items())):
                    s.insert(0, k, v)
                s.insert(len(_cell_columns(cell)), "pole", cell.poles[0])
                scores.append(s)
        elif (path / "targets.csv").exists() or status == "finished":
            t = pd.read_csv(rec.check_file("targets.csv"))
            for k, v in reversed(list(_cell_columns(cell).items())):
                if k not in t.columns:  # the targets' own seed column stays
                    t.insert(0, k, v)
            synth.append(t)
    runs_table = pd.DataFrame(runs)
    if (root / LOG_FILE).exists():  # what the last invocation did with each cell (e.g. failed: why)
        last = campaign_log(root).groupby("name").tail(1).set_index("name")
        runs_table["last_action"] = runs_table["cell"].map(last["action"])
        runs_table["last_error"] = runs_table["cell"].map(last["error"])
    tables: dict[str, pd.DataFrame] = {"runs": runs_table}
    if scores:
        s = pd.concat(scores, ignore_index=True)
        tables["scores"] = s
        g = s.groupby(["cell", "space", "generation"], sort=False)["score"]
        traj = g.agg(["mean", "max", "min", "count"]).reset_index()
        meta = s.drop_duplicates("cell").set_index("cell")[["space_spec", "optimizer", "seed", "unit", "pole"]]
        tables["trajectories"] = traj.join(meta, on="cell")
    if synth:
        tables["synthesis"] = pd.concat(synth, ignore_index=True)
    out_dir = Path(out) if out is not None else root / TABLES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_parquet(out_dir / f"{name}.parquet", index=False)
    return tables


def campaign_log(root: str | Path) -> pd.DataFrame:
    """Every invocation's per-cell actions (``campaign_log.csv``): how often each cell really ran."""
    path = Path(root) / LOG_FILE
    if not path.exists():
        raise RecordError(f"{root}: {LOG_FILE} is missing (the campaign never ran here)")
    table = pd.read_csv(path)
    table["error"] = table["error"].astype(object).where(table["error"].notna(), "").astype(str)
    return table


def executions(root: str | Path) -> pd.Series:
    """Number of times each cell was executed (ran, resumed or restarted) over all invocations."""
    log_table = campaign_log(root)
    return log_table[log_table["action"].isin(EXECUTED)].groupby("name").size()


def iter_records(root: str | Path) -> Iterable[tuple[Cell, Path]]:
    """(cell, record folder) of every cell the campaign folder knows."""
    root = Path(root)
    for cell in _campaign_cells(root):
        yield cell, root / RUNS_DIR / cell.name

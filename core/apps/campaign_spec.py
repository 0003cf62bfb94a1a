"""Campaign specs and cells: the grid a campaign spec describes, one cell per run record.

Which run kinds a grid can hold, and how a cell of each becomes a run spec and gathered rows,
is the ``CELL_KINDS`` table (no kind is special-cased elsewhere). See :mod:`actmax.core.apps.campaign`.
"""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from actmax.core.errors import InputError, MissingFileError
from actmax.core.registry import spec_text

__all__ = ["Cell", "CampaignSpec", "load_spec", "CELL_KINDS", "CellKind", "KINDS"]

SPEC_KEYS = {"name", "kind", "scorer", "units", "spaces", "optimizers", "seeds", "poles", "generations",
             "reference", "image_every", "out", "device", "threads", "cluster", "checkpoint_every", "plots"}
REFERENCE_KEYS = {"n", "size", "channels", "seed"}


class CellKind:
    """What a campaign needs to know about one run kind: its grid, its cells' identity, its run spec, its tables."""

    kind = ""
    paired = False        # may a cell hold several generator spaces (paired evolution)?
    gradient = False      # does it take the gradient optimizer (ascent)?
    reference = False     # may it show natural reference images?
    has_generations = False   # does the spec's ``generations`` apply (then it must be >= 1)?

    def identity(self, cell: "Cell") -> dict[str, Any]:
        return {}

    def head(self, cell: "Cell") -> str:
        return f"units{len(cell.units)}-{'-'.join(cell.poles)}"

    def grid(self, spec: "CampaignSpec", units: list[int], common: dict[str, Any]) -> list["Cell"]:
        return [Cell(spaces=spaces, optimizer=opt, seed=seed, units=tuple(units), poles=tuple(spec.poles), **common)
                for spaces in spec.spaces for opt in spec.optimizers for seed in spec.seeds]

    def unit(self, cell: "Cell") -> int:
        """The ``unit`` column of the campaign tables (-1: several units)."""
        return -1

    def generations(self, cell: "Cell") -> int | None:
        return None

    def run_spec(self, cell: "Cell") -> dict[str, Any]:
        """The cell as a record spec (what the run kind's ``from_spec`` reads)."""
        raise NotImplementedError

    def expected_spec(self, cell: "Cell") -> dict[str, Any]:
        """The part specs (and numbers) the cell's record must hold for the cell to be resumed from it."""
        raise NotImplementedError

    def gather(self, cell: "Cell", path: Path, columns: dict[str, Any], status: str) -> tuple[str, pd.DataFrame] | None:
        """(table name, rows) this cell's record adds to the gathered tables (read verified)."""
        return None


class EvolveCells(CellKind):
    kind, paired, reference, has_generations = "evolve", True, True, True

    def identity(self, cell: "Cell") -> dict[str, Any]:
        return {"generations": cell.generations, "reference": dict(cell.reference) if cell.reference else None}

    def head(self, cell: "Cell") -> str:
        return f"u{cell.units[0]:04d}-{cell.poles[0]}"

    def grid(self, spec: "CampaignSpec", units: list[int], common: dict[str, Any]) -> list["Cell"]:
        return [Cell(spaces=spaces, optimizer=opt, seed=seed, units=(u,), poles=(pole,), generations=spec.generations,
                     **common)
                for u in units for pole in spec.poles for spaces in spec.spaces for opt in spec.optimizers
                for seed in spec.seeds]

    def unit(self, cell: "Cell") -> int:
        return cell.units[0]

    def generations(self, cell: "Cell") -> int | None:
        return cell.generations

    def run_spec(self, cell: "Cell") -> dict[str, Any]:
        return {"generators": list(cell.spaces), "scorer": cell.scorer, "optimizers": [cell.optimizer],
                "unit": cell.units[0], "pole": cell.poles[0], "generations": cell.generations, "seed": cell.seed,
                "image_every": cell.image_every, "plots": cell.plots, "device": cell.device}

    def expected_spec(self, cell: "Cell") -> dict[str, Any]:
        return {"generators": [spec_text(s, "generator") for s in cell.spaces],
                "scorer": spec_text(cell.scorer, "scorer"),
                "optimizers": [spec_text(cell.optimizer, "optimizer")] * len(cell.spaces),
                "unit": cell.units[0], "pole": cell.poles[0], "generations": cell.generations, "seed": cell.seed}

    def gather(self, cell: "Cell", path: Path, columns: dict[str, Any], status: str) -> tuple[str, pd.DataFrame] | None:
        from actmax.core.records import RunRecord

        from actmax.core.records.load import running_scores

        rec = RunRecord(path)
        if (path / "scores.parquet").exists() or status == "finished":
            s = rec.scores()   # verified against the manifest (a damaged cell is an error, not merged)
        else:                  # an interrupted cell: its rows so far, from the parts its checkpoint claims
            s = running_scores(rec, rec.manifest(verify=True))
            if s.empty:
                return None
        for k, v in reversed(list(columns.items())):
            s.insert(0, k, v)
        s.insert(len(columns), "pole", cell.poles[0])
        return "scores", s


class SynthesizeCells(CellKind):
    kind, gradient = "synthesize", True

    def run_spec(self, cell: "Cell") -> dict[str, Any]:
        return {"generator": cell.spaces[0], "scorer": cell.scorer, "units": list(cell.units),
                "poles": list(cell.poles), "seeds": [cell.seed], "ascent": cell.optimizer, "device": cell.device,
                "amp": False, "checkpoint_every": cell.checkpoint_every}

    def expected_spec(self, cell: "Cell") -> dict[str, Any]:
        return {"generator": spec_text(cell.spaces[0], "generator"), "scorer": spec_text(cell.scorer, "scorer"),
                "ascent": spec_text(cell.optimizer, "optimizer"), "units": list(cell.units),
                "poles": list(cell.poles), "seeds": [cell.seed]}

    def gather(self, cell: "Cell", path: Path, columns: dict[str, Any], status: str) -> tuple[str, pd.DataFrame] | None:
        from actmax.core.records import RunRecord

        if not ((path / "targets.csv").exists() or status == "finished"):
            return None
        t = pd.read_csv(RunRecord(path).check_file("targets.csv"))
        for k, v in reversed(list(columns.items())):
            if k not in t.columns:  # the targets' own seed column stays
                t.insert(0, k, v)
        return "synthesis", t


#: the run kinds a campaign grid can hold
CELL_KINDS: dict[str, CellKind] = {"evolve": EvolveCells(), "synthesize": SynthesizeCells()}
KINDS = tuple(CELL_KINDS)


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
            raise InputError(f"campaign: {what} spec {dict(spec)!r} has no 'name' key")
        return spec_text(spec, kind)
    raise InputError(f"campaign: {what} must be a 'name:key=value' string or a table with a name, "
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
        ident.update(CELL_KINDS[self.kind].identity(self))
        return ident

    @property
    def name(self) -> str:
        key = zlib.crc32(json.dumps(self.identity(), sort_keys=True).encode())
        spaces = "+".join(_slug(s, 24) for s in self.spaces)
        opt = _slug(self.optimizer, 28)
        head = CELL_KINDS[self.kind].head(self)
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
            raise InputError(f"campaign spec: unknown key(s) {unknown}; valid keys: {sorted(SPEC_KEYS)}")
        for key in ("scorer", "spaces", "optimizers"):
            if key not in raw:
                raise InputError(f"campaign spec: missing required key {key!r}")
        kind = str(raw.get("kind", "evolve"))
        if kind not in CELL_KINDS:
            raise InputError(f"campaign spec: kind must be one of {KINDS}, got {kind!r}")
        ck = CELL_KINDS[kind]
        spaces, optimizers = _spaces(raw["spaces"], ck), _optimizers(raw["optimizers"])
        if not spaces or not optimizers:
            raise InputError("campaign spec: 'spaces' and 'optimizers' need at least one entry each")
        units = raw.get("units", "all")
        if isinstance(units, str):
            if units != "all":
                raise InputError(f"campaign spec: units must be a list of integers or 'all', got {units!r}")
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
            raise InputError(f"campaign spec: poles must be 'high' and/or 'low', got {poles_raw!r}")
        generations = _strict_int(raw.get("generations", 75), "generations", 1 if ck.has_generations else None)
        reference = _reference(raw.get("reference"), ck)
        cluster = raw.get("cluster", {}) or {}
        if not isinstance(cluster, Mapping):
            raise InputError("campaign spec: cluster must be a table of submitit parameters")
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
                raise InputError(f"campaign spec: {what} {text!r}: {exc}") from None
            accepted, var_kw = _parameters(entry.factory)
            unknown = [k for k in options if k not in accepted and not var_kw]
            if unknown:
                raise InputError(f"campaign spec: {what} {text!r} has no option {unknown[0]!r}; valid options: "
                                 f"{', '.join(sorted(accepted)) or 'none'}")
            is_gradient = bool(getattr(entry.factory, "gradient_based", False))
            if what == "optimizer" and CELL_KINDS[self.kind].gradient and not is_gradient:
                raise InputError(f"campaign spec: kind {self.kind!r} needs the gradient optimizer (ascent), "
                                 f"got {text!r}")
            if what == "optimizer" and not CELL_KINDS[self.kind].gradient and is_gradient:
                raise InputError(f"campaign spec: kind {self.kind!r} needs gradient-free optimizers, got {text!r}")

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
        out = CELL_KINDS[self.kind].grid(self, units, common)
        names = [c.name for c in out]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputError(f"campaign spec: the grid repeats a cell ({dup}); remove duplicate entries")
        return out


def _spaces(spaces_raw: Any, ck: CellKind) -> list[tuple[str, ...]]:
    """The 'spaces' axis: one space or a list (a paired evolution) per entry, as canonical spec text."""
    if isinstance(spaces_raw, (str, Mapping)):
        spaces_raw = [spaces_raw]
    spaces: list[tuple[str, ...]] = []
    for entry in spaces_raw:
        group = entry if isinstance(entry, (list, tuple)) else [entry]
        if not group:
            raise InputError("campaign spec: an entry of 'spaces' is an empty list")
        if not ck.paired and len(group) > 1:
            raise InputError("campaign spec: paired spaces (a list inside 'spaces') need kind = 'evolve'")
        spaces.append(tuple(_canonical(g, "space") for g in group))
    return spaces


def _optimizers(opts_raw: Any) -> list[str]:
    if isinstance(opts_raw, (str, Mapping)):
        opts_raw = [opts_raw]
    return [_canonical(o, "optimizer") for o in opts_raw]


def _reference(reference: Any, ck: CellKind) -> dict[str, int] | None:
    """The optional natural reference images (n, size, channels, seed) shown in every block."""
    if reference is None:
        return None
    if not isinstance(reference, Mapping):
        raise InputError("campaign spec: reference must be a table (n, size, channels, seed)")
    extra = sorted(set(reference) - REFERENCE_KEYS)
    if extra:
        raise InputError(f"campaign spec: unknown reference key(s) {extra}; valid: {sorted(REFERENCE_KEYS)}")
    if not ck.reference:
        raise InputError("campaign spec: reference images apply to kind = 'evolve' only")
    reference = {k: _strict_int(v, f"reference.{k}") for k, v in reference.items()}
    if reference.get("n", 0) < 1:
        raise InputError("campaign spec: reference.n (number of natural images) must be >= 1")
    return reference


def _strict_int(value: Any, key: str, minimum: int | None = None) -> int:
    """An integer option (2.5, "3" or True are errors, not silently coerced)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"campaign spec: {key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"campaign spec: {key} must be >= {minimum}, got {value}")
    return int(value)


def _int_list(values: Any, key: str, minimum: int | None = None) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InputError(f"campaign spec: {key} must be a list of integers, got {values!r}")
    out = [_strict_int(v, key, minimum) for v in values]
    if not out:
        raise InputError(f"campaign spec: {key} is empty")
    if len(set(out)) != len(out):
        raise InputError(f"campaign spec: {key} has repeated entries: {values!r}")
    return out


def load_spec(path: str | Path) -> CampaignSpec:
    """Read a campaign spec from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"campaign spec {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise InputError(f"campaign spec {path}: unknown format {suffix!r}; use .toml, .yaml/.yml or .json")
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
        raise InputError(f"campaign spec {path} could not be parsed: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise InputError(f"campaign spec {path} must hold a table of keys, got {type(raw).__name__}")
    return CampaignSpec.from_mapping(raw)



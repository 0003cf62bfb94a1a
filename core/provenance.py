"""Provenance of a run: which weight files its parts used and which packages made its parts.

:func:`collect` is called once when a run record is created (``RunRecord.create``), after the
run's parts were built. It returns

* ``weights``: every weight file resolved or loaded since the previous record was created in
  this process (the resolver in :mod:`actmax.core.weights` logs them), each with its path, size
  in bytes and sha256, and every random network a part built on request (``random: true`` with
  its seed), so a run on random weights says so;
* ``parts``: for each part named in the spec, the Python distribution (package) that provides
  it and its version (built-in parts: ``actmax``; plugins: their own package).

The kernel never imports generators, optimizers or scorers here: parts are looked up by name in
the registries.
"""
from __future__ import annotations

import functools
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any, Iterable, Mapping

from actmax.core.registry import RegistryError, parse_spec, registry_for
from actmax.core.weights import sha256_file

__all__ = ["collect", "weight_files", "part_packages", "distribution_of"]

#: spec keys that name parts, and the registry each one is looked up in
PART_KINDS = {"generator": "generators", "generators": "generators", "scorer": "scorers",
              "optimizer": "optimizers", "optimizers": "optimizers", "ascent": "optimizers"}


def weight_files(used: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The weight files (path, bytes, sha256) and random networks of ``used`` (a run's log)."""
    out = []
    for entry in used:
        entry = dict(entry)
        if not entry.get("random"):
            path = Path(entry["path"])
            if path.is_file():
                entry["bytes"] = path.stat().st_size
                entry["sha256"] = sha256_file(path)
            else:
                entry["bytes"], entry["sha256"] = None, None
        out.append(entry)
    return out


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> Mapping[str, list[str]]:
    """Top-level module -> distributions, scanned once per process (a scan reads every installed
    distribution's file list: ~0.2 CPU-s, too much to repeat for every run record)."""
    return packages_distributions()


@functools.lru_cache(maxsize=None)
def distribution_of(module: str) -> tuple[str, str]:
    """(distribution name, version) of the installed package that holds ``module`` (once per process)."""
    top = module.split(".")[0]
    names = _packages_distributions().get(top, [])
    for name in names:
        try:
            return name, version(name)
        except PackageNotFoundError:
            continue
    if top == "actmax":  # run from a source tree that is not installed
        from actmax.core import __version__
        return "actmax", f"{__version__} (source tree, not installed)"
    mod = sys.modules.get(top)
    return top, str(getattr(mod, "__version__", "unknown"))


def _names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        if isinstance(item, str):
            try:
                names.append(parse_spec(item)[0])
            except RegistryError:
                continue
        elif isinstance(item, Mapping) and "name" in item:
            names.append(str(item["name"]))
    return names


def part_packages(spec: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per named part of ``spec``: kind, name, module, distribution and version."""
    rows, seen = [], set()
    for key, kind in PART_KINDS.items():
        if key not in spec:
            continue
        for name in _names(spec[key]):
            if (kind, name) in seen:
                continue
            seen.add((kind, name))
            try:
                entry = registry_for(kind).entry(name)
            except RegistryError:
                continue
            module = getattr(entry.factory, "__module__", "") or ""
            dist, ver = distribution_of(module)
            rows.append({"kind": kind.rstrip("s"), "name": name, "module": module,
                         "distribution": dist, "version": ver})
    return rows


def collect(spec: Mapping[str, Any], used: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The provenance block of a run manifest (see the module docstring); ``used``: the run's weight log."""
    return {"weights": weight_files(used), "parts": part_packages(spec)}

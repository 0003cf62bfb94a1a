"""Trust: a record is data. Resuming one must not import code that is not an installed plugin."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from actmax.core.errors import RecordError
from actmax.core.records.layout import PART_KEYS

_IMPORT_RE = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w.]*)$")


def _plugin_packages() -> set[str]:
    from importlib.metadata import entry_points

    tops = {"actmax"}
    for group in ("actmax.generators", "actmax.optimizers", "actmax.scorers"):
        for ep in entry_points(group=group):
            tops.add(ep.value.split(":")[0].split(".")[0])
    return tops


def imported_modules(spec: Any) -> list[tuple[str, str]]:
    """(module, part spec) for every ``module:attribute`` a spec would import (e.g. ``callable:fn=m:f``)."""
    from actmax.core.registry import RegistryError, parse_spec

    found: list[tuple[str, str]] = []

    def visit(value: Any) -> None:
        if isinstance(value, str):
            try:
                name, options = parse_spec(value)
            except RegistryError:
                return
            for v in [name, *options.values()]:
                m = _IMPORT_RE.match(str(v).strip()) if isinstance(v, str) else None
                if m:
                    found.append((m.group(1), value))
        elif isinstance(value, Mapping):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)

    for key in PART_KEYS:
        visit(spec.get(key))
    return found


def check_trusted(path: str | Path, spec: Mapping[str, Any], trust: bool) -> None:
    """Refuse to resume a record whose spec imports a module that is not an installed plugin."""
    if trust:
        return
    allowed = _plugin_packages()
    foreign = [(m, s) for m, s in imported_modules(spec) if m.split(".")[0] not in allowed]
    if foreign:
        module, part = foreign[0]
        raise RecordError(f"{path}: the record's spec imports module {module!r} ({part}), which is not an "
                          "installed actmax plugin; a record is data and resuming it would run that code. "
                          "If you trust this record, resume it with --trust (Python: trust=True)")

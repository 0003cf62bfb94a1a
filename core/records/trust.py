"""Trust: a record is data. Resuming one must not import code that is not an installed plugin.

The decisive check is at import time (:func:`actmax.core.trust.import_code`, inside the
:func:`actmax.core.trust.untrusted` scope every resume enters); :func:`check_trusted` fails early,
before anything is built, and names the part.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from actmax.core.errors import RecordError
from actmax.core.records.layout import PART_KEYS


def imported_modules(spec: Any) -> list[tuple[str, str]]:
    """(module, where) for every module outside the installed plugins that the spec's parts name."""
    from actmax.core.trust import foreign_modules
    return foreign_modules({k: spec.get(k) for k in PART_KEYS if k in spec})


def check_trusted(path: str | Path, spec: Mapping[str, Any], trust: bool) -> None:
    """Refuse (before anything is built) a record whose spec names a module that is not an installed plugin."""
    if trust:
        return
    from actmax.core.trust import TRUST_HINT
    foreign = imported_modules(spec)
    if foreign:
        module, part = foreign[0]
        raise RecordError(f"{path}: the record's spec imports module {module!r} ({part}), which is not an "
                          f"installed actmax plugin; {TRUST_HINT}")

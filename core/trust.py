"""Trust: a run record is data, so code named in it is imported only when the user trusts it.

Two layers, both refusing any module that is not an installed actmax plugin (``actmax`` itself
or the top-level package of an ``actmax.*`` entry point):

* :func:`import_code` is the one place where actmax imports a module named in a spec (the
  registry's ``path=pkg.mod:Class`` and the callable scorer's ``fn=pkg.mod:function``). Inside an
  :func:`untrusted` scope (what every resume enters unless ``trust=True``) it refuses a foreign
  module *before* importing it, wherever in the spec it was named (nested part specs, option
  values, dict specs): the decision is made where code would be imported, not by a scan that
  could miss a spelling.
* :func:`foreign_modules` scans a whole spec up front (strings, nested specs, dicts, lists) so a
  resume fails before anything is built, with the part named.

The scope is process-wide (a counter, not a thread-local), so a part built in a worker thread
during an untrusted resume is refused too.
"""
from __future__ import annotations

import importlib
import re
import threading
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Iterator, Mapping

from actmax.core.registry import RegistryError, parse_spec

__all__ = ["UntrustedCodeError", "untrusted", "is_untrusted", "import_code", "foreign_modules",
           "allowed_packages", "TRUST_HINT"]

TRUST_HINT = ("a record is data and resuming it would run that code. If you trust this record, resume it "
              "with --trust (Python: trust=True)")

_IMPORT_RE = re.compile(r"^\s*([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*:\s*([A-Za-z_][\w.]*)\s*$")
_lock = threading.Lock()
_depth = 0
_where: list[str] = []


class UntrustedCodeError(RegistryError):
    """A spec read from a record names a module that is not an installed plugin, and trust was not given."""


def allowed_packages() -> set[str]:
    """Top-level packages whose code a record may name: actmax and every installed actmax plugin."""
    from importlib.metadata import entry_points

    tops = {"actmax"}
    for group in ("actmax.generators", "actmax.optimizers", "actmax.scorers"):
        for ep in entry_points(group=group):
            tops.add(ep.value.split(":")[0].split(".")[0].strip())
    return tops


def is_allowed(module: str) -> bool:
    return module.strip().split(".")[0] in allowed_packages()


def enter_untrusted(where: str) -> None:
    """Open an untrusted scope (pair with :func:`leave_untrusted`; :func:`untrusted` is the ``with`` form)."""
    global _depth
    with _lock:
        _depth += 1
        _where.append(where)


def leave_untrusted() -> None:
    global _depth
    with _lock:
        if _depth > 0:
            _depth -= 1
            _where.pop()


@contextmanager
def untrusted(where: str, trusted: bool = False) -> Iterator[None]:
    """While inside, :func:`import_code` refuses foreign modules (a no-op when ``trusted``)."""
    if trusted:
        yield
        return
    enter_untrusted(where)
    try:
        yield
    finally:
        leave_untrusted()


def is_untrusted() -> bool:
    return _depth > 0


def check_import(module_name: str, what: str) -> None:
    """Refuse ``module_name`` inside an untrusted scope unless it belongs to actmax or an installed plugin."""
    if is_untrusted() and not is_allowed(module_name):
        where = _where[-1] if _where else "a record"
        raise UntrustedCodeError(f"{where}: the record's spec names module {module_name!r} ({what}), which is not "
                                 f"an installed actmax plugin; {TRUST_HINT}")


def import_code(module_name: str, what: str) -> ModuleType:
    """Import ``module_name`` (named by ``what``, e.g. ``scorer path=m:C``), unless an untrusted scope forbids it."""
    check_import(module_name, what)
    return importlib.import_module(module_name)


def check_part_target(obj: Any, what: str) -> None:
    """Inside an untrusted scope a ``path=`` part must be a registered part factory (not any function of a package)."""
    if not is_untrusted():
        return
    from actmax.core.registry import generators, optimizers, scorers

    factories = {e.factory for reg in (generators, optimizers, scorers) for e in reg.details()}
    if obj not in factories:
        where = _where[-1] if _where else "a record"
        raise UntrustedCodeError(f"{where}: the record's spec names {what}, which is not a registered part; "
                                 f"{TRUST_HINT}")


def foreign_modules(spec: Any) -> list[tuple[str, str]]:
    """(module, where) for every ``module:attribute`` anywhere in ``spec`` that is not an installed plugin.

    Every string is read both as a whole (``"m:f"``) and as a part spec (``"poisson:base=callable:fn=m:f"``,
    ``"path=m:C"``) whose option values are read again, recursively; dicts and lists are walked.
    """
    found: list[tuple[str, str]] = []
    allowed = allowed_packages()

    def note(module: str, where: str) -> None:
        if module.split(".")[0] not in allowed:
            found.append((module, where))

    def visit(value: Any, where: str, depth: int = 0) -> None:
        if depth > 50:
            found.append(("<too deeply nested>", where))
            return
        if isinstance(value, str):
            m = _IMPORT_RE.match(value)
            if m:
                note(m.group(1), where)
            try:
                name, options = parse_spec(value)
            except (RegistryError, RecursionError, MemoryError):
                return
            m = _IMPORT_RE.match(name)
            if m:
                note(m.group(1), where)
            for v in options.values():
                visit(v, where, depth + 1)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                visit(k, where, depth + 1)
                visit(v, where, depth + 1)
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                visit(v, where, depth + 1)

    if isinstance(spec, Mapping):
        for key, value in spec.items():
            visit(value, f"{key}={value!r}"[:200])
    else:
        visit(spec, repr(spec)[:200])
    return found

"""Registries of generators, optimizers and scorers.

Parts register with a decorator (built-ins) or through the entry-point groups
``actmax.generators``, ``actmax.optimizers`` and ``actmax.scorers`` (third-party
packages). Discovery is lazy: nothing is imported until a registry is first used.
A plugin that fails to import, or whose name is already taken (by a built-in or an earlier
plugin), is skipped with a warning saying how to resolve it; the rest keeps working. Two
built-ins with the same name are an error naming both sources. ``ACTMAX_NO_PLUGINS=1``
turns entry-point discovery off.

Parts are created from ``"name:key=value,..."`` strings (the CLI) or from dicts
``{"name": ..., **options}`` (Python), with options checked against the part's
signature so a typo is a clear error instead of a silent default. A class that is not
registered is named by import path: ``"path=package.module:Class,key=value"`` or
``{"path": "package.module:Class", **options}``. Every created part is checked against its
kind's contract (:func:`actmax.core.contracts.check_part`).

:func:`spec_text` gives a spec's canonical text (options sorted, options equal to the
factory's defaults dropped), which records store and campaigns use as folder identity.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

from actmax.core.errors import RegistryError
from actmax.core.specs import (  # noqa: F401  (spec text lives in actmax.core.specs; re-exported)
    _IMPORT_PATH, CONTEXT_KEYS, _split_mapping, format_spec, parse_spec, spec_text, split_mapping)

log = logging.getLogger("actmax")

__all__ = [
    "Registry", "RegistryError", "generators", "optimizers", "scorers", "CONTEXT_KEYS",
    "parse_spec", "format_spec", "spec_text", "registry_for", "create", "list_parts",
]






@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str
    source: str                      # module.qualname of the factory, or the entry point
    distribution: str | None = None  # "name version" of the installed distribution providing it
    origin: str = "built-in"         # built-in | plugin | path

    @property
    def label(self) -> str:
        """How errors name this part: ``name (source, distribution)``."""
        dist = f", {self.distribution}" if self.distribution else ""
        return f"{self.name!r} ({self.source}{dist})"


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _source_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _actmax_version() -> str:
    from actmax.core import __version__
    return __version__


@functools.lru_cache(maxsize=None)
def _distribution_of(module: str) -> str | None:
    """``"name version"`` of the installed distribution that provides ``module`` (None if unknown;
    looked up once per process per module)."""
    if module == "actmax" or module.startswith("actmax."):
        return f"actmax {_actmax_version()}"
    try:
        from importlib.metadata import packages_distributions, version
        dists = packages_distributions().get(module.split(".")[0], [])
        return f"{dists[0]} {version(dists[0])}" if dists else None
    except Exception:  # noqa: BLE001 - metadata is informative only
        return None


class Registry:
    """Named factories of one kind of part (generator, optimizer or scorer)."""

    def __init__(self, kind: str, builtin_packages: tuple[str, ...]) -> None:
        self.kind = kind
        self.group = f"actmax.{kind}s"
        self._builtin_packages = builtin_packages
        self._entries: dict[str, Entry] = {}
        self._paths: dict[str, Entry] = {}
        self._loaded = False
        self._loading = False
        self.plugin_errors: dict[str, str] = {}
        #: plugins skipped because their name was taken: name -> warning text
        self.skipped: dict[str, str] = {}
        #: turns a live object passed instead of a spec into a part (set by the kind's package, e.g.
        #: actmax.scorers wraps plain modules and functions); None: live objects pass through as they are
        self.adapter: Callable[[Any], Any] | None = None

    # -- registration -------------------------------------------------------
    def register(self, name: str, *, description: str | None = None,
                 source: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register a class or factory function under ``name``."""
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, factory, description=description, source=source)
            return factory
        return decorate

    def add(self, name: str, factory: Callable[..., Any], *, description: str | None = None,
            source: str | None = None, distribution: str | None = None, origin: str | None = None) -> None:
        if not name or ":" in name or "," in name or "=" in name:
            raise RegistryError(f"invalid {self.kind} name {name!r}")
        src = source or _source_of(factory)
        old = self._entries.get(name)
        if old is not None:
            if old.factory is factory:
                return
            raise RegistryError(
                f"{self.kind} name collision: {name!r} is registered by {old.source} "
                f"and again by {src}")
        desc = description if description is not None else _first_doc_line(factory)
        module = getattr(factory, "__module__", "") or ""
        dist = distribution or _distribution_of(module)
        if origin is None:
            origin = "built-in" if module.startswith("actmax.") else "plugin"
        self._entries[name] = Entry(name, factory, desc, src, dist, origin)

    # -- discovery ----------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for package in self._builtin_packages:
                importlib.import_module(package)
            if os.environ.get("ACTMAX_NO_PLUGINS", "").strip() not in ("1", "true", "yes"):
                self._load_plugins()
            self._loaded = True
        finally:
            self._loading = False

    def _load_plugins(self) -> None:
        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            dist_text = f"{dist.name} {dist.version}" if dist is not None else None
            dist_name = dist.name if dist is not None else "the package that provides it"
            origin = f"entry point {ep.value!r}" + (f" of distribution {dist_text}" if dist_text else "")
            old = self._entries.get(ep.name)
            if old is not None and old.source == origin:
                continue                            # the same distribution seen twice on sys.path
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break actmax
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("actmax: skipping broken %s plugin %r (%s): %s: %s",
                            self.kind, ep.name, origin, type(exc).__name__, exc)
                continue
            old = self._entries.get(ep.name)
            if old is not None:
                if old.factory is obj:
                    continue
                taken = "the built-in" if old.origin == "built-in" else "the plugin"
                message = (f"skipping {self.kind} plugin {ep.name!r} ({origin}): the name is already taken by "
                           f"{taken} {old.label}. To resolve it, uninstall one of them (pip uninstall "
                           f"{dist_name}) or have the plugin renamed (its entry point in group "
                           f"{self.group!r}); meanwhile the plugin's class can still be used by import "
                           f"path: path={ep.value}")
                self.skipped[ep.name] = message
                log.warning("actmax: %s", message)
                continue
            self.add(ep.name, obj, source=origin, distribution=dist_text, origin="plugin")

    # -- lookup -------------------------------------------------------------
    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description, for ``actmax list``."""
        self._ensure_loaded()
        return {n: self._entries[n].description for n in sorted(self._entries)}

    def details(self) -> list[Entry]:
        """Every registered entry (name, factory, description, source, distribution, origin), by name."""
        self._ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def entry(self, name: str) -> Entry:
        """The entry of a registered name, or of an import path ``package.module:Class``."""
        if ":" in name:
            return self._path_entry(name)
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def _path_entry(self, path: str) -> Entry:
        from actmax.core.trust import check_import, check_part_target   # refused inside an untrusted resume
        check_import(path.partition(":")[0], f"{self.kind} path={path}")
        if path in self._paths:
            check_part_target(self._paths[path].factory, f"{self.kind} path={path}")
            return self._paths[path]
        if not _IMPORT_PATH.match(path):
            raise RegistryError(f"bad {self.kind} import path {path!r}: expected path=package.module:Class")
        module_name, _, attr = path.partition(":")
        from actmax.core.trust import import_code
        try:
            obj: Any = import_code(module_name, f"{self.kind} path={path}")
        except ImportError as exc:
            raise RegistryError(f"cannot import module {module_name!r} for {self.kind} path={path}: {exc}") from None
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise RegistryError(f"module {module_name!r} has no {attr!r} ({self.kind} path={path})") from None
        if not callable(obj):
            raise RegistryError(f"{self.kind} path={path} is not a class or factory function")
        check_part_target(obj, f"{self.kind} path={path}")
        entry = Entry(path, obj, _first_doc_line(obj), path, _distribution_of(module_name), "path")
        self._paths[path] = entry
        return entry

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries

    # -- creation -----------------------------------------------------------
    def create(self, spec: str | Mapping[str, Any] | Any, **context: Any) -> Any:
        """Create a part from ``"name:k=v,..."``, ``{"name": ..., k: v}`` or pass an instance through.

        ``context`` holds values the run loop supplies (:data:`CONTEXT_KEYS`): they are passed
        only if the factory accepts them, and explicit spec options win over them. The new part
        is checked against its kind's contract (a clear error naming the part otherwise).
        """
        if not isinstance(spec, (str, Mapping)):   # a live object; the kind's adapter may wrap it, then it is
            self._ensure_loaded()                   # checked like a created one (scorers: a plain nn.Module or
            part = self.adapter(spec) if self.adapter is not None else spec   # function -> a scorer)
            from actmax.core.contracts import check_part
            return check_part(self.kind, part, f"{self.kind} {type(part).__name__} (a live object)")
        name, options = parse_spec(spec) if isinstance(spec, str) else _split_mapping(spec)
        entry = self.entry(name)
        accepted, has_var_kw = _parameters(entry.factory)
        unknown = [k for k in options if k not in accepted and not has_var_kw]
        if unknown:
            valid = ", ".join(sorted(accepted)) or "none"
            raise RegistryError(
                f"{self.kind} {name!r} has no option {unknown[0]!r}; valid options: {valid}")
        kwargs = {k: v for k, v in context.items() if k in accepted or has_var_kw}
        kwargs.update(options)
        from actmax.core.runs.context import capture
        try:
            with capture() as used:
                part = entry.factory(**kwargs)
        except TypeError as exc:
            raise RegistryError(f"cannot create {self.kind} {name!r} with {options}: {exc}") from exc
        from actmax.core.contracts import check_part
        part = check_part(self.kind, part, f"{self.kind} {entry.label}")
        if used:   # the weights this part loaded: its provenance wherever it is used later
            try:
                part.weights_used = tuple(dict(e) for e in used.values())
            except AttributeError:   # an object that takes no attributes keeps none
                pass
        return part


def _parameters(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


generators = Registry("generator", ("actmax.generators",))
optimizers = Registry("optimizer", ("actmax.optimizers",))
scorers = Registry("scorer", ("actmax.scorers",))


def registry_for(kind: str) -> Registry:
    """The registry of ``generator(s)``, ``optimizer(s)`` or ``scorer(s)``."""
    table = {"generator": generators, "optimizer": optimizers, "scorer": scorers}
    key = kind.rstrip("s")
    if key not in table:
        raise RegistryError(f"unknown part kind {kind!r}; use generators, optimizers or scorers")
    return table[key]


def create(kind: str, spec: str | Mapping[str, Any], /, **options: Any) -> Any:
    """Create a registered part: ``create("generator", "fourier", size=64)`` or a full spec string."""
    if isinstance(spec, str) and options:
        name, parsed = parse_spec(spec)
        spec = {"name": name, **parsed, **options}
    elif isinstance(spec, Mapping) and options:
        spec = {**spec, **options}
    return registry_for(kind).create(spec)


def list_parts(kind: str | None = None) -> dict[str, dict[str, str]]:
    """Registered parts by kind (``generators``, ``optimizers``, ``scorers``): name -> description."""
    kinds = [kind] if kind else ["generators", "optimizers", "scorers"]
    return {registry_for(k).kind + "s": registry_for(k).describe() for k in kinds}

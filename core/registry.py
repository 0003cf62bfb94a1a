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

import ast
import functools
import importlib
import inspect
import logging
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

log = logging.getLogger("actmax")

__all__ = [
    "Registry", "RegistryError", "generators", "optimizers", "scorers", "CONTEXT_KEYS",
    "parse_spec", "format_spec", "spec_text", "registry_for", "create", "list_parts",
]

#: Keywords the run loops supply to parts (an optimizer gets ``dim``, ``x0``, ``sigma0``, ``seed``,
#: and in the benchmark ``popsize``, ``n_gen``) when its factory accepts them. An explicit option
#: in a spec wins, so canonical spec text never drops these even when they equal a default.
CONTEXT_KEYS = frozenset({"dim", "x0", "sigma0", "seed", "popsize", "n_gen"})

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class RegistryError(ValueError):
    """An unknown name, a bad option, a bad import path or a name collision."""


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
        if not isinstance(spec, (str, Mapping)):   # a live object; the kind's adapter may wrap it
            self._ensure_loaded()                   # (scorers: a plain nn.Module or function -> a scorer)
            return self.adapter(spec) if self.adapter is not None else spec
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
        try:
            part = entry.factory(**kwargs)
        except TypeError as exc:
            raise RegistryError(f"cannot create {self.kind} {name!r} with {options}: {exc}") from exc
        from actmax.core.contracts import check_part
        return check_part(self.kind, part, f"{self.kind} {entry.label}")


def _parameters(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def _split_mapping(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if "path" in spec and "name" not in spec:
        return str(spec["path"]), {k: v for k, v in spec.items() if k != "path"}
    if "name" not in spec:
        raise RegistryError(f"part spec {dict(spec)!r} has no 'name' (or 'path') key")
    options = {k: v for k, v in spec.items() if k != "name"}
    return str(spec["name"]), options


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote or depth != 0:
        raise RegistryError(f"unbalanced brackets or quotes in {text!r}")
    parts.append("".join(current))
    return parts


def _parse_value(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"fourier:size=64,channels=1"`` -> ``("fourier", {"size": 64, "channels": 1})``.

    ``"path=pkg.mod:Class,size=32"`` -> ``("pkg.mod:Class", {"size": 32})`` (a part by import path).
    """
    spec = spec.strip()
    if spec.startswith("path="):
        path, _, rest = spec[len("path="):].partition(",")
        name = path.strip()
        if not _IMPORT_PATH.match(name):
            raise RegistryError(f"bad import path {name!r} in spec {spec!r}: expected path=package.module:Class")
    else:
        name, _, rest = spec.partition(":")
        name = name.strip()
    if not name:
        raise RegistryError(f"empty part name in spec {spec!r}")
    options: dict[str, Any] = {}
    if rest.strip():
        for item in _split_top_level(rest, ","):
            if not item.strip():
                continue
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key.isidentifier():
                raise RegistryError(
                    f"bad option {item.strip()!r} in spec {spec!r}: expected key=value")
            if key in options:
                raise RegistryError(f"option {key!r} given twice in spec {spec!r}")
            options[key] = _parse_value(value)
    return name, options


def format_spec(name: str, options: Mapping[str, Any]) -> str:
    """Inverse of :func:`parse_spec` for plain values (an import-path name is written ``path=...``)."""
    items = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in options.items()]
    if ":" in name:
        return ",".join([f"path={name}", *items])
    return name + (":" + ",".join(items) if items else "")


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other values without a plain truth value
        return False


def _defaults(name: str, kind: str | None) -> dict[str, Any]:
    """Default option values of the factory behind ``name`` ({} when it cannot be found unambiguously)."""
    try:
        if kind is not None:
            entry = registry_for(kind).entry(name)
        elif ":" in name:
            return {}                     # an import path without a kind: do not import it here
        else:
            found = [r.entry(name) for r in (generators, optimizers, scorers) if name in r]
            if len(found) != 1:
                return {}
            entry = found[0]
        target = entry.factory.__init__ if inspect.isclass(entry.factory) else entry.factory
        params = inspect.signature(target).parameters.values()
    except (RegistryError, TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not p.empty and p.name not in CONTEXT_KEYS}


def spec_text(spec: Any, kind: str | None = None) -> str | None:
    """Canonical text of a spec string or dict; None for a live object (it cannot be re-created).

    Options are sorted and options equal to the factory's defaults are dropped (never the run
    loop's :data:`CONTEXT_KEYS`), so ``cma:popsize=40,diagonal=True`` and
    ``cma:diagonal=True,popsize=40`` give the same text. ``kind`` (generator, optimizer, scorer)
    says where to look the name up; without it a name registered in exactly one kind is used.
    """
    if isinstance(spec, str):
        name, options = parse_spec(spec)
    elif isinstance(spec, Mapping):
        name, options = _split_mapping(spec)
    else:
        return None
    defaults = _defaults(name, kind) if options else {}
    kept = {k: options[k] for k in sorted(options)
            if not (k in defaults and _same_value(options[k], defaults[k]))}
    return format_spec(name, kept)


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

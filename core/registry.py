"""Registries of generators, optimizers and scorers.

Parts register with a decorator (built-ins) or through the entry-point groups
``actmax.generators``, ``actmax.optimizers`` and ``actmax.scorers`` (third-party
packages). Discovery is lazy: nothing is imported until a registry is first used.
A plugin that fails to import logs a warning and the rest keeps working; two parts
with the same name are an error naming both sources. ``ACTMAX_NO_PLUGINS=1`` turns
entry-point discovery off.

Parts are created from ``"name:key=value,..."`` strings (the CLI) or from dicts
``{"name": ..., **options}`` (Python), with options checked against the part's
signature so a typo is a clear error instead of a silent default.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

log = logging.getLogger("actmax")

__all__ = [
    "Registry", "RegistryError", "generators", "optimizers", "scorers",
    "parse_spec", "format_spec", "spec_text", "registry_for", "create", "list_parts",
]


class RegistryError(ValueError):
    """An unknown name, a bad option or a name collision."""


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str
    source: str


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _source_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


class Registry:
    """Named factories of one kind of part (generator, optimizer or scorer)."""

    def __init__(self, kind: str, builtin_packages: tuple[str, ...]) -> None:
        self.kind = kind
        self.group = f"actmax.{kind}s"
        self._builtin_packages = builtin_packages
        self._entries: dict[str, Entry] = {}
        self._loaded = False
        self._loading = False
        self.plugin_errors: dict[str, str] = {}

    # -- registration -------------------------------------------------------
    def register(self, name: str, *, description: str | None = None,
                 source: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register a class or factory function under ``name``."""
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, factory, description=description, source=source)
            return factory
        return decorate

    def add(self, name: str, factory: Callable[..., Any], *, description: str | None = None,
            source: str | None = None) -> None:
        if not name or ":" in name or "," in name:
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
        self._entries[name] = Entry(name, factory, desc, src)

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
            origin = f"entry point {ep.value!r}" + (f" of package {dist.name}" if dist else "")
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break actmax
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("actmax: skipping broken %s plugin %r (%s): %s: %s",
                            self.kind, ep.name, origin, type(exc).__name__, exc)
                continue
            if ep.name in self._entries and self._entries[ep.name].factory is obj:
                continue
            self.add(ep.name, obj, source=origin)

    # -- lookup -------------------------------------------------------------
    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description, for ``actmax list``."""
        self._ensure_loaded()
        return {n: self._entries[n].description for n in sorted(self._entries)}

    def entry(self, name: str) -> Entry:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries

    # -- creation -----------------------------------------------------------
    def create(self, spec: str | Mapping[str, Any] | Any, **context: Any) -> Any:
        """Create a part from ``"name:k=v,..."``, ``{"name": ..., k: v}`` or pass an instance through.

        ``context`` holds values the run loop supplies (``dim``, ``seed``...): they are passed
        only if the factory accepts them, and explicit spec options win over them.
        """
        if not isinstance(spec, (str, Mapping)):
            return spec
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
            return entry.factory(**kwargs)
        except TypeError as exc:
            raise RegistryError(f"cannot create {self.kind} {name!r} with {options}: {exc}") from exc


def _parameters(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def _split_mapping(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if "name" not in spec:
        raise RegistryError(f"part spec {dict(spec)!r} has no 'name' key")
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
    """``"fourier:size=64,channels=1"`` -> ``("fourier", {"size": 64, "channels": 1})``."""
    spec = spec.strip()
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
    """Inverse of :func:`parse_spec` for plain values."""
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                                 for k, v in options.items())


def spec_text(spec: Any) -> str | None:
    """Canonical text of a spec string or dict; None for a live object (it cannot be re-created)."""
    if isinstance(spec, str):
        return format_spec(*parse_spec(spec))
    if isinstance(spec, Mapping):
        return format_spec(*_split_mapping(spec))
    return None


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

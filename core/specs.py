"""Spec text: the one module that reads and writes part specs.

``"name:key=value,..."`` strings (the CLI), ``{"name": ..., **options}`` dicts (Python) and
``"path=package.module:Class,..."`` / ``{"path": ...}`` for a class named by import path.
:func:`spec_text` gives a spec's canonical text (options sorted, options equal to the factory's
defaults dropped), which records store and campaigns use as folder identity.
"""
from __future__ import annotations

import ast
import inspect
import re
from typing import Any, Mapping

from actmax.core.errors import RegistryError

__all__ = ["parse_spec", "format_spec", "spec_text", "split_mapping", "CONTEXT_KEYS"]

#: Keywords the run loops supply to parts (an optimizer gets ``dim``, ``x0``, ``sigma0``, ``seed``,
#: and in the benchmark ``popsize``, ``n_gen``) when its factory accepts them. An explicit option
#: in a spec wins, so canonical spec text never drops these even when they equal a default.
CONTEXT_KEYS = frozenset({"dim", "x0", "sigma0", "seed", "popsize", "n_gen"})

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def split_mapping(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
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
    from actmax.core.registry import generators, optimizers, registry_for, scorers

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
        name, options = split_mapping(spec)
    else:
        return None
    defaults = _defaults(name, kind) if options else {}
    kept = {k: options[k] for k in sorted(options)
            if not (k in defaults and _same_value(options[k], defaults[k]))}
    return format_spec(name, kept)


_split_mapping = split_mapping   # the name it had in actmax.core.registry

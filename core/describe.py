"""What a part is and how to configure it: ``actmax list KIND NAME`` and ``actmax.describe(kind, name)``.

A part's options are its factory's keyword parameters (type, default) with a one-line meaning
taken from an ``Options:`` block of its docstring::

    Options:
        size: image side in pixels
        channels: 1 (grey) or 3 (RGB)

Keywords the run loop supplies (:data:`~actmax.core.registry.CONTEXT_KEYS`, e.g. an optimizer's
``dim``) are marked ``supplied by the run``. Generators also show the optimizer preset they get
when a run names none; parts that load pretrained weights list the weight files
(``actmax weights`` tells where each is looked for).
"""
from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from actmax.core.registry import CONTEXT_KEYS, RegistryError, registry_for

__all__ = ["Option", "PartDescription", "describe", "format_description", "option_meanings"]

_OPTION_LINE = re.compile(r"^\s*(?:``)?(?P<name>[A-Za-z_]\w*)(?:``)?\s*(\([^)]*\))?\s*:\s+(?P<text>\S.*)$")
_OPTIONS_HEADER = ("options:", "parameters:", "args:", "arguments:")


@dataclass
class Option:
    name: str
    type: str
    default: Any           # repr-able default; ``REQUIRED`` when the option has none
    meaning: str
    supplied_by_run: bool = False


@dataclass
class PartDescription:
    kind: str              # generator | optimizer | scorer
    name: str
    summary: str
    doc: str
    options: list[Option]
    source: str
    distribution: str | None
    preset: str | None = None                       # generators: the optimizer a run gets by default
    weights: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for o in out["options"]:
            o["default"] = _json_default(o["default"])
        return out


REQUIRED = "(required)"


def _json_default(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def option_meanings(doc: str) -> dict[str, str]:
    """``name -> meaning`` from the ``Options:`` block of a docstring (indented ``name: text`` lines)."""
    meanings: dict[str, str] = {}
    inside, indent = False, None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in _OPTIONS_HEADER:
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not stripped:
            continue
        lead = len(line) - len(line.lstrip())
        if indent is None:
            indent = lead
        if lead < indent:
            inside = False
            continue
        m = _OPTION_LINE.match(line)
        if m and lead == indent:
            meanings[m["name"]] = m["text"].strip()
            last = m["name"]
        elif lead > indent and meanings:
            meanings[last] += " " + stripped   # a continuation line
    return meanings


def _type_name(annotation: Any, default: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return type(default).__name__ if default not in (inspect.Parameter.empty, None) else "any"
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def _factory_doc(factory: Callable[..., Any]) -> str:
    doc = inspect.getdoc(factory) or ""
    init = factory.__dict__.get("__init__") if inspect.isclass(factory) else None   # its own, not inherited
    init_doc = inspect.cleandoc(init.__doc__) if init is not None and init.__doc__ else None
    if init_doc and init_doc not in doc:
        doc = f"{doc}\n\n{init_doc}" if doc else init_doc
    return doc


def _without_options_block(doc: str) -> str:
    """The docstring minus its ``Options:`` block (shown as the options table instead)."""
    out, skipping, indent = [], False, 0
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in _OPTIONS_HEADER:
            skipping, indent = True, len(line) - len(line.lstrip())
            continue
        if skipping and (not stripped or len(line) - len(line.lstrip()) > indent):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out).strip()


def _options(factory: Callable[..., Any], doc: str, kind: str) -> list[Option]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    meanings = option_meanings(doc)
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        default = REQUIRED if p.default is inspect.Parameter.empty else p.default
        out.append(Option(p.name, _type_name(p.annotation, p.default), default, meanings.get(p.name, ""),
                          supplied_by_run=kind == "optimizers" and p.name in CONTEXT_KEYS))
    return out


def _weights_for(kind: str, name: str) -> list[dict[str, str]]:
    from actmax.core.weights import KNOWN_WEIGHTS

    single = kind.rstrip("s")
    rows = []
    for spec in KNOWN_WEIGHTS.values():
        used = spec.used_by or ""
        if used.startswith(f"{single} {name}") and (len(used) == len(f"{single} {name}")
                                                    or used[len(f"{single} {name}")] in ":,"):
            rows.append({"name": spec.name, "file": spec.filename, "env_var": spec.env_var,
                         "used_by": used, "description": spec.description})
    return rows


def describe(kind: str, name: str) -> PartDescription:
    """Options (type, default, meaning), docstring, optimizer preset and weight files of one part.

    ``kind`` is ``generators``, ``optimizers`` or ``scorers`` (singular accepted); ``name`` a registered
    name or an import path ``package.module:Class``.
    """
    kinds = kind if kind.endswith("s") else kind + "s"
    if kinds not in ("generators", "optimizers", "scorers"):
        raise RegistryError(f"unknown kind {kind!r}: use generators, optimizers or scorers")
    reg = registry_for(kinds)
    entry = reg.entry(name)
    doc = _factory_doc(entry.factory)
    options = _options(entry.factory, doc, kinds)
    return PartDescription(kind=kinds.rstrip("s"), name=entry.name, summary=entry.description, doc=doc,
                           options=options, source=entry.source, distribution=entry.distribution,
                           preset=_light_preset(kinds, entry.factory, options),
                           weights=_weights_for(kinds, entry.name))


def _light_preset(kind: str, factory: Callable[..., Any], options: list[Option]) -> str | None:
    """The default optimizer of a generator, built without weights (never downloads)."""
    if kind != "generators":
        return None
    params = {o.name for o in options}
    try:
        from actmax.core.evolve import space_optimizer

        kwargs = {"pretrained": False} if "pretrained" in params else {}
        if "download" in params:
            kwargs["download"] = False
        return str(space_optimizer(factory(**kwargs)))
    except Exception:  # noqa: BLE001 - cannot be built here (missing package): no preset shown
        return None


def format_description(d: PartDescription) -> str:
    """The text ``actmax list KIND NAME`` prints."""
    lines = [f"{d.kind} {d.name}: {d.summary}", f"  source: {d.source}"
             + (f" [{d.distribution}]" if d.distribution else ""), "", "options:"]
    if not d.options:
        lines.append("  (none)")
    width = max((len(o.name) for o in d.options), default=0)
    twidth = max((len(o.type) for o in d.options), default=0)
    for o in d.options:
        default = "required" if o.default is REQUIRED else f"default {o.default!r}"
        meaning = "supplied by the run" + (f"; {o.meaning}" if o.meaning else "") if o.supplied_by_run else o.meaning
        lines.append(f"  {o.name.ljust(width)}  {o.type.ljust(twidth)}  {default}" + (f"  - {meaning}" if meaning else ""))
    if d.preset:
        lines += ["", f"optimizer preset (when a run names none): {d.preset}"]
    if d.weights:
        lines += ["", "weight files (`actmax weights` says where each is looked for):"]
        lines += [f"  {w['name']}: {w['file']} (${w['env_var']}; {w['used_by']})" for w in d.weights]
    body = _without_options_block("\n".join(d.doc.splitlines()[1:]))
    if body:
        lines += ["", body]
    return "\n".join(lines)

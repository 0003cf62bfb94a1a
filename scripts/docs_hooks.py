"""mkdocs hook: the page marked ``<!-- parts:options -->`` gets every registered part's options,
generated from ``actmax.describe`` (types, defaults, meanings, presets, weight files), so the docs
never drift from the code."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: where the API reference reads the package from: the root folders (core/, generators/, ...) laid out
#: as the installed package ``actmax`` (symlinks), which the static analysis of mkdocstrings needs
API_SRC = ROOT / "build" / "docs_src"


def on_startup(command, dirty) -> None:  # noqa: ANN001 - mkdocs hook signature
    pkg = API_SRC / "actmax"
    pkg.mkdir(parents=True, exist_ok=True)
    for name in ("__init__.py", "core", "generators", "optimizers", "scorers"):
        link, target = pkg / name, (ROOT / "actmax" / name if name == "__init__.py" else ROOT / name)
        if not link.is_symlink():
            os.symlink(target, link)


def _table(kind: str) -> str:
    from actmax.core.describe import REQUIRED, describe
    from actmax.core.registry import registry_for

    out = [f"## {kind.capitalize()}\n"]
    for name in registry_for(kind).names():
        d = describe(kind, name)
        out.append(f"### `{name}`\n\n{d.summary}\n")
        out.append("| option | type | default | meaning |\n|---|---|---|---|")
        for o in d.options:
            default = "required" if o.default is REQUIRED else f"`{o.default!r}`"
            meaning = ("supplied by the run" + ("; " + o.meaning if o.meaning else "")) if o.supplied_by_run else o.meaning
            out.append(f"| `{o.name}` | `{o.type}` | {default} | {meaning.replace('|', '/')} |")
        if d.preset:
            out.append(f"\nOptimizer preset (when a run names none): `{d.preset}`")
        if d.weights:
            out.append("\nWeight files: " + ", ".join(f"`{w['file']}` (`${w['env_var']}`)" for w in d.weights))
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs hook signature
    marker = "<!-- parts:options -->"
    if marker not in markdown:
        return markdown
    return markdown.replace(marker, "\n".join(_table(k) for k in ("generators", "optimizers", "scorers")))

"""Layering, for every folder: the kernel (core/*.py, core/records/, core/runs/) imports no part folder,
application or CLI; applications (core/apps/) import no CLI; a part folder (generators/, optimizers/,
scorers/ with scorers/twin/) imports no other part folder, application or CLI; nothing calls
``matplotlib.use`` (it would switch the caller's backend); discovery is lazy."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

KERNEL = sorted([*(REPO / "core").glob("*.py"), *(REPO / "core" / "records").glob("*.py"),
                 *(REPO / "core" / "runs").glob("*.py")])
FORBIDDEN = ("actmax.generators", "actmax.optimizers", "actmax.scorers", "actmax.core.apps", "actmax.core.cli",
             "generators", "optimizers", "scorers", "core.apps", "core.cli")
PART_FOLDERS = ("generators", "optimizers", "scorers")
#: folder -> modules it must not import (a part folder: the other part folders, the applications, the CLI)
RULES = {
    "core/apps": ("actmax.core.cli", "core.cli"),
    **{part: tuple(f"{prefix}{other}" for other in PART_FOLDERS if other != part for prefix in ("actmax.", ""))
       + ("actmax.core.apps", "actmax.core.cli", "core.apps", "core.cli") for part in PART_FOLDERS},
}
EVERY_FOLDER = sorted({p.parent.relative_to(REPO).as_posix() for p in REPO.glob("*/**/*.py")
                       if p.parts[len(REPO.parts)] in ("core", *PART_FOLDERS)})


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` statement in ``path`` names, at any depth (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = "actmax.core"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                   # relative: resolve against actmax.core
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_kernel_files_exist():
    names = {p.relative_to(REPO / "core").as_posix() for p in KERNEL}
    assert {"registry.py", "contracts.py", "errors.py", "specs.py", "files.py", "records/record.py",
            "runs/driver.py", "runs/kind.py", "evolve.py", "synthesize.py"} <= names


def test_every_folder_has_a_rule():
    """core/cli may import anything; every other folder of the package is covered by a rule above."""
    covered = {"core", "core/records", "core/runs", "core/cli", *RULES}
    loose = [f for f in EVERY_FOLDER if f not in covered and not any(f.startswith(r + "/") for r in RULES)]
    assert not loose, f"folders without a layering rule: {loose}"


def _folder_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(RULES))
def test_folder_imports_only_what_its_layer_may(folder):
    forbidden = RULES[folder]
    bad = [(p.relative_to(REPO).as_posix(), line, m) for p in _folder_files(folder) for line, m in imported_modules(p)
           if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not bad, f"{folder} imports {bad}"


def test_no_library_code_switches_the_matplotlib_backend():
    hits = [f"{p.relative_to(REPO)}:{i}" for folder in ("core", *PART_FOLDERS) for p in _folder_files(folder)
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "matplotlib.use(" in line and not line.lstrip().startswith(("#", "``", "pyplot"))
            and '``matplotlib.use' not in line]
    assert not hits, hits


@pytest.mark.parametrize("path", KERNEL, ids=lambda p: p.name)
def test_kernel_module_imports_no_plugin_application_or_cli(path):
    bad = [(line, m) for line, m in imported_modules(path) if _forbidden(m)]
    assert not bad, f"{path.name} imports {bad}"


def test_the_check_catches_lazy_and_relative_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from actmax.optimizers.base import Optimizer\n"
                   "def g():\n    import actmax.core.apps.plots\nfrom ..scorers import base\n")
    assert sorted(m for _, m in imported_modules(src) if _forbidden(m)) == [
        "actmax.core.apps.plots", "actmax.optimizers.base", "actmax.optimizers.base.Optimizer",
        "actmax.scorers", "actmax.scorers.base"]


@pytest.mark.parametrize("statement", ["import actmax.core.errors", "import actmax.core.registry",
                                       "import actmax"])
def test_importing_the_kernel_loads_no_part(statement):
    code = (f"{statement}; import sys, json; print(json.dumps(sorted(m for m in sys.modules "
            "if m.startswith(('actmax.generators', 'actmax.optimizers', 'actmax.scorers')))))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []


def test_parts_load_on_first_registry_use():
    code = ("from actmax.core.registry import optimizers; import sys; "
            "print('actmax.optimizers.cma' in sys.modules); optimizers.names(); "
            "print('actmax.optimizers.cma' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACTMAX_NO_PLUGINS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]


def test_nothing_refers_to_files_outside_the_repository():
    needles = (".." + "/shared", "/work" + "/shared")          # spelled apart so this file does not match
    import subprocess
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True)
    # what a clone holds (tracked + untracked-not-ignored); build outputs such as *.egg-info are not the repository's
    paths = [REPO / line for line in listed.stdout.splitlines()] if listed.returncode == 0 else list(REPO.rglob("*"))
    skip = {".git", ".venv", "runs", "build", "dist", "__pycache__", ".pytest_cache", "demo_out"}
    hits = []
    for path in paths:
        parts = path.relative_to(REPO).parts
        outputs = skip & set(parts) - ({"runs"} if parts[0] != "runs" else set())   # core/runs is code
        if not path.is_file() or outputs or path.stat().st_size > 2_000_000:
            continue
        if path.suffix in (".py", ".md", ".toml", ".txt", ".cfg", ".yaml", ".yml", ".sh", ".json", ".csv", ""):
            text = path.read_text(errors="ignore")
            hits += [f"{path.relative_to(REPO)}: {n}" for n in needles if n in text]
    assert not hits, hits

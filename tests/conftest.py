"""Shared test helpers: run the CLI (in this interpreter or in a subprocess), small specs."""
from __future__ import annotations

import os
import platform

# Pin OpenBLAS's kernels before numpy loads (the user can override): pycma's updates go through BLAS,
# and the legacy replay of pre-issue-19 CMA checkpoints (tests/fixtures/old_records, written on a machine
# whose OpenBLAS picked its Haswell kernels) only reproduces its recorded codes bit for bit on the same
# kernels; on others (SkylakeX, Sandybridge) it refuses with "replay diverged", as it should.
if platform.machine() in ("x86_64", "AMD64"):
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import io  # noqa: E402
import logging  # noqa: E402
import random
import runpy
import subprocess
import sys
import tempfile
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import configuration as hypothesis_configuration
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
# One compute thread per test process: pytest-xdist's workers already fill the cores, and idle BLAS
# threads spinning against another worker cost the suite many times the work (35x seen on a 4096-d
# optimizer test). threadpoolctl limits the BLAS already loaded here; the environment reaches subprocesses.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
torch.set_num_threads(1)
threadpool_limits(1)
# Hypothesis keeps its example database (failures replay on the next run) outside the repository.
hypothesis_configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"actmax-hypothesis-{os.getuid()}")


def run_cli_subprocess(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                       timeout: float = 600) -> subprocess.CompletedProcess:
    """``actmax ARGS`` in a fresh interpreter (what a user's shell does).

    For what only a real process shows: import-time behaviour, plugins found through ``PYTHONPATH``,
    signals, locks held by another process. Each call costs about 2 CPU-s of interpreter start-up."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "actmax.core.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO, timeout=timeout)


def _show_warning(stream):
    def show(message, category, filename, lineno, file=None, line=None):
        stream.write(warnings.formatwarning(message, category, filename, lineno, line))
    return show


def _in_process(main, argv: list[str], env: dict[str, str] | None, cwd: Path | None) -> tuple[int, str, str]:
    """``main(argv)`` with what a fresh interpreter would give it; returns (exit code, stdout, stderr).

    What one run could leak into the next is set up fresh and put back: environment, working folder,
    logging handlers (``%(message)s`` lines go to stderr), warning filters (Python's defaults, shown on
    stderr), torch threads and the global RNGs. An uncaught exception is exit 1 with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(message)s"))
    threads, cwd_before = torch.get_num_threads(), os.getcwd()
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    code = 0
    with mock.patch.dict(os.environ, {"OMP_NUM_THREADS": "1", **(env or {})}), warnings.catch_warnings():
        warnings.resetwarnings()   # Python's default filters, as in a fresh interpreter
        for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show_warning(err)
        root.handlers = [handler]
        root.setLevel(logging.WARNING)
        os.chdir(cwd or REPO)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                result = main(argv)
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                err.write(f"{exc.code}\n")
                code = 1
        except Exception:  # what an interpreter does with an uncaught exception (pytest's own outcomes pass)
            err.write(traceback.format_exc())
            code = 1
        finally:
            os.chdir(cwd_before)
            root.handlers = saved_handlers
            root.setLevel(saved_level)
            torch.set_num_threads(threads)
            random.setstate(rng[0])
            np.random.set_state(rng[1])
            torch.set_rng_state(rng[2])
    return code, out.getvalue(), err.getvalue()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """``actmax ARGS`` run by ``actmax.core.cli.main`` in this interpreter, with a subprocess's result
    (see ``_in_process``). ``timeout`` is accepted for the subprocess signature; pytest-timeout bounds
    the test instead."""
    from actmax.core.cli import main

    code, out, err = _in_process(main, list(args), env, cwd)
    return subprocess.CompletedProcess(["actmax", *args], code, out, err)


def run_script(script: Path, *args: str, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` run as ``__main__`` in this interpreter (a figure script's start-up costs
    more than its figure), with a subprocess's result; the script's folder is importable, as it would be."""
    def main(argv: list[str]) -> None:
        saved_argv, saved_path = sys.argv[:], sys.path[:]
        sys.argv = [str(script), *argv]
        sys.path.insert(0, str(Path(script).parent))
        try:
            runpy.run_path(str(script), run_name="__main__")
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path

    code, out, err = _in_process(main, list(args), env, cwd)
    return subprocess.CompletedProcess([sys.executable, str(script), *args], code, out, err)


@pytest.fixture
def cli():
    return run_cli

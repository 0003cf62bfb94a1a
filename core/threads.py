"""Torch intra-op threads while several evolution threads run at once.

A paired evolution renders each space in its own Python thread. Each of those would use torch's
whole intra-op pool (one OS thread per core) on tiny operations, so k spaces oversubscribe the
cores k-fold and spend their time spinning: measured on 2 cores, one paired noisy evolution of
the demo took 17.0 CPU-s with torch's default two intra-op threads and 8.4 CPU-s with one. The
same holds for numpy's BLAS pool, which pycma's eigendecompositions use (a 288-d ``eigh``: 0.026
CPU-s with two OpenBLAS threads, 0.009 with one). :func:`intra_op_threads` caps torch and the
BLAS pools (threadpoolctl) at one thread each for the duration of such a run, unless the user
chose a thread count (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS``, or
``torch.set_num_threads`` before the run), and restores the previous counts afterwards.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator

import torch

__all__ = ["intra_op_threads", "single_threaded", "user_set_threads"]

#: torch's intra-op thread count as first seen by actmax (before any cap): a count that differs
#: from it later was set by the user.
_DEFAULT = torch.get_num_threads()
_LOCK = threading.Lock()
_ACTIVE = 0
_SAVED: int | None = None
_BLAS: Any = None   # the threadpoolctl limiter in force (restores the BLAS pools when undone)


def user_set_threads() -> bool:
    """Whether the user chose torch's thread count (environment or ``torch.set_num_threads``)."""
    if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")):
        return True
    return _ACTIVE == 0 and torch.get_num_threads() != _DEFAULT


def intra_op_threads(parallel: int) -> contextlib.AbstractContextManager[None]:
    """Cap torch and BLAS at one thread while ``parallel`` > 1 Python threads run torch code
    (:func:`single_threaded`); nothing for ``parallel <= 1``."""
    return single_threaded() if parallel > 1 else contextlib.nullcontext()


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Torch and the BLAS pools at one thread each, unless the user set a thread count.

    For work made of many tiny operations (the demo's 64 px model neurons, paired evolutions):
    on a busy machine a second intra-op thread spins waiting for its partner and multiplies the
    CPU time (the demo: 159 CPU-s with torch's two threads at load 10 on 2 cores). Nested or
    concurrent uses share one cap; the counts in force before the first are restored when the
    last ends.
    """
    global _ACTIVE, _SAVED, _BLAS
    if user_set_threads():
        yield
        return
    with _LOCK:
        if _ACTIVE == 0:
            from threadpoolctl import threadpool_limits

            _SAVED = torch.get_num_threads()
            torch.set_num_threads(1)
            _BLAS = threadpool_limits(limits=1, user_api="blas")
        _ACTIVE += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0 and _SAVED is not None:
                if _BLAS is not None:   # first: restoring MKL's count can change torch's (torch uses MKL)
                    _BLAS.restore_original_limits()
                    _BLAS = None
                torch.set_num_threads(_SAVED)
                _SAVED = None

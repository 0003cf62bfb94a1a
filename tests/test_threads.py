"""Paired evolutions cap torch (and BLAS) at one thread per space thread, unless the user set a count,
and restore the previous counts afterwards."""
from __future__ import annotations

import torch

from actmax.core import threads


def test_cap_inside_restore_after_and_respect_the_user(monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    original = torch.get_num_threads()
    torch.set_num_threads(2)                                 # the suite runs single-threaded: start from 2
    monkeypatch.setattr(threads, "_DEFAULT", 2)              # the count as first seen = not set by the user
    before = 2
    from threadpoolctl import threadpool_info

    with threads.intra_op_threads(2):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        with threads.intra_op_threads(3):                    # nested: one cap
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with threads.intra_op_threads(1):                        # one thread of work: nothing to cap
        assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "2")               # the user chose: left alone
    assert threads.user_set_threads()
    with threads.single_threaded():
        assert torch.get_num_threads() == before
    torch.set_num_threads(original)


def test_paired_evolution_leaves_the_thread_count_as_it_was(monkeypatch):
    import actmax

    before = torch.get_num_threads()
    actmax.evolve(["gabor:size=16", "pixel:size=8"], "model:n=1,size=16", "cma:popsize=4", generations=2,
                  progress=False)
    assert torch.get_num_threads() == before

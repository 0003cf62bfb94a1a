"""Optimizer state is restored from its saved form, never by replaying ask/tell (issue 22).

pycma's strategy is stored as its numeric state (tensors, plain values) and written back into a
freshly built strategy: a resumed optimizer equals an uninterrupted one bit for bit. The replay
of told scores survives only as the legacy loader of checkpoints written before this form.
"""
from __future__ import annotations

import copy
import hashlib
import io
import warnings

import numpy as np
import pytest
import torch

from actmax.core.errors import OptimizerStateError
from actmax.core.registry import optimizers
from actmax.optimizers.cma import PyCMA


def objective(x: np.ndarray) -> np.ndarray:
    return -np.sum((x - 0.3) ** 2, axis=1) + np.sin(3 * x).sum(axis=1)


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def no_replay(monkeypatch):
    """Make any ask/tell on a pycma strategy during a restore an error."""
    import cma

    def refuse(*args, **kwargs):
        raise AssertionError("the state must be restored without asking or telling pycma")

    monkeypatch.setattr(cma.CMAEvolutionStrategy, "ask", refuse)
    monkeypatch.setattr(cma.CMAEvolutionStrategy, "tell", refuse)
    monkeypatch.setattr(PyCMA, "_load_legacy_replay", refuse)


def resumed_equals_uninterrupted(spec, dim, before, after, monkeypatch, pending=False):
    ctx = {"dim": dim, "x0": np.linspace(-1, 1, dim), "sigma0": 0.6, "seed": 7}
    a = optimizers.create(spec, **ctx)
    for _ in range(before):
        x = a.ask()
        a.tell(x, objective(x))
    if pending:
        a.ask()
    state = roundtrip(a.state_dict())
    assert "digests" not in state and "scores" not in state       # the saved form, not a score history
    b = optimizers.create(spec, **ctx)
    with monkeypatch.context() as m:
        no_replay(m)
        b.load_state_dict(state)
    assert b.generation == a.generation and b.best_score == a.best_score
    for _ in range(after):
        xa, xb = a.ask(), b.ask()
        np.testing.assert_array_equal(xa, xb)
        sa, sb = objective(xa), objective(xb)
        np.testing.assert_array_equal(sa, sb)
        a.tell(xa, sa)
        b.tell(xb, sb)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.sigma == b.sigma and a.best_score == b.best_score


@pytest.mark.parametrize("spec", [
    "cma", "cma:diagonal=True", "cma:sampler=vd", "cma:sampler=vkd", "cma:popsize=5",
    {"name": "cma", "options": {"CMA_active": False}}, {"name": "cma", "options": {"bounds": [-1, 1]}},
    {"name": "cma", "options": {"CMA_elitist": True}}, {"name": "cma", "options": {"CMA_mirrors": True}},
])
def test_pycma_resume_is_bit_identical_small_d(spec, monkeypatch):
    # dim 12: pycma updates its eigen decomposition every few generations, so B and D change across the cut
    resumed_equals_uninterrupted(spec, 12, before=5, after=6, monkeypatch=monkeypatch)


@pytest.mark.parametrize("spec", ["cma", "cma:sampler=vkd"])
def test_pycma_resume_between_ask_and_tell_is_bit_identical(spec, monkeypatch):
    resumed_equals_uninterrupted(spec, 12, before=3, after=4, monkeypatch=monkeypatch, pending=True)


@pytest.mark.parametrize("spec", ["cma:popsize=8", "cma:diagonal=True,popsize=8"])
def test_pycma_resume_is_bit_identical_at_4096_d(spec, monkeypatch):
    resumed_equals_uninterrupted(spec, 4096, before=2, after=2, monkeypatch=monkeypatch)


def test_pycma_state_written_by_another_process_resumes_identically(tmp_path):
    """pycma keys its solution archives by ``hash(bytes)``, which differs between processes; a state
    saved between ask and tell (archives full) by another process still continues bit for bit."""
    import subprocess
    import sys
    import textwrap

    spec = {"name": "cma", "popsize": 8, "options": {"CMA_mirrors": True}}
    script = textwrap.dedent(f"""
        import numpy as np, torch
        from actmax.core.registry import optimizers
        from tests.test_optimizer_saved_state import objective
        opt = optimizers.create({spec!r}, dim=6, seed=4)
        for _ in range(3):
            x = opt.ask(); opt.tell(x, objective(x))
        opt.ask()
        torch.save(opt.state_dict(), {str(tmp_path / "state.pt")!r})
    """)
    import os
    from pathlib import Path
    env = dict(os.environ, PYTHONHASHSEED="1")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    a = optimizers.create(spec, dim=6, seed=4)
    for _ in range(3):
        x = a.ask()
        a.tell(x, objective(x))
    b = optimizers.create(spec, dim=6, seed=4)
    b.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # pycma warns when it cannot find a solution in its archives
        for _ in range(4):
            xa, xb = a.ask(), b.ask()
            np.testing.assert_array_equal(xa, xb)
            a.tell(xa, objective(xa))
            b.tell(xb, objective(xb))


def _state(spec="cma:popsize=6", dim=8, generations=3):
    opt = optimizers.create(spec, dim=dim, seed=1)
    for _ in range(generations):
        x = opt.ask()
        opt.tell(x, objective(x))
    return roundtrip(opt.state_dict())


def _corrupt(state, *path, value):
    state = copy.deepcopy(state)
    node = state
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return state


@pytest.mark.parametrize("damage", [
    ("es", "attrs", "mean", "__array__", torch.zeros(5, dtype=torch.float64)),          # wrong shape
    ("es", "attrs", "sigma", {"__scalar__": "float64", "value": float("nan")}),       # not finite
    ("es", "attrs", "sm", "__object__", "os.system"),                                 # not a pycma class
    ("es", "attrs", "sm", "__object__", "cma.evolution_strategy.os"),                 # not a class
    ("es", "attrs", "sm", "attrs", "C", {"__ref__": 10 ** 6}),                        # dangling reference
    ("es", "attrs", "sm", "attrs", "C", "garbage"),                                   # wrong type
    ("es", "attrs", "dC", "offset", 10 ** 9),                                         # view out of bounds
    ("es", "attrs", KeyError),                                                        # truncated
    ("es", KeyError),
    ("numpy_rng", "keys", torch.zeros(3, dtype=torch.int64)),
    ("popsize", 7),                                                                   # another setup
    ("options", '{"CMA_active": false}'),
])
def test_corrupt_or_mismatched_pycma_state_is_one_clear_error(damage):
    *path, value = damage
    state = _corrupt(_state(), *path, value=value)
    with pytest.raises(OptimizerStateError):
        optimizers.create("cma:popsize=6", dim=8, seed=1).load_state_dict(state)


def test_a_pycma_state_loads_only_with_the_same_options():
    state = _state({"name": "cma", "popsize": 6, "options": {"CMA_active": False}})
    with pytest.raises(OptimizerStateError, match="options"):
        optimizers.create("cma:popsize=6", dim=8, seed=1).load_state_dict(state)


def test_legacy_replay_state_still_loads():
    """A state in the form written before issue 22 (told scores + code digests) is replayed."""
    a = optimizers.create("cma:popsize=6", dim=8, seed=2)
    scores, digests = [], []
    for _ in range(4):
        x = a.ask()
        s = objective(x)
        a.tell(x, s)
        scores.append(torch.from_numpy(s))
        digests.append(hashlib.sha1(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest())
    code, score = a.best
    legacy = {"optimizer": "cma", "dim": 8, "seed": 2, "popsize": 6, "diagonal": False, "sampler": "full",
              "sigma0": 1.0, "x0": torch.zeros(8, dtype=torch.float64), "scores": scores, "digests": digests,
              "best_code": torch.from_numpy(code), "best_score": score}
    b = optimizers.create("cma:popsize=6", dim=8, seed=2)
    b.load_state_dict(roundtrip(legacy))
    assert b.generation == 4 and b.best_score == a.best_score
    np.testing.assert_array_equal(a.ask(), b.ask())
    legacy["digests"][2] = "0" * 40
    with pytest.raises(OptimizerStateError, match="diverged"):
        optimizers.create("cma:popsize=6", dim=8, seed=2).load_state_dict(legacy)


@pytest.mark.parametrize("spec", ["cholesky_cma:popsize=6", "sphere_cma:popsize=6,n_gen=10", "genetic:popsize=6",
                                  "random:popsize=6"])
def test_other_optimizers_restore_without_asking_or_telling(spec, monkeypatch):
    """Their state holds their numbers (mean, paths, factors, population, RNG): a restore calls neither
    ``_ask`` nor ``_tell``, and the next generations are those of the uninterrupted run."""
    a = optimizers.create(spec, dim=8, x0=np.linspace(-1, 1, 8), sigma0=0.5, seed=3)
    for _ in range(3):
        x = a.ask()
        a.tell(x, objective(x))
    state = roundtrip(a.state_dict())
    b = optimizers.create(spec, dim=8, x0=np.linspace(-1, 1, 8), sigma0=0.5, seed=3)
    cls = type(b)

    def refuse(*args, **kwargs):
        raise AssertionError("restore must not replay")

    with monkeypatch.context() as m:
        m.setattr(cls, "_ask", refuse)
        m.setattr(cls, "_tell", refuse)
        b.load_state_dict(state)
    for _ in range(3):
        xa, xb = a.ask(), b.ask()
        np.testing.assert_array_equal(xa, xb)
        a.tell(xa, objective(xa))
        b.tell(xb, objective(xb))

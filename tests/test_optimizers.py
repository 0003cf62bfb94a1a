"""Gradient-free optimizers: seeding, exact state round-trips, behaviour on known functions, bad input."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from actmax.core.registry import optimizers
from actmax.optimizers.base import OptimizerStateError
from actmax.optimizers.cholesky_cma import CholeskyCMA, FactoredCholesky
from actmax.optimizers.genetic import Genetic
from actmax.optimizers.hess_cma import HessCMA
from actmax.optimizers.sphere_cma import SphereCMA

DIM = 12


def _hessian(dim: int = DIM, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return np.geomspace(0.1, 10.0, dim), q          # ascending, as numpy.linalg.eigh returns them


SPECS = {
    "cholesky_cma": {"name": "cholesky_cma", "a_update_freq": 1, "max_factors": 4},
    "sphere_cma": {"name": "sphere_cma", "popsize": 10, "select_size": 5, "n_gen": 20},
    "hess_cma": {"name": "hess_cma", "cutoff": 8},
    "genetic": {"name": "genetic", "popsize": 12, "n_conserve": 3},
    "random": {"name": "random", "popsize": 8},
    "cma": {"name": "cma"},
    "cma_diagonal": {"name": "cma", "diagonal": True},
    "cma_vd": {"name": "cma", "sampler": "vd"},
    "cma_vkd": {"name": "cma", "sampler": "vkd"},
}


def make(key: str, seed: int = 0, dim: int = DIM, **extra):
    spec = dict(SPECS[key], **extra)
    context = {"dim": dim, "x0": np.linspace(-1, 1, dim), "sigma0": 0.7, "seed": seed}
    if spec["name"] == "hess_cma":
        vals, vecs = _hessian(dim)
        spec.update(eigvals=vals, eigvecs=vecs)
    return optimizers.create(spec, **context)


def objective(x: np.ndarray) -> np.ndarray:
    """A smooth function with a known maximum (0 at x = 0.5) and distinct scores."""
    return -np.sum((x - 0.5) ** 2, axis=1) + 1e-3 * x[:, 0]


def run(opt, generations: int, f=objective) -> list[np.ndarray]:
    asked = []
    for _ in range(generations):
        x = opt.ask()
        asked.append(x)
        opt.tell(x, f(x))
    return asked


# -- seeding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(SPECS))
def test_same_seed_same_generations_different_seed_differs(key):
    a, b, c = make(key, seed=5), make(key, seed=5), make(key, seed=6)
    for xa, xb in zip(run(a, 4), run(b, 4)):
        np.testing.assert_array_equal(xa, xb)
    assert not np.allclose(make(key, seed=5).ask(), c.ask())


@pytest.mark.parametrize("key", ["cholesky_cma", "sphere_cma", "genetic", "random"])
def test_no_global_rng_used(key):
    np.random.seed(0)
    first = make(key, seed=1).ask()
    np.random.seed(123)
    torch.manual_seed(123)
    np.testing.assert_array_equal(first, make(key, seed=1).ask())


# -- state --------------------------------------------------------------------------------------
def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("pending", [False, True], ids=["after_tell", "after_ask"])
@pytest.mark.parametrize("key", list(SPECS))
def test_state_round_trip_continues_identically(key, pending):
    opt = make(key, seed=2)
    run(opt, 3)
    if pending:
        opt.ask()
    state = _roundtrip(opt.state_dict())
    restored = make(key, seed=2)
    restored.load_state_dict(state)
    assert restored.best[1] == opt.best[1]
    for xa, xb in zip(run(opt, 4), run(restored, 4)):
        np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(opt.best[0], restored.best[0])


@pytest.mark.parametrize("key", ["cholesky_cma", "sphere_cma", "hess_cma", "genetic", "random"])
def test_state_from_other_configuration_is_rejected(key):
    opt = make(key)
    run(opt, 1)
    other = make(key, dim=DIM + 1) if key != "hess_cma" else make(key, cutoff=5)
    with pytest.raises(OptimizerStateError):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(OptimizerStateError):
        make(key).load_state_dict({"optimizer": "something_else"})


def test_cholesky_state_after_folding_round_trips():
    opt = make("cholesky_cma", max_factors=2)
    run(opt, 6)
    assert opt.factor.base is not None            # factors were folded into a dense base
    restored = make("cholesky_cma", max_factors=2)
    restored.load_state_dict(_roundtrip(opt.state_dict()))
    for xa, xb in zip(run(opt, 3), run(restored, 3)):
        np.testing.assert_array_equal(xa, xb)


# -- bad tell input -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(SPECS))
def test_bad_tell_input_is_a_clear_error(key):
    opt = make(key)
    x = opt.ask()
    s = objective(x)
    with pytest.raises(ValueError, match="non-finite"):
        opt.tell(x, np.where(np.arange(len(s)) == 1, np.nan, s))
    with pytest.raises(ValueError, match="shape"):
        opt.tell(x[:, :-1], s)
    with pytest.raises(ValueError, match="scores"):
        opt.tell(x, s[:-1])
    opt.tell(x, s)                                  # the failed calls left the optimizer usable


@pytest.mark.parametrize("key", ["cholesky_cma", "sphere_cma", "hess_cma", "random"])
def test_tell_needs_the_asked_codes(key):
    opt = make(key)
    with pytest.raises(ValueError, match="ask"):
        opt.tell(np.zeros((4, DIM)), np.zeros(4))
    x = opt.ask()
    with pytest.raises(ValueError, match="last ask"):
        opt.tell(x + 0.1, objective(x))
    opt.tell(x.astype(np.float32), objective(x))   # a float32 round trip (rendering) is fine


# -- CholeskyCMAES ------------------------------------------------------------------------------
def test_cholesky_reference_defaults():
    big = CholeskyCMA(dim=4096)
    assert (big.popsize, big.mu) == (40, 20)
    assert big.mueff == pytest.approx(11.31, abs=0.01)
    assert big.cs == pytest.approx(0.0499, abs=1e-4)
    assert big.c1 == pytest.approx(1.19e-7, rel=1e-2)
    assert big.cc == pytest.approx(4 / 4100)
    assert big.update_crit == 400
    small = CholeskyCMA(dim=256)
    assert (small.popsize, small.mu) == (28, 14)
    assert small.cs == pytest.approx(0.151, abs=1e-3)
    assert small.c1 == pytest.approx(3.0e-5, rel=1e-2)
    assert big.sigma0 == 3.0


def test_factored_update_matches_the_dense_reference_formulas():
    n, c1 = 9, 0.07
    rng = np.random.default_rng(0)
    factor = FactoredCholesky(n, max_factors=3)
    a, a_inv = np.eye(n), np.eye(n)
    for _ in range(8):
        pc = rng.standard_normal(n)
        v = pc @ a_inv
        nv = v @ v
        a = math.sqrt(1 - c1) * a + math.sqrt(1 - c1) / nv * (math.sqrt(1 + nv * c1 / (1 - c1)) - 1) * np.outer(v, pc)
        a_inv = a_inv / math.sqrt(1 - c1) - (1 - 1 / math.sqrt(1 + nv * c1 / (1 - c1))) / (math.sqrt(1 - c1) * nv) \
            * a_inv @ np.outer(v, v)
        factor.rank_one_update(pc, c1)
        np.testing.assert_allclose(factor.dense(), a, atol=1e-12)
        np.testing.assert_allclose(factor.apply_inverse(np.eye(n)), a_inv, atol=1e-12)
    # the covariance really received the rank-1 term: C = (1 - c1) C_old + c1 pc^T pc
    c_before = a.T @ a
    pc = rng.standard_normal(n)
    factor.rank_one_update(pc, c1)
    a_new = factor.dense()
    np.testing.assert_allclose(a_new.T @ a_new, (1 - c1) * c_before + c1 * np.outer(pc, pc), atol=1e-12)


def test_cholesky_reaches_the_optimum_of_a_sphere():
    opt = CholeskyCMA(dim=10, x0=np.full(10, 3.0), sigma0=1.0, seed=0)
    run(opt, 120, lambda x: -np.sum(x ** 2, axis=1))
    assert opt.best[1] > -1e-4
    assert np.linalg.norm(opt.mean) < 0.02


def test_cholesky_step_size_grows_on_a_linear_function():
    opt = CholeskyCMA(dim=10, sigma0=0.1, seed=0)
    run(opt, 30, lambda x: x.sum(axis=1))
    assert opt.sigma > 1.0                       # cumulative step-size adaptation kicks in
    assert opt.mean.sum() > 10


def test_cholesky_learns_the_direction_of_a_ridge():
    """With frequent rank-1 updates the covariance stretches along a consistent gradient."""
    direction = np.ones(8) / math.sqrt(8)
    opt = CholeskyCMA(dim=8, sigma0=0.3, seed=1, a_update_freq=0, c1=0.2)
    run(opt, 40, lambda x: x @ direction - 10 * np.sum((x - np.outer(x @ direction, direction)) ** 2, axis=1))
    a = opt.covariance_factor
    c = a.T @ a
    top = np.linalg.eigh(c)[1][:, -1]
    assert abs(top @ direction) > 0.9
    np.testing.assert_allclose(a @ opt.covariance_factor_inverse, np.eye(8), atol=1e-8)


def test_first_ask_samples_around_x0():
    x0 = np.linspace(-2, 2, DIM)
    opt = CholeskyCMA(dim=DIM, x0=x0, sigma0=0.5, seed=0, popsize=400)
    x = opt.ask()
    assert x.shape == (400, DIM)
    np.testing.assert_allclose(x.mean(0), x0, atol=0.1)
    assert x.std(0).mean() == pytest.approx(0.5, rel=0.1)


# -- SphereCMA ----------------------------------------------------------------------------------
def test_sphere_codes_stay_on_the_sphere_and_find_a_direction():
    target = np.random.default_rng(7).standard_normal(20)
    target /= np.linalg.norm(target)
    opt = SphereCMA(dim=20, x0=np.ones(20), seed=0, n_gen=60)
    assert opt.sphere_norm == 300.0                                   # the lab's radius by default
    for x in run(opt, 60, lambda x: x @ target):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 300.0, rtol=1e-10)
    assert opt.center @ target > 0.99
    small = SphereCMA(dim=20, x0=np.ones(20), seed=0, sphere_norm=math.sqrt(20))
    np.testing.assert_allclose(np.linalg.norm(small.ask(), axis=1), math.sqrt(20), rtol=1e-10)


def test_sphere_samples_sit_at_the_scheduled_angle_and_centre_comes_first():
    opt = SphereCMA(dim=2000, x0=np.ones(2000), seed=0, sphere_norm=300.0)
    x = opt.ask()
    np.testing.assert_allclose(x[0], 300.0 * opt.center)
    cos = (x[1:] @ x[0]) / 300.0 ** 2
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    assert angles.mean() == pytest.approx(50.0, rel=0.03)


def test_sphere_schedules():
    opt = SphereCMA(dim=10, n_gen=75)
    assert opt.angle(0) == pytest.approx(50.0)
    assert opt.angle(74) == pytest.approx(7.33)
    assert opt.angle(37) == pytest.approx(math.sqrt(50 * 7.33), rel=1e-9)    # geometric mid-point
    assert opt.angle(500) == pytest.approx(7.33)
    inv = SphereCMA(dim=10, n_gen=75, schedule="inv")
    assert inv.angle(0) == pytest.approx(15 + 1 / (0.0017 + 0.0146))
    with pytest.raises(ValueError, match="schedule"):
        SphereCMA(dim=10, schedule="cosine")


def test_sphere_centre_gets_no_weight_unless_rankbasis():
    opt = SphereCMA(dim=10, x0=np.ones(10), seed=0, popsize=6, select_size=3)
    x = opt.ask()
    before = opt.center.copy()
    scores = np.array([100.0, 1, 2, 3, 4, 5])           # the centre is by far the best
    opt.tell(x, scores)
    assert not np.allclose(opt.center, before)           # moved towards the best samples anyway
    opt2 = SphereCMA(dim=10, x0=np.ones(10), seed=0, popsize=6, select_size=1, rankbasis=True)
    opt2.tell(opt2.ask(), scores)
    np.testing.assert_allclose(opt2.center, before, atol=1e-12)   # only the centre selected: no move


# -- HessCMA ------------------------------------------------------------------------------------
def test_hess_searches_only_the_top_subspace():
    vals, vecs = _hessian()
    x0 = np.linspace(-1, 1, DIM)
    opt = HessCMA(dim=DIM, x0=x0, sigma0=0.5, seed=0, eigvals=vals, eigvecs=vecs, cutoff=4)
    top = vecs[:, np.argsort(-vals)[:4]]
    for x in run(opt, 5):
        residual = (x - x0) - (x - x0) @ top @ top.T
        assert np.abs(residual).max() < 1e-10
    # steps scale as eigval^-expon: the stiffest direction moves least
    x = opt.ask() - x0
    spread = np.std(x @ top, axis=0)
    assert spread[0] < spread[-1]


def test_hess_improves_a_quadratic_in_its_subspace():
    vals, vecs = _hessian()
    target = vecs[:, np.argsort(-vals)[:6]] @ np.full(6, 1.0)
    opt = HessCMA(dim=DIM, sigma0=0.5, seed=0, eigvals=vals, eigvecs=vecs, cutoff=6, popsize=12)
    start = -np.sum(target ** 2)
    run(opt, 80, lambda x: -np.sum((x - target) ** 2, axis=1))
    assert opt.best[1] > 1e-3 * start


def test_hess_loads_files_without_pickle(tmp_path):
    vals, vecs = _hessian()
    np.savez(tmp_path / "h.npz", eigvals=vals, eigvecs=vecs)
    np.save(tmp_path / "vals.npy", vals)
    np.save(tmp_path / "vecs.npy", vecs)
    a = HessCMA(dim=DIM, seed=0, hessian=str(tmp_path / "h.npz"), cutoff=5)
    b = HessCMA(dim=DIM, seed=0, eigvals=str(tmp_path / "vals.npy"), eigvecs=str(tmp_path / "vecs.npy"), cutoff=5)
    c = optimizers.create(f"hess_cma:hessian={tmp_path / 'h.npz'},cutoff=5", dim=DIM, seed=0)
    np.testing.assert_array_equal(a.ask(), b.ask())
    np.testing.assert_array_equal(a.ask(), c.ask())
    np.save(tmp_path / "obj.npy", np.array([vals, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="unpickling"):
        HessCMA(dim=DIM, eigvals=str(tmp_path / "obj.npy"), eigvecs=vecs)
    np.savez(tmp_path / "bad.npz", values=vals)
    with pytest.raises(ValueError, match="eigvals"):
        HessCMA(dim=DIM, hessian=str(tmp_path / "bad.npz"))
    with pytest.raises(ValueError, match="eigendecomposition"):
        HessCMA(dim=DIM)
    with pytest.raises(ValueError, match="> 0"):
        HessCMA(dim=DIM, eigvals=np.linspace(-1, 1, DIM), eigvecs=vecs)
    with pytest.raises(ValueError, match="dim"):
        HessCMA(dim=DIM + 1, eigvals=vals, eigvecs=vecs)


# -- Genetic ------------------------------------------------------------------------------------
def test_genetic_reference_defaults():
    ga = Genetic(dim=4)
    assert (ga.popsize, ga.mutation_rate, ga.mutation_size, ga.kT_multiplier, ga.n_conserve,
            ga.parental_skew) == (40, 0.25, 0.75, 2.0, 10, 0.75)


def test_genetic_starts_as_the_lab_standard_normal_codes_whatever_the_step_size():
    ga = Genetic(dim=500, seed=0, sigma0=3.0)                     # sigma0 (a CMA step size) plays no part
    x = ga.ask()
    assert abs(x.mean()) < 0.02 and x.std() == pytest.approx(1.0, rel=0.02)
    prior = Genetic(dim=3, seed=0, popsize=5, prior=lambda n: np.arange(3 * n, dtype=float).reshape(n, 3))
    np.testing.assert_array_equal(prior.ask(), np.arange(15.0).reshape(5, 3))   # the space's own init codes
    with pytest.raises(ValueError, match="prior"):
        Genetic(dim=3, popsize=5, prior=lambda n: np.zeros((n, 4)))


@pytest.mark.parametrize("popsize", [2, 3, 5, 12, 19])
def test_sphere_and_genetic_run_with_any_popsize_from_two(popsize):
    for opt in (SphereCMA(dim=30, seed=0, popsize=popsize, n_gen=5), Genetic(dim=30, seed=0, popsize=popsize)):
        for x in run(opt, 5):
            assert x.shape == (popsize, 30) and np.all(np.isfinite(x))
    assert Genetic(dim=3, popsize=12).n_conserve == 3 and Genetic(dim=3, popsize=2).n_conserve == 1
    assert SphereCMA(dim=3, popsize=12).select_size == 11 and SphereCMA(dim=3, popsize=80).select_size == 20


def test_genetic_keeps_elites_and_children_inherit_parent_genes():
    ga = Genetic(dim=30, seed=0, popsize=12, n_conserve=4, mutation_rate=0.0)
    x = ga.ask()
    scores = objective(x)
    ga.tell(x, scores)
    nxt = ga.ask()
    order = np.argsort(-scores)
    np.testing.assert_array_equal(nxt[:4], x[order[:4]])                   # elites unchanged, best first
    for child in nxt[4:]:                                                   # crossover only: genes from parents
        assert all(np.any(child[j] == x[:, j]) for j in range(30))
    assert ga.kT == pytest.approx(2.0 * np.std(scores))


def test_genetic_mutation_rate_and_size():
    ga = Genetic(dim=2000, seed=0, popsize=4, n_conserve=0, mutation_rate=0.25, mutation_size=0.75,
                 parental_skew=1.0, init_std=1e-9)
    x = ga.ask()
    ga.tell(x, np.array([1.0, 0.0, 0.0, 0.0]) * 1e6)                        # one parent gets all the fitness
    delta = ga.ask() - x[0]
    changed = np.abs(delta) > 1e-6
    assert changed.mean() == pytest.approx(0.25, abs=0.02)
    assert delta[changed].std() == pytest.approx(0.75, rel=0.05)


def test_genetic_improves_and_never_loses_its_best():
    ga = Genetic(dim=DIM, x0=np.full(DIM, 3.0), seed=0, popsize=20, n_conserve=4, mutation_size=0.3)
    best = []
    for x in run(ga, 60):
        best.append(objective(x).max())
    assert all(b2 >= b1 - 1e-12 for b1, b2 in zip(best, best[1:]))       # elitism: monotone best
    assert best[-1] > 0.2 * best[0]


# -- Random search ------------------------------------------------------------------------------
def test_random_search_ignores_scores_and_samples_around_x0():
    x0 = np.linspace(-1, 1, DIM)
    a = optimizers.create("random:popsize=4000", dim=DIM, x0=x0, sigma0=0.3, seed=0)
    b = optimizers.create("random:popsize=4000", dim=DIM, x0=x0, sigma0=0.3, seed=0)
    xa, xb = a.ask(), b.ask()
    np.testing.assert_allclose(xa.mean(0), x0, atol=0.03)
    assert xa.std(0).mean() == pytest.approx(0.3, rel=0.05)
    a.tell(xa, objective(xa))
    b.tell(xb, -objective(xb))
    np.testing.assert_array_equal(a.ask(), b.ask())
    assert a.best[1] == objective(xa).max()


# -- pycma variants -----------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["full", "vd", "vkd"])
def test_pycma_samplers_improve_a_sphere(sampler):
    opt = optimizers.create({"name": "cma", "sampler": sampler}, dim=10, x0=np.full(10, 2.0), sigma0=0.5, seed=0)
    start = -40.0
    run(opt, 60, lambda x: -np.sum(x ** 2, axis=1))
    assert opt.best[1] > 0.01 * start


def test_pycma_sampler_options_are_checked():
    with pytest.raises(ValueError, match="sampler"):
        optimizers.create("cma:sampler=lowrank", dim=4)
    with pytest.raises(ValueError, match="exclude"):
        optimizers.create("cma:sampler=vd,diagonal=True", dim=4)
    vd = optimizers.create("cma:sampler=vd", dim=6, seed=0)
    run(vd, 2)
    full = optimizers.create("cma", dim=6, seed=0)
    with pytest.raises(OptimizerStateError, match="sampler"):
        full.load_state_dict(vd.state_dict())


# -- registry -----------------------------------------------------------------------------------
def test_all_optimizers_registered_and_accept_run_loop_context():
    for name in ("cholesky_cma", "sphere_cma", "genetic", "random"):
        opt = optimizers.create(name, dim=5, x0=np.ones(5), sigma0=0.2, seed=3, n_gen=10)
        assert opt.ask().shape[1] == 5
    with pytest.raises(ValueError, match="option"):
        optimizers.create("genetic:mutation=0.1", dim=5)


# -- side by side with the lab's published algorithms (tests/fixtures/lab_optimizers.py) ----------
LAB_DIM, LAB_BUDGET, LAB_SEEDS = 4096, 3000, range(6)


def _lab_objectives() -> dict:
    """Two 4096-d 'units' of a code: a saturating one (tanh of random projections) and a rectified one."""
    rng = np.random.default_rng(123)
    w1, a1 = rng.standard_normal((LAB_DIM, 64)), rng.standard_normal(64)
    w2, a2 = rng.standard_normal((LAB_DIM, 32)), np.abs(rng.standard_normal(32))

    def saturating(x):
        return np.tanh(x @ w1 / 64 / 8) @ a1

    def rectified(x):
        h = x @ w2 / 64
        return np.maximum(h, 0) @ a2 - 0.5 * np.maximum(-h, 0) @ a2
    return {"saturating": saturating, "rectified": rectified}


def _best_within_budget(ask, tell, f, budget=LAB_BUDGET) -> float:
    """Best score over all evaluated codes, stopping before a generation would exceed the budget."""
    best, used = -np.inf, 0
    while True:
        x = ask()
        if used + len(x) > budget:
            return best
        s = f(x)
        best, used = max(best, float(s.max())), used + len(x)
        tell(x, s)


def _ours(opt, f) -> float:
    return _best_within_budget(opt.ask, opt.tell, f)


def _lab(opt, f) -> float:
    return _best_within_budget(opt.ask, lambda x, s: opt.tell(s), f)


def _within_noise(a: list[float], b: list[float], z: float = 3.0) -> bool:
    se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    return abs(np.mean(a) - np.mean(b)) <= z * se


@pytest.mark.parametrize("n_seeds", [4, pytest.param(6, marks=pytest.mark.slow)])
@pytest.mark.parametrize("algorithm", ["sphere_cma", "genetic"])
def test_defaults_match_the_labs_published_algorithm_within_noise(algorithm, n_seeds):
    """Same objective, same budget (3000 evaluations), 4 seeds (6 in the slow run; with 4 the control
    is still rejected at z > 9, the defaults agree at z < 1.1): actmax's defaults as the run loop
    creates them for DeePSim fc6 (x0 an N(0,1) code, SphereCMA radius 300 and n_gen 75 from the
    run; GA started from the space's N(0,1) codes) vs the lab's algorithms; and, as a control that
    the comparison can fail, the old defaults (radius |x0|, GA start x0 + 3 N(0,1)) are not."""
    from tests.fixtures.lab_optimizers import LabGenetic, LabSphereCMA

    for name, f in _lab_objectives().items():
        ours, lab, old = [], [], []
        for seed in LAB_SEEDS[:n_seeds]:
            x0 = np.random.default_rng(1000 + seed).standard_normal(LAB_DIM)
            if algorithm == "sphere_cma":
                ctx = dict(dim=LAB_DIM, x0=x0, seed=seed, n_gen=75)
                ours.append(_ours(optimizers.create("sphere_cma", sphere_norm=300.0, **ctx), f))
                old.append(_ours(optimizers.create("sphere_cma", sphere_norm=float(np.linalg.norm(x0)), **ctx), f))
                lab.append(_lab(LabSphereCMA(LAB_DIM, seed=seed), f))
            else:
                prior = lambda n, s=seed: np.random.default_rng(s + 77).standard_normal((n, LAB_DIM))  # noqa: E731
                ours.append(_ours(optimizers.create("genetic", dim=LAB_DIM, x0=x0, sigma0=3.0, seed=seed, prior=prior), f))
                old.append(_ours(optimizers.create("genetic", dim=LAB_DIM, x0=x0, seed=seed, init_std=3.0), f))
                lab.append(_lab(LabGenetic(LAB_DIM, seed=seed), f))
        assert _within_noise(ours, lab), (name, np.mean(ours), np.mean(lab))
        assert not _within_noise(old, lab), (name, np.mean(old), np.mean(lab))


def test_run_loop_passes_generations_radius_and_the_spaces_own_start():
    from actmax.core.evolve import evolve
    from actmax.core.registry import generators

    res = evolve("gabor:size=16", "model:n=1,size=16", "sphere_cma:popsize=6", generations=4, seed=0)
    assert len(res.scores) == 24
    gen = generators.create("gabor:size=16")
    from actmax.core.evolve import _Evolution
    ev = _Evolution(["gabor:size=16", "deepsim:pretrained=False,size=16"], "model:n=1,size=16",
                    ["sphere_cma:popsize=6", "genetic:popsize=4"], unit=0, pole="high", generations=9, seed=2,
                    reference_images=None, device=None)
    sphere, ga = ev.opts
    assert sphere.n_gen == 9 and sphere.sphere_norm == pytest.approx(gen.sphere_norm)
    np.testing.assert_allclose(ga.ask(), ev.gens[1].init_codes(4, seed=2 + 1000).double().numpy())
    ev2 = _Evolution(["deepsim:pretrained=False,size=16"], "model:n=1,size=16", "sphere_cma", unit=0, pole="high",
                     generations=3, seed=0, reference_images=None, device=None)
    assert ev2.opts[0].sphere_norm == 300.0 and ev2.opts[0].n_gen == 3 and ev2.opts[0].popsize == 40


def test_one_optimizer_per_space_or_one_for_all_any_other_count_is_an_error(tmp_path):
    from actmax.core.evolve import evolve
    from tests.conftest import run_cli

    res = evolve(["gabor:size=16", "pixel:size=8"], "model:n=1,size=16", ["genetic:popsize=6", None],
                 generations=2, out_dir=tmp_path / "api", plots=False, image_every=0)
    per_gen = res.scores[res.scores["space"] != "reference"].groupby(["space", "generation"]).size()
    assert per_gen.loc["gabor"].tolist() == [6, 6]                      # genetic in gabor
    import json
    spec = json.loads((tmp_path / "api" / "manifest.json").read_text())["spec"]
    assert spec["optimizers"] == ["genetic:popsize=6", "cma:sigma0=0.5"]  # pixel's own preset (kept size rule)
    with pytest.raises(ValueError, match="3 optimizers for 2 generator spaces"):
        evolve(["gabor:size=16", "pixel:size=8"], "model:n=1,size=16", ["cma", "cma", "cma"], generations=1)
    r = run_cli("evolve", "-g", "gabor:size=16", "-g", "pixel:size=8", "-s", "model:n=1,size=16", "-o", "cma",
                "-o", "cma", "-o", "genetic", "--generations", "1", "--out", str(tmp_path / "cli"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: 3 optimizers for 2 generator spaces: give one optimizer for all spaces or exactly one per space, "
        "in the order of the spaces"]
    r = run_cli("evolve", "-g", "gabor:size=16", "-g", "pixel:size=8", "-s", "model:n=1,size=16",
                "-o", "cholesky_cma:popsize=6", "-o", "random:popsize=5", "--generations", "1",
                "--out", str(tmp_path / "cli2"), "--no-progress", "--json")
    assert r.returncode == 0, r.stderr
    spec = json.loads((tmp_path / "cli2" / "manifest.json").read_text())["spec"]
    assert spec["optimizers"] == ["cholesky_cma:popsize=6", "random:popsize=5"]

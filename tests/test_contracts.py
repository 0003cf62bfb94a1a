"""Registry-driven contract tests: every registered generator, optimizer and scorer (plugins included).

Like timm's tests over ``list_models()``, the parameters come from the registries at collection time,
so a plugin installed in the environment gets these tests without a test file of its own. Built-ins
that need options or weight files are built small (random weights, a twin saved from random state);
a part that cannot be created without external resources is skipped with the reason.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from actmax.core.contracts import ContractError, check_state_roundtrip
from actmax.core.errors import WeightsError
from actmax.core.registry import generators, optimizers, scorers

DIM = 6

#: small configurations of built-ins (everything else is created with its defaults)
GENERATOR_SPECS: dict[str, Any] = {
    "pixel": "pixel:size=16,channels=3", "fourier": "fourier:size=16", "gabor": "gabor:size=16,patches=2",
    "deepsim": "deepsim:pretrained=False,size=32",            # the fc6 architecture with random weights
    "biggan": "biggan:pretrained=False,config='tiny'",       # a tiny BigGAN-deep with random weights
}
SCORER_SPECS: dict[str, Any] = {
    "model": "model:kind=mixed,n=3,size=16",
    "model_behaving": "model_behaving:kind=mixed,n=3,size=16",
    "poisson": "poisson:base='model:kind=simple,n=2,size=16'",
    "cnn": "cnn:model=alexnet,layer=features.3,channels=[0,1],weights=random,seed=0,input_size=64",
    "callable": "callable:fn=tests.helpers.slow_neurons:crashing,units=3,differentiable=True",
}
NEEDS_RESOURCE = {"rig": "needs a rig (or responder) answering through an exchange folder; see tests/test_rig.py"}


def _hessian() -> dict[str, Any]:
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, DIM)))
    return {"eigvals": np.geomspace(0.1, 10, DIM), "eigvecs": q}


OPTIMIZER_OPTIONS: dict[str, dict[str, Any]] = {"hess_cma": _hessian(), "sphere_cma": {"popsize": 8, "select_size": 4, "n_gen": 10},
                                                "genetic": {"popsize": 8, "n_conserve": 2}, "random": {"popsize": 8}}


def _create_or_skip(registry, spec: Any, **context: Any) -> Any:
    try:
        return registry.create(spec, **context)
    except (WeightsError, ImportError, ModuleNotFoundError) as exc:
        pytest.skip(f"{registry.kind} {spec!r} needs an external resource: {type(exc).__name__}: {exc}")


# -- generators ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=generators.names())
def generator(request):
    name = request.param
    return name, _create_or_skip(generators, GENERATOR_SPECS.get(name, name)).eval()


def test_generator_renders_float_images_in_range(generator):
    name, gen = generator
    assert isinstance(gen.dim, int) and gen.dim > 0 and gen.channels in (1, 3) and gen.image_size > 0
    assert float(gen.default_sigma) > 0
    codes = gen.init_codes(3, seed=0)
    assert codes.shape == (3, gen.dim) and codes.dtype == torch.float32, name
    with torch.no_grad():
        images = gen(codes)
    assert images.shape == (3, gen.channels, gen.image_size, gen.image_size), name
    assert images.dtype == torch.float32 and torch.isfinite(images).all()
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0, name


def test_generator_is_differentiable(generator):
    name, gen = generator
    codes = gen.init_codes(2, seed=1).requires_grad_(True)
    gen(codes).square().sum().backward()
    assert codes.grad is not None and torch.isfinite(codes.grad).all() and codes.grad.abs().sum() > 0, name


def test_generator_init_codes_are_seeded(generator):
    name, gen = generator
    assert torch.equal(gen.init_codes(4, seed=3), gen.init_codes(4, seed=3)), name
    assert not torch.equal(gen.init_codes(4, seed=3), gen.init_codes(4, seed=4)), name


# -- optimizers ---------------------------------------------------------------------------------
GRADIENT_FREE = [n for n in optimizers.names() if not getattr(optimizers.entry(n).factory, "gradient_based", False)]
GRADIENT = [n for n in optimizers.names() if n not in GRADIENT_FREE]


def _optimizer(name: str, seed: int = 0):
    return _create_or_skip(optimizers, {"name": name, **OPTIMIZER_OPTIONS.get(name, {})}, dim=DIM,
                           x0=np.linspace(-1, 1, DIM), sigma0=0.5, seed=seed)


def _weights_only(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _f(x: np.ndarray) -> np.ndarray:
    return -np.sum((x - 0.3) ** 2, axis=1)


@pytest.mark.parametrize("name", GRADIENT_FREE)
def test_optimizer_ask_tell_and_weights_only_state_round_trip(name):
    opt = _optimizer(name)
    x = opt.ask()
    assert x.ndim == 2 and x.shape[1] == DIM and x.shape[0] >= 1 and np.isfinite(x).all(), name
    np.testing.assert_array_equal(x, opt.ask())              # asking again without a tell: same codes
    for _ in range(3):
        x = opt.ask()
        opt.tell(x, _f(x))
    check_state_roundtrip(opt)
    restored = _optimizer(name)
    restored.load_state_dict(_weights_only(opt.state_dict()))
    np.testing.assert_array_equal(opt.ask(), restored.ask())  # identical next population
    with pytest.raises(ValueError):
        opt.tell(opt.ask(), np.full(len(x), np.nan))           # NaN scores are refused


@pytest.mark.parametrize("name", GRADIENT_FREE)
def test_optimizer_is_seeded(name):
    np.testing.assert_array_equal(_optimizer(name, seed=4).ask(), _optimizer(name, seed=4).ask())
    assert not np.array_equal(_optimizer(name, seed=4).ask(), _optimizer(name, seed=5).ask())


@pytest.mark.parametrize("name", GRADIENT)
def test_gradient_optimizer_steps_and_state_round_trip(name):
    def gradient(codes: torch.Tensor) -> torch.Tensor:      # of the objective -(codes - 0.3)^2, per target
        return -2 * (codes.detach() - 0.3)

    opt = _create_or_skip(optimizers, {"name": name, "steps": 10}, seed=0)
    opt.start(torch.zeros(2, DIM))
    before = (opt.codes.detach() - 0.3).square().sum(1)
    opt.ascend(gradient(opt.codes))
    assert opt.codes.shape == (2, DIM) and bool(((opt.codes.detach() - 0.3).square().sum(1) < before).all())
    restored = _create_or_skip(optimizers, {"name": name, "steps": 10}, seed=0)
    restored.load_state_dict(_weights_only(opt.state_dict()))
    opt.ascend(gradient(opt.codes))
    restored.ascend(gradient(restored.codes))
    assert torch.equal(opt.codes, restored.codes)


# -- scorers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_twin(tmp_path_factory) -> Path:
    """A twin saved from random weights (no training), so the twin scorer can be built anywhere."""
    from actmax.scorers.twin import save_twin
    from tests.test_twin import _members

    path = tmp_path_factory.mktemp("twin")
    save_twin(path, _members(1, neurons=3))
    return path


@pytest.fixture(params=scorers.names())
def scorer(request, random_twin):
    name = request.param
    if name in NEEDS_RESOURCE:
        pytest.skip(f"scorer {name!r}: {NEEDS_RESOURCE[name]}")
    spec = f"twin:path={str(random_twin)!r}" if name == "twin" else SCORER_SPECS.get(name, name)
    return name, _create_or_skip(scorers, spec).eval()


def test_scorer_returns_batch_by_units(scorer):
    name, s = scorer
    assert isinstance(s.units, int) and s.units > 0
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = s(images)
    assert out.shape == (3, s.units), name
    assert out.is_floating_point() and torch.isfinite(out).all(), name
    if getattr(s, "differentiable", False):
        images.requires_grad_(True)
        weights = torch.arange(1.0, s.units + 1)              # distinct per unit: opposite units do not cancel
        (s(images) * weights).sum().backward()
        assert images.grad is not None and images.grad.abs().sum() > 0, name


def test_rig_is_created_and_keeps_the_contract(tmp_path):
    rig = scorers.create({"name": "rig", "exchange": str(tmp_path), "n_channels": 2})
    assert rig.units == 2 and callable(rig.forward)


# -- the contract check itself ------------------------------------------------------------------
def test_part_missing_contract_members_is_named():
    class NoDim(torch.nn.Module):
        channels, image_size = 1, 8

    generators.add("contract_test_nodim", NoDim)
    try:
        with pytest.raises(ContractError, match=r"generator 'contract_test_nodim' \(.*NoDim.*\) breaks the "
                                                r"generator contract.*missing dim, init_codes\(\)"):
            generators.create("contract_test_nodim")
    finally:
        generators._entries.pop("contract_test_nodim")

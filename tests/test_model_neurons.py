"""The in-silico lab's ground truth: known optima are optima, and synthesis recovers them."""
from __future__ import annotations

import pytest
import torch

from actmax.core.registry import scorers
from actmax.core.synthesize import synthesize
from actmax.generators.base import seeded_normal


@pytest.fixture(scope="module")
def neurons():
    return scorers.create("model:kind=mixed,n=6,size=32,seed=5")


def test_optimum_beats_every_probe(neurons):
    """No random, natural-like or high-contrast image exceeds a unit's known optimal response."""
    from actmax.core.apps.natural_images import sample_patches

    probes = torch.cat([torch.rand(200, 1, 32, 32), torch.from_numpy(sample_patches(200, 32, seed=0)),
                        (torch.rand(200, 1, 32, 32) > 0.5).float()])
    best = neurons.optimal_response("high")
    with torch.no_grad():
        assert (neurons(probes).max(0).values <= best + 1e-4).all()
        # and perturbing an optimum in any direction does not increase the response
        opt = neurons.optimal_stimulus("high")
        for _ in range(5):
            bumped = (opt + 0.02 * torch.randn_like(opt)).clamp(0, 1)
            resp = neurons(bumped)[torch.arange(6), torch.arange(6)]
            assert (resp <= best + 1e-4).all()


def test_dual_unit_has_elevated_baseline_and_known_poles(neurons):
    import math
    dual = [i for i, k in enumerate(neurons.kinds) if k == "dual"]
    base = neurons.baseline()[dual]
    gain = neurons.gain[dual]
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert torch.allclose(base, gain * sp(1.0), rtol=1e-4)
    assert torch.allclose(neurons.optimal_response("high", dual), gain * sp(3.0), rtol=1e-4)
    assert torch.allclose(neurons.optimal_response("low", dual), gain * sp(-3.0), rtol=1e-4)


def test_optimum_similarity_is_one_for_optimum_and_low_for_noise(neurons):
    units = list(range(6))
    opt = neurons.optimal_stimulus("high")
    assert (neurons.similarity_to_optimum(opt, units, "high") > 0.999).all()
    noise = torch.sigmoid(seeded_normal(6, 32 * 32, 0).view(6, 1, 32, 32))
    assert (neurons.similarity_to_optimum(noise, units, "high") < 0.5).all()
    # complex cells: any phase of the quadrature pair counts as the optimum
    cx = [i for i, k in enumerate(neurons.kinds) if k == "complex"][0]
    shifted = 0.5 + neurons.limit[cx] * neurons.filter2[cx].view(1, 1, 32, 32)
    assert neurons.similarity_to_optimum(shifted, [cx], "high")[0] > 0.999


@pytest.mark.parametrize("space, ascent", [("pixel:size=32", "ascent:steps=200,lr=0.05,jitter=0"),
                                           ("fourier:size=32", "ascent:steps=300,lr=0.05,jitter=0")])
def test_mei_recovers_known_optimum_for_every_family(neurons, space, ascent):
    """Quality bar: MEI correlates >= 0.9 with the known optimum and reaches >= 95% of its response."""
    res = synthesize(space, neurons, units=list(range(6)), poles=("high",), seeds=(0,), ascent=ascent)
    units = [t.unit for t in res.targets]
    frac = res.responses / neurons.optimal_response("high", units)
    corr = neurons.similarity_to_optimum(res.images, units, "high")
    assert (frac >= 0.95).all(), (space, frac)
    assert (corr >= 0.9).all(), (space, corr)


def test_dual_lei_recovers_suppressive_feature(neurons):
    dual = [i for i, k in enumerate(neurons.kinds) if k == "dual"]
    res = synthesize("pixel:size=32", neurons, units=dual, poles=("low",), seeds=(0, 1),
                     ascent="ascent:steps=200,lr=0.05,jitter=0")
    units = [t.unit for t in res.targets]
    assert (res.responses < neurons.baseline()[units]).all()
    assert (neurons.similarity_to_optimum(res.images, units, "low") >= 0.9).all()
    assert (res.responses <= 1.1 * neurons.optimal_response("low", units)).all()


def test_population_is_seeded():
    a, b, c = (scorers.create(f"model:n=4,size=24,seed={s}") for s in (1, 1, 2))
    assert torch.equal(a.filter1, b.filter1) and not torch.equal(a.filter1, c.filter1)

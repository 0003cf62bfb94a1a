"""A plain nn.Module or function is accepted wherever a scorer is (Python API): shape-checked, differentiable
when its output carries gradients, one clear error naming what is wrong otherwise."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import actmax
from actmax.scorers.module_scorer import ModuleScorer, ScorerWrapError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_plain_sequential_gives_meis_and_leis_through_synthesize():
    net = _net()
    res = actmax.synthesize("pixel:size=32", net, units=[0, 2], poles=("high", "low"), ascent="ascent:steps=40",
                            progress=False)
    assert res.images.shape == (4, 1, 32, 32)
    with torch.no_grad():
        grey = net(torch.full((1, 1, 32, 32), 0.5))[0]
        out = net(res.images)
    for i, t in enumerate(res.targets):   # each MEI drives its unit above grey, each LEI below
        if t.pole == "high":
            assert out[i, t.unit] > grey[t.unit] + 1e-3
        else:
            assert out[i, t.unit] < grey[t.unit] - 1e-3


def test_function_scorer_in_evolve_and_probe_of_the_input():
    calls = []

    def fn(images):   # grey 32 px only: the wrapper learns the input and converts RGB / other sizes
        calls.append(tuple(images.shape))
        assert images.shape[1:] == (1, 32, 32)
        return images.mean(dim=(1, 2, 3))

    res = actmax.evolve("gabor:size=64", fn, "cma:popsize=6", generations=2, progress=False)
    assert res.evaluations == 12 and calls[-1] == (6, 1, 32, 32)
    s = ModuleScorer(fn)
    assert (s.channels, s.size, s.units) == (1, 32, 1) and s.differentiable


def test_wrapped_scorers_say_what_is_wrong():
    with pytest.raises(ScorerWrapError, match=r"feature map.*AdaptiveAvgPool2d"):
        ModuleScorer(nn.Conv2d(3, 2, 3))
    with pytest.raises(ScorerWrapError, match="cannot be called on images"):
        ModuleScorer(lambda x, y: x)
    with pytest.raises(ScorerWrapError, match="cannot use a int as a scorer"):
        actmax.synthesize("pixel:size=16", 3, units=[0], progress=False)
    numpy_fn = lambda x: np.asarray(x.detach().mean(dim=(1, 2, 3)))[:, None]  # noqa: E731
    with pytest.raises(ValueError, match="not differentiable: its output carries no gradient"):
        actmax.synthesize("pixel:size=16", numpy_fn, units=[0], progress=False)

"""Property-based tests (hypothesis): specs, generator codes and scorer inputs."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmax.core.contracts import ContractError
from actmax.core.registry import RegistryError, format_spec, generators, parse_spec, scorers

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("true", "false", "yes", "no", "on", "off", "none", "null"))
values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.booleans(), identifiers, st.none())


@SETTINGS
@given(name=identifiers, options=st.dictionaries(identifiers, values, max_size=5))
def test_spec_strings_round_trip(name, options):
    assert parse_spec(format_spec(name, options)) == (name, options)


@SETTINGS
@given(text=st.text(alphabet="abc=,:[]'\" 01", max_size=20))
def test_spec_parser_fails_only_with_registry_errors(text):
    try:
        parse_spec(text)
    except RegistryError:
        pass


GENERATORS = {name: generators.create(spec) for name, spec in [
    ("pixel", "pixel:size=8"), ("pixel_clip", "pixel:size=8,channels=3,squash='clip'"),
    ("fourier", "fourier:size=8,channels=3"), ("fourier_phase", "fourier:size=8,mode='phase'"),
    ("gabor", "gabor:size=8,patches=2")]}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_any_finite_codes_give_valid_images(name):
    gen = GENERATORS[name]

    @SETTINGS
    @given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=gen.dim, max_size=gen.dim),
           st.integers(1, 3))
    def check(code, n):
        codes = torch.tensor(code, dtype=torch.float32).repeat(n, 1)
        img = gen(codes)
        assert img.shape == (n, gen.channels, gen.image_size, gen.image_size)
        assert torch.isfinite(img).all() and img.min() >= 0 and img.max() <= 1

    check()


NEURONS = scorers.create("model:n=3,size=12")


@SETTINGS
@given(b=st.integers(1, 4), c=st.sampled_from([1, 3]), h=st.integers(4, 20), w=st.integers(4, 20),
       seed=st.integers(0, 2**16))
def test_any_valid_image_batch_scores_finite(b, c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    resp = NEURONS(torch.rand(b, c, h, w, generator=g))
    assert resp.shape == (b, 3) and torch.isfinite(resp).all() and (resp >= 0).all()


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=5))
def test_wrong_image_shapes_always_give_contract_errors(shape):
    x = torch.rand(*shape)
    if len(shape) == 4 and shape[1] in (1, 3):
        assert NEURONS(x).shape == (shape[0], 3)
    else:
        with pytest.raises(ContractError):
            NEURONS(x)

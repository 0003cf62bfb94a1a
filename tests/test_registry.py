"""Registries: spec parsing, creation, clear errors, collisions, plugin opt-out."""
from __future__ import annotations

import pytest

from actmax.core.registry import Registry, RegistryError, generators, optimizers, parse_spec, scorers


def test_parse_spec_values():
    name, opts = parse_spec("fourier:size=32,channels=3,mode='phase',contrast=0.5,flag=true,x=none,l=[1,2]")
    assert name == "fourier"
    assert opts == {"size": 32, "channels": 3, "mode": "phase", "contrast": 0.5, "flag": True, "x": None, "l": [1, 2]}
    assert parse_spec("pixel") == ("pixel", {})
    assert parse_spec("cma:options={'CMA_diagonal': True, 'a': 1}")[1]["options"] == {"CMA_diagonal": True, "a": 1}
    assert parse_spec("gabor:mode=complex")[1] == {"mode": "complex"}  # bare words stay strings


@pytest.mark.parametrize("spec, fragment", [
    ("pixel:size", "expected key=value"),
    ("pixel:=3", "expected key=value"),
    ("pixel:size=3,size=4", "given twice"),
    ("pixel:l=[1,2", "unbalanced"),
    (":size=3", "empty part name"),
])
def test_parse_spec_errors(spec, fragment):
    with pytest.raises(RegistryError, match=fragment):
        parse_spec(spec)


def test_create_from_string_and_dict_are_equal():
    a = generators.create("pixel:size=16,channels=3")
    b = generators.create({"name": "pixel", "size": 16, "channels": 3})
    assert (a.dim, a.channels, a.image_size) == (b.dim, b.channels, b.image_size) == (3 * 16 * 16, 3, 16)


def test_unknown_name_lists_known_ones():
    with pytest.raises(RegistryError, match=r"unknown generator 'pixl'; known: .*pixel"):
        generators.create("pixl")


def test_bad_option_names_valid_ones():
    with pytest.raises(RegistryError, match=r"generator 'pixel' has no option 'sze'; valid options: .*size"):
        generators.create("pixel:sze=3")


def test_context_is_passed_only_when_accepted_and_spec_wins():
    opt = optimizers.create("cma:popsize=6,sigma0=0.3", dim=4, sigma0=2.0, seed=1, unrelated=5)
    assert opt.popsize == 6 and opt.sigma == pytest.approx(0.3) and opt.dim == 4


def test_collision_names_both_sources():
    reg = Registry("widget", ())
    reg._loaded = True

    def first():
        """First."""

    def second():
        """Second."""

    reg.add("w", first)
    with pytest.raises(RegistryError, match=r"collision: 'w' is registered by .*first and again by .*second"):
        reg.add("w", second)


def test_builtins_have_descriptions():
    for reg in (generators, optimizers, scorers):
        described = reg.describe()
        assert described, reg.kind
        assert all(d for d in described.values()), described
    assert {"pixel", "fourier", "gabor"} <= set(generators.names())
    assert {"cma", "ascent"} <= set(optimizers.names())
    assert {"model", "callable"} <= set(scorers.names())


def test_no_plugins_env_skips_entry_points(monkeypatch):
    calls = []
    reg = Registry("generator", ())
    monkeypatch.setattr(reg, "_load_plugins", lambda: calls.append(1))
    monkeypatch.setenv("ACTMAX_NO_PLUGINS", "1")
    reg.names()
    assert calls == []
    reg2 = Registry("generator", ())
    monkeypatch.setattr(reg2, "_load_plugins", lambda: calls.append(2))
    monkeypatch.delenv("ACTMAX_NO_PLUGINS")
    reg2.names()
    assert calls == [2]

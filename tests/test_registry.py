"""Registries: spec parsing, creation, clear errors, collisions, plugin opt-out."""
from __future__ import annotations

import numpy as np
import pytest

from actmax.core.errors import RecordError

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


# -- canonical spec text -------------------------------------------------------------------------
def test_spec_text_sorts_options_and_drops_defaults():
    from actmax.core.registry import spec_text
    assert spec_text("cma:popsize=40,diagonal=True") == spec_text("cma:diagonal=True,popsize=40") \
        == spec_text({"name": "cma", "diagonal": True, "popsize": 40}) == "cma:diagonal=True,popsize=40"
    assert spec_text("fourier:size=64,channels=1,mode='phase'") == "fourier:mode='phase'"   # size, channels default
    assert spec_text("cma:sampler='full',diagonal=False") == "cma"
    assert spec_text("cma:sigma0=1.0,seed=0") == "cma:seed=0,sigma0=1.0"   # run-loop keywords are kept
    assert spec_text("fourier:size=64", "generator") == "fourier"
    assert spec_text(generators.create("pixel")) is None                   # a live object has no text


def test_campaign_folders_do_not_depend_on_option_order():
    from actmax.core.apps.campaign import _canonical
    assert _canonical("cma:popsize=40,diagonal=True", "optimizer") == \
        _canonical({"name": "cma", "diagonal": True, "popsize": 40}, "optimizer")
    assert _canonical("fourier:size=64", "space") == "fourier"


# -- parts by import path -------------------------------------------------------------------------
def test_path_specs_create_parts_from_string_and_dict():
    from actmax.core.registry import spec_text
    a = generators.create("path=actmax.generators.pixel:PixelGenerator,size=8")
    b = generators.create({"path": "actmax.generators.pixel:PixelGenerator", "size": 8})
    assert a.dim == b.dim == 64
    assert spec_text({"path": "actmax.generators.pixel:PixelGenerator", "size": 8}) == \
        "path=actmax.generators.pixel:PixelGenerator,size=8"
    assert parse_spec("path=a.b:C,size=3") == ("a.b:C", {"size": 3})
    with pytest.raises(RegistryError, match="cannot import module 'no_such_mod'"):
        generators.create("path=no_such_mod:Gen")
    with pytest.raises(RegistryError, match="has no 'Nope'"):
        generators.create("path=actmax.generators.pixel:Nope")
    with pytest.raises(RegistryError, match="bad import path"):
        parse_spec("path=not a path")
    with pytest.raises(RegistryError, match="has no option 'sze'"):
        generators.create("path=actmax.generators.pixel:PixelGenerator,sze=8")


CRASH = {"at": None, "calls": 0}


from actmax.scorers.base import Scorer  # noqa: E402


class CrashingNeurons(Scorer):
    """Model neurons (for path= specs) that raise on call number CRASH['at']."""

    def __init__(self, n: int = 2) -> None:
        super().__init__()
        from actmax.scorers.model_neurons import ModelNeurons
        self.inner = ModelNeurons(kind="simple", n=n, size=16, seed=0)
        self.units = n

    def respond(self, images):
        CRASH["calls"] += 1
        if CRASH["at"] is not None and CRASH["calls"] == CRASH["at"]:
            raise KeyboardInterrupt("simulated kill")
        return self.inner(images)


def test_run_made_with_path_specs_resumes_to_the_same_record(tmp_path):
    import actmax
    from actmax.core.evolve import resume_evolution
    from actmax.core.records import RunRecord

    kw = dict(generator="path=actmax.generators.fourier:FourierGenerator,size=16",
              scorer="path=tests.test_registry:CrashingNeurons", optimizer="path=actmax.optimizers.cma:PyCMA,popsize=6",
              unit=1, generations=6, seed=2, plots=False, image_every=0)
    full = actmax.evolve(out_dir=tmp_path / "full", **kw)
    CRASH.update(at=CRASH["calls"] + 4, calls=CRASH["calls"])
    with pytest.raises(KeyboardInterrupt):
        actmax.evolve(out_dir=tmp_path / "killed", **kw)
    CRASH["at"] = None
    spec = RunRecord(tmp_path / "killed").manifest()["spec"]
    assert spec["scorer"] == "path=tests.test_registry:CrashingNeurons"
    assert spec["optimizers"] == ["path=actmax.optimizers.cma:PyCMA,popsize=6"]
    with pytest.raises(RecordError, match="--trust"):   # a record is data: its import path runs only when trusted
        resume_evolution(tmp_path / "killed")
    resumed = resume_evolution(tmp_path / "killed", trust=True)
    assert resumed.spaces == full.spaces == ["fouriergenerator"]
    assert resumed.best_score == full.best_score
    np.testing.assert_array_equal(resumed.scores["score"].to_numpy(), full.scores["score"].to_numpy())


# -- plugin name clashes --------------------------------------------------------------------------
class _Dist:
    def __init__(self, name):
        self.name, self.version = name, "1.2"


class _EP:
    def __init__(self, name, obj, dist):
        self.name, self.value, self.dist, self._obj = name, f"{dist}:{name}", _Dist(dist), obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_clashing_plugin_is_skipped_with_a_resolving_warning(monkeypatch, caplog):
    import actmax.core.registry as registry

    def builtin():
        """Built-in."""

    def plugin_a():
        """Plugin a."""

    def plugin_b():
        """Plugin b."""

    reg = Registry("widget", ())
    reg.add("w", builtin, origin="built-in")
    eps = [_EP("w", plugin_a, "clashpkg"), _EP("x", plugin_a, "goodpkg"), _EP("x", plugin_b, "otherpkg"),
           _EP("y", ImportError("boom"), "brokenpkg"), _EP("z", plugin_b, "okpkg")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    monkeypatch.delenv("ACTMAX_NO_PLUGINS", raising=False)
    with caplog.at_level("WARNING", logger="actmax"):
        assert reg.names() == ["w", "x", "z"]
    assert reg.entry("w").factory is builtin and reg.entry("x").factory is plugin_a
    assert reg.entry("x").distribution == "goodpkg 1.2" and reg.entry("x").origin == "plugin"
    text = caplog.text
    assert "skipping widget plugin 'w'" in text and "clashpkg 1.2" in text and "pip uninstall clashpkg" in text
    assert "already taken by the built-in" in text and "path=clashpkg:w" in text
    assert "skipping widget plugin 'x'" in text and "already taken by the plugin" in text
    assert set(reg.skipped) == {"w", "x"} and set(reg.plugin_errors) == {"y"}


# -- optimizer contract ---------------------------------------------------------------------------
def test_wrong_ask_shape_is_blamed_on_the_optimizer():
    from actmax.core.contracts import ContractError
    from actmax.optimizers.random_search import RandomSearch

    class Bad(RandomSearch):
        def _ask(self):
            return super()._ask()[:, :-1]

    with pytest.raises(ContractError, match=r"optimizer 'random' \(Bad\): ask\(\) returned codes of shape \(4, 2\), "
                                            r"expected \(4, 3\)"):
        Bad(dim=3, popsize=4).ask()


def test_state_round_trip_check_names_optimizer_and_key():
    from actmax.core.contracts import check_state_roundtrip
    from actmax.optimizers.base import OptimizerStateError
    from actmax.optimizers.random_search import RandomSearch

    class NumpyState(RandomSearch):
        def state_dict(self):
            return {**super().state_dict(), "extra": {"lr": np.float64(0.5)}}

    check_state_roundtrip(RandomSearch(dim=3))
    with pytest.raises(OptimizerStateError, match=r"optimizer 'random' \(NumpyState\): state_dict\(\) entry "
                                                 r"state\['extra'\]\['lr'\] holds a numpy.float64"):
        check_state_roundtrip(NumpyState(dim=3))


class NumpyStateCMA:
    """An optimizer (for a path= spec) whose state holds a numpy float: fails at the first checkpoint."""

    def __new__(cls, **kw):
        import inspect

        from actmax.optimizers.cma import PyCMA
        accepted = inspect.signature(PyCMA.__init__).parameters   # the run loop passes context for every optimizer
        kw = {k: v for k, v in kw.items() if k in accepted}

        class _Opt(PyCMA):
            def state_dict(self):
                return {**super().state_dict(), "sigma_now": np.float64(self.sigma)}
        return _Opt(**kw)


def test_evolve_checks_the_first_checkpoint(tmp_path):
    import actmax
    from actmax.optimizers.base import OptimizerStateError
    with pytest.raises(OptimizerStateError, match=r"state\['sigma_now'\] holds a numpy.float64"):
        actmax.evolve("pixel:size=8", "model:kind=simple,n=1,size=8", "path=tests.test_registry:NumpyStateCMA",
                      generations=3, out_dir=tmp_path / "run", plots=False, image_every=0)

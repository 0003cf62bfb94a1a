"""`actmax list KIND NAME` / `actmax.describe(kind, name)`: a part's options, defaults, meanings, preset, weights."""
from __future__ import annotations

import json

import pytest

import actmax
from actmax.core.cli import main


def test_list_generators_fourier_lists_size_with_its_default(capsys):
    main(["list", "generators", "fourier"])
    out = capsys.readouterr().out
    size = next(line for line in out.splitlines() if line.strip().startswith("size "))
    assert "int" in size and "default 64" in size and "image side" in size
    assert "optimizer preset" in out and "Initialize internal Module state" not in out


def test_describe_api_types_defaults_meanings_preset_and_weights():
    d = actmax.describe("generators", "fourier")
    opts = {o.name: o for o in d.options}
    assert set(opts) == {"size", "channels", "mode", "contrast"}
    assert (opts["size"].type, opts["size"].default) == ("int", 64)
    assert opts["mode"].default == "complex" and "phase" in opts["mode"].meaning
    assert d.preset and d.preset.startswith(("cma", "cholesky_cma"))
    assert d.weights == []
    deepsim = actmax.describe("generator", "deepsim")   # singular kind accepted; never downloads
    assert {w["name"] for w in deepsim.weights} >= {"deepsim-fc6", "deepsim-fc8"}
    assert deepsim.preset == "cholesky_cma:sigma0=3.0,popsize=40"   # the lab's fc6 preset
    cma = {o.name: o for o in actmax.describe("optimizers", "cma").options}
    assert cma["dim"].supplied_by_run and cma["dim"].default == "(required)" and not cma["diagonal"].supplied_by_run


def test_list_one_part_as_json_and_unknown_names(capsys):
    main(["list", "scorers", "model", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "scorer" and {o["name"]: o["default"] for o in d["options"]}["kind"] == "mixed"
    with pytest.raises(SystemExit) as exc:
        main(["list", "generators", "nope"])
    assert exc.value.code == 2 and "unknown generator 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown kind"):
        actmax.describe("widgets", "fourier")


def test_option_meanings_parse_a_docstring_block():
    from actmax.core.describe import option_meanings

    doc = "Summary.\n\nOptions:\n    size: side in px\n    mode: one of a, b,\n        or c\n\nMore text: not an option.\n"
    assert option_meanings(doc) == {"size": "side in px", "mode": "one of a, b, or c"}


def test_list_summaries_are_current(capsys):
    main(["list", "scorers"])
    model = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("model "))
    for family in ("simple", "complex", "dual", "end-stopped", "colour", "CNN"):
        assert family in model

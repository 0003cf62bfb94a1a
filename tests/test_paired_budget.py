"""Paired spaces at equal budget: images shown per space in the result, the manifest and trajectory.png's
x axis; warnings for different population sizes and for one optimizer overriding differing presets."""
from __future__ import annotations

import json
import logging

import actmax
from actmax.core.cli import main
from actmax.core.paired import popsize_warning, preset_override_warning


def test_evaluations_per_space_and_popsize_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="actmax"):
        res = actmax.evolve(["gabor:size=16", "pixel:size=8"], "model:n=1,size=16", ["cma:popsize=6", "cma:popsize=4"],
                            generations=3, out_dir=tmp_path / "r", image_every=0, progress=False)
    assert res.evaluations_per_space == {"gabor": 18, "pixel": 12} and res.evaluations == 30
    assert "different population sizes (gabor 6, pixel 4 images per generation" in caplog.text
    assert "lab's protocol" in caplog.text
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["evaluations_per_space"] == {"gabor": 18, "pixel": 12}
    traj = res.trajectory.sort_values(["space", "generation"])
    assert traj[traj["space"] == "pixel"]["images_shown"].tolist() == [4, 8, 12]   # trajectory.png's x axis
    assert (tmp_path / "r" / "trajectory.png").stat().st_size > 5000


def test_equal_popsizes_do_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="actmax"):
        actmax.evolve(["gabor:size=16", "pixel:size=8"], "model:n=1,size=16", "cma:popsize=4", generations=1,
                      progress=False)
    assert "population sizes" not in caplog.text


def test_one_optimizer_for_spaces_with_different_presets_names_what_it_overrides(tmp_path, caplog, capsys):
    from actmax.generators.biggan import LAB_PRESETS as BIGGAN
    from actmax.generators.deepsim import LAB_PRESETS as DEEPSIM

    text = preset_override_warning(["deepsim", "biggan"], [DEEPSIM["CholCMA"], BIGGAN["CholCMA"]],
                                   "cholesky_cma:sigma0=3")
    assert "'cholesky_cma:sigma0=3'" in text and "popsize=40" in text and "sigma0=0.2,popsize=28" in text
    assert preset_override_warning(["a", "b"], ["x", "x"], "cma") is None            # same presets
    assert preset_override_warning(["a", "b"], ["x", "y"], ["cma", "cma"]) is None   # one per space
    assert popsize_warning(["a", "b"], [40, 40]) is None
    with caplog.at_level(logging.WARNING, logger="actmax"):
        main(["evolve", "-g", "gabor:size=16", "-g", "deepsim:variant=fc8,pretrained=False,size=16", "-o",
              "random:popsize=4", "-s", "model:n=1,size=16",
              "--generations", "1", "--image-every", "0", "--out", str(tmp_path / "c"), "--no-progress"])
    assert "'random:popsize=4' for all 2 spaces overrides their own presets (gabor: cma" in caplog.text
    assert "deepsim: cholesky_cma:sigma0=3.0,popsize=40" in caplog.text
    assert "(gabor 4, deepsim 4)" in capsys.readouterr().out   # evaluations per space in the result line

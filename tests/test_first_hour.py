"""First-hour errors: a gradient-free optimizer as the synthesis recipe, a shadowing `actmax/` folder,
and a clean `dir(actmax)`."""
from __future__ import annotations

import pytest

import actmax
from actmax.core.cli import main


def test_synthesize_with_a_gradient_free_optimizer_says_it_needs_a_gradient_optimizer(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["synthesize", "-g", "pixel:size=8", "-s", "model:n=1,size=8", "--ascent", "cma",
              "--out", str(tmp_path / "s"), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "synthesis needs a gradient optimizer" in err and "dim" not in err
    with pytest.raises(ValueError, match="synthesis needs a gradient optimizer"):
        actmax.synthesize("pixel:size=8", "model:n=1,size=8", units=[0], ascent="genetic:popsize=4", progress=False)


def test_a_shadowing_actmax_folder_is_named(tmp_path, monkeypatch):
    (tmp_path / "actmax").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"folder named 'actmax' in the working directory .* rename the folder"):
        actmax._warn_if_shadowed()


def test_dir_actmax_shows_the_api_only():
    public = {n for n in dir(actmax) if not n.startswith("_")}
    assert "annotations" not in public
    api = {n for n in actmax.__all__ if not n.startswith("_")}
    assert api <= public and public - api <= {"core", "generators", "optimizers", "scorers"}  # subpackages

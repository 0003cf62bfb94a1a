"""Records keep the native stimuli (float, lossless, own resolution); analyses read those, not the PNG previews."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import actmax
from actmax.core.apps.analysis import compare_to_gabor
from actmax.core.apps.analysis_reports import read_image, read_stimuli, report_images
from actmax.core.errors import RecordError
from actmax.core.evolve import evolve
from actmax.core.records import PREVIEW_KEY, STIMULUS_KEY
from actmax.core.registry import generators
from actmax.core.synthesize import synthesize


def test_evolution_record_holds_native_stimuli_and_png_previews_point_to_them(tmp_path):
    res = evolve(["gabor:size=20", "fourier:size=20"], "model:kind=simple,n=2,size=20", "cma:popsize=6", unit=1,
                 generations=4, seed=0, out_dir=tmp_path, image_every=2, plots=False)
    run = actmax.load_run(tmp_path)
    st = run.stimuli
    assert st["best"].dtype == torch.float32 and st["best"].shape == (1, 20, 20)   # not 8-bit, not upscaled
    assert torch.equal(st["best"], res.best_image)
    best_space = res.best_space
    gen = generators.create(f"{best_space}:size=20")
    code = run.codes[f"{best_space}/best_per_generation"].float()
    with torch.no_grad():
        rendered = gen(code)
    picks = st[f"{best_space}/generations"].long()
    assert torch.allclose(st[f"{best_space}/best_per_generation"], rendered[picks], atol=1e-6)
    assert torch.equal(st[f"{best_space}/best"], st["best"])      # the overall best is its space's best
    with Image.open(tmp_path / "best.png") as png:
        assert png.size == (100, 100)                               # the preview is upscaled x5 ...
        assert png.text[STIMULUS_KEY] == "best" and "preview" in png.text[PREVIEW_KEY]
    assert torch.equal(read_image(tmp_path / "best.png"), st["best"])   # ... analyses read the native copy
    labels = [label for label, _ in read_stimuli(tmp_path)]
    assert labels == ["best", "gabor_best", "fourier_best"]
    assert torch.equal(read_image(tmp_path), st["best"])
    with pytest.raises(ValueError, match="names no native stimulus"):
        read_image(tmp_path / "images" / "gen000_gabor.png")


def test_synthesis_record_holds_every_native_image_and_gabor_metrics_use_it(tmp_path):
    res = synthesize("pixel:size=24", "model:kind=simple,n=2,size=24", units=[0, 1], poles=("high", "low"),
                     seeds=(0,), ascent="ascent:steps=30,lr=0.05,jitter=0", out_dir=tmp_path, progress=False)
    run = actmax.load_run(tmp_path)
    assert torch.equal(run.stimuli["images"], res.images) and run.stimuli["images"].shape == (4, 1, 24, 24)
    assert "stimuli=['images']" in repr(run)
    png = next((tmp_path / "images").glob("unit0001_mei*.png"))
    i = next(i for i, t in enumerate(res.targets) if t.unit == 1 and t.pole == "high")
    assert torch.equal(read_image(png), res.images[i])
    table = report_images([png], out=tmp_path / "analysis")
    native = compare_to_gabor(res.images[i])
    for key, value in native.items():
        if isinstance(value, float) and np.isfinite(value):
            assert table.iloc[0][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    with pytest.raises(ValueError, match="holds 4 stimuli"):
        read_image(tmp_path)                          # no single best image across units and poles
    from_record = report_images([tmp_path], out=tmp_path / "analysis2")
    assert len(from_record) == 4 and from_record["image"].str.contains("unit0001_mei_seed0").any()


def test_preview_whose_stimuli_file_is_gone_is_one_clear_error(tmp_path):
    evolve("gabor:size=16", "model:n=1,size=16", "cma:popsize=4", generations=2, out_dir=tmp_path, plots=False,
           image_every=0)
    (tmp_path / "stimuli.safetensors").unlink()
    with pytest.raises(RecordError, match="stimuli.safetensors"):
        read_image(tmp_path / "best.png")
    plain = tmp_path / "plain.png"
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(plain)
    assert read_image(plain).shape == (1, 8, 8)       # an ordinary image file is read as it is

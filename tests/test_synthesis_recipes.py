"""Synthesis recipes: the RMS contrast budget (known answers), the loop's transforms, the manifest."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from actmax.core.synthesize import budget_from_scorer, split_recipe, synthesize
from actmax.core.transforms import SynthesisTransforms, fourier_precondition, limit_input, rms_contrast
from actmax.scorers.base import Scorer


def _checker(size: int, mean: float, amp: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (mean + amp * torch.where((xx + yy) % 2 == 0, 1.0, -1.0)).view(1, 1, size, size)


def test_rms_contrast_ignores_the_mean_luminance_unlike_the_l2_norm():
    grey_mean, bright = _checker(16, 0.5, 0.1), _checker(16, 0.7, 0.1)
    assert rms_contrast(grey_mean).item() == pytest.approx(0.1, rel=1e-5)
    assert rms_contrast(bright).item() == pytest.approx(0.1, rel=1e-5)
    # the legacy norm counts the luminance offset: 16 * sqrt(0.1^2 + 0.2^2) vs 16 * 0.1
    assert (bright - 0.5).norm().item() == pytest.approx(16 * np.hypot(0.1, 0.2), rel=1e-5)


def test_contrast_limit_scales_about_the_mean_and_only_down():
    x = _checker(16, 0.7, 0.2)
    y = limit_input(x, contrast=0.05)
    assert rms_contrast(y).item() == pytest.approx(0.05, rel=1e-5)
    assert y.mean().item() == pytest.approx(0.7, abs=1e-6)          # mean luminance kept
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(limit_input(x, contrast=0.5), x)            # under budget: untouched


def test_contrast_is_measured_at_the_data_resolution():
    """A smooth 64 px image upsampled from 32 px has the same contrast at 32 px as the original."""
    t = torch.linspace(0, 2 * np.pi, 32)
    img32 = (0.5 + 0.3 * torch.sin(t)[None, :] * torch.cos(t)[:, None]).view(1, 1, 32, 32)
    img64 = torch.nn.functional.interpolate(img32, size=64, mode="bilinear", align_corners=False)
    assert rms_contrast(img64, 32).item() == pytest.approx(rms_contrast(img32).item(), rel=0.02)
    # a 64 px checkerboard is invisible at 32 px: no contrast there, so no budget is spent on it
    assert rms_contrast(_checker(64, 0.5, 0.2), 32).item() < 0.01 * 0.2


def test_fourier_preconditioning_keeps_rms_and_favours_low_frequencies():
    g = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    p = fourier_precondition(g, 1.0)
    spec_g, spec_p = torch.fft.rfft2(g).abs().pow(2), torch.fft.rfft2(p).abs().pow(2)
    low, high = (slice(1, 3), slice(1, 3)), (slice(12, 16), slice(12, 16))
    assert (spec_p[..., low[0], low[1]].sum() / spec_p[..., high[0], high[1]].sum()) > \
        10 * (spec_g[..., low[0], low[1]].sum() / spec_g[..., high[0], high[1]].sum())
    assert torch.equal(fourier_precondition(g, 0.0), g)


class _Energy(Scorer):
    """A contrast-energy unit: more contrast anywhere, more response (so the budget binds)."""

    units = 1

    def __init__(self, contrast: float | None = None, size: int | None = None, norm: float | None = None) -> None:
        super().__init__()
        self.input_contrast, self.input_contrast_size, self.input_norm = contrast, size, norm

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images, size=32, mode="bilinear", antialias=True, align_corners=False)
        return ((x - 0.5) ** 2).mean(dim=(1, 2, 3))[:, None] * 100


@pytest.mark.parametrize("space", ["fourier:size=32", "fourier:size=64", "pixel:size=64"])
def test_generator_size_does_not_change_the_applied_contrast(space, tmp_path):
    """The budget binds at the scorer's data resolution whatever the generator renders."""
    res = synthesize(space, _Energy(contrast=0.08, size=32), units=[0], poles=("high",),
                     ascent="ascent:steps=30,lr=0.2,jitter=0", out_dir=tmp_path)
    assert rms_contrast(res.images, 32).item() == pytest.approx(0.08, rel=1e-3)
    recipe = json.loads((tmp_path / "manifest.json").read_text())["recipe"]
    assert recipe["contrast_budget"] == {"kind": "rms_contrast", "value": 0.08, "measured_at_px": 32,
                                         "source": "scorer"}


def test_recipe_budget_wins_and_legacy_norm_is_the_fallback():
    assert budget_from_scorer(_Energy(contrast=0.1, size=16, norm=3.0)) == {"contrast": 0.1, "contrast_size": 16}
    assert budget_from_scorer(_Energy(norm=3.0)) == {"norm": 3.0}            # twins saved before input_contrast
    assert budget_from_scorer(_Energy()) == {}
    res = synthesize("pixel:size=32", _Energy(contrast=0.3, size=32), units=[0], poles=("high",),
                     ascent="ascent:steps=20,lr=0.2,jitter=0,contrast=0.05")
    assert rms_contrast(res.images).item() == pytest.approx(0.05, rel=1e-3)
    res = synthesize("pixel:size=32", _Energy(norm=2.0), units=[0], poles=("high",),
                     ascent="ascent:steps=20,lr=0.2,jitter=0")
    assert (res.images - 0.5).flatten(1).norm(dim=1).item() == pytest.approx(2.0, rel=1e-3)


def test_recipe_spec_splits_into_optimiser_and_loop_transforms():
    opt, tf = split_recipe("ascent:method=sgd,lr=1.0,jitter=2,blur_sigma=1.5,contrast=0.1")
    assert opt == {"name": "ascent", "method": "sgd", "lr": 1.0}
    assert tf == {"jitter": 2, "blur_sigma": 1.5, "contrast": 0.1}
    assert SynthesisTransforms.from_options(tf).budget()["kind"] == "rms_contrast"
    with pytest.raises(ValueError):
        SynthesisTransforms(jitter=-1)


def test_twin_config_without_input_contrast_still_loads():
    from actmax.scorers.twin.model import TwinConfig

    old = {"n_neurons": 2, "input_norm": 2.0, "data_size": 16}   # a twin.json from before the RMS budget
    cfg = TwinConfig.from_dict(old)
    assert cfg.input_contrast is None and cfg.input_norm == 2.0


def test_trained_twin_records_the_median_rms_contrast_of_its_training_images():
    from actmax.scorers.twin.model import TwinScorer
    from actmax.scorers.twin.train import TrainOptions, train_twin

    rng = np.random.default_rng(0)
    n = 120
    amps = rng.uniform(0.05, 0.25, size=n)
    means = rng.uniform(0.3, 0.7, size=n)                    # luminance must not enter the budget
    checker = np.where(np.add.outer(np.arange(16), np.arange(16)) % 2 == 0, 1.0, -1.0)
    signs = checker[None, None] * rng.choice([-1.0, 1.0], size=(n, 1, 1, 1))   # pixel std exactly 1
    images = (means[:, None, None, None] + amps[:, None, None, None] * signs).astype(np.float32)
    counts = rng.poisson(3.0, size=(2, n, 2)).astype(float)
    res = train_twin(images, counts, architecture={"hidden_channels": 4, "layers": 1, "input_kernel": 5,
                                                   "image_size": 16},
                     options=TrainOptions(max_epochs=1, members=1))
    cfg = res.ensemble.config
    train = np.asarray(res.split["train"])
    lower_median = np.sort(amps[train])[(len(train) - 1) // 2]             # torch.median's convention
    assert cfg.input_contrast == pytest.approx(lower_median, rel=1e-4)
    scorer = TwinScorer(res.ensemble)
    assert budget_from_scorer(scorer) == {"contrast": cfg.input_contrast, "contrast_size": 16}


# -- the default recipe -------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["pixel:size=32", "fourier:size=32", "pixel:size=64"])
def test_default_recipe_recovers_the_known_optimum_of_every_family(space):
    """Quality bar with the default recipe: r >= 0.9 with the optimum in the RF, >= 95 % of its response."""
    from actmax.core.registry import scorers

    neurons = scorers.create("model:kind=mixed,n=6,size=32,seed=0")
    units = list(range(6))
    res = synthesize(space, neurons, units=units, poles=("high",))
    frac = res.responses / neurons.optimal_response("high", units)
    corr = neurons.similarity_to_optimum(res.images, units, "high")
    assert (frac >= 0.95).all(), frac
    assert (corr >= 0.9).all(), corr


def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synthesis_recipes.py"
    spec = importlib.util.spec_from_file_location("bench_synthesis_recipes", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod               # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_measures_have_known_answers():
    bench = _bench()
    f = np.hypot(np.fft.fftfreq(32)[:, None], np.fft.fftfreq(32)[None, :]).clip(1 / 32)
    for exponent in (1.0, 2.5):
        imgs = []
        for seed in range(20):                                       # one 32 px image: +-0.3 scatter
            noise = np.random.default_rng(seed).standard_normal((32, 32))
            field = np.fft.ifft2(np.fft.fft2(noise) * f ** (-exponent / 2)).real   # power ~ f^-exponent
            imgs.append(0.5 + 0.1 * field / field.std())
        x = torch.tensor(np.array(imgs), dtype=torch.float32)[:, None]
        assert bench.spectral_slope(x).mean() == pytest.approx(-exponent, abs=0.2)
    blob = torch.zeros(1, 1, 32, 32)
    blob[..., 10:14, 10:14] = 0.3
    inside = torch.zeros(1, 32, 32, dtype=torch.bool)
    inside[:, 8:16, 8:16] = True
    assert bench.centre_fraction(blob + 0.5, inside)[0] == pytest.approx(1.0, abs=0.02)
    assert bench.centre_fraction(blob + 0.5, ~inside)[0] == pytest.approx(0.0, abs=0.02)


def test_default_recipe_keeps_surround_suppressed_meis_in_the_rf_at_full_activation():
    """The benchmark's must-show, small: default >= 50 % of contrast energy in the RF centre at
    >= 95 % of the best recipe's activation, on cells with a suppressive surround."""
    bench = _bench()
    df = bench.run(["endstop", "surround-standin"], set(), units=3, size=32, steps=150, patches=500, seed=1,
                   recipes=bench.RECIPES)
    for _, check in bench.default_check(df).iterrows():
        assert check["min_act_vs_best"] >= 0.95, check
        assert check["min_centre"] >= 0.5, check


def test_ascent_only_optimises_normalised_steps_and_decay():
    from actmax.core.registry import optimizers

    a = optimizers.create("ascent:method=sgd,normalize=True,lr=0.1,schedule=constant,steps=3")
    a.start(torch.zeros(2, 4))
    a.ascend(torch.tensor([[1.0, 1.0, 1.0, 1.0], [100.0, 100.0, 100.0, 100.0]]))
    assert torch.allclose(a.codes[0], a.codes[1])            # step size independent of gradient scale
    assert torch.allclose(a.codes, torch.full((2, 4), 0.1))  # moves up the gradient (maximises)
    d = optimizers.create("ascent:method=sgd,lr=0.1,decay=0.5,schedule=constant,steps=50")
    d.start(torch.ones(1, 3))
    for _ in range(50):
        d.ascend(torch.zeros(1, 3))
    assert d.codes.abs().max() < 0.1 and d.done                 # unused codes fade to 0 (grey)
    from actmax.core.errors import RegistryError
    with pytest.raises(RegistryError, match="no option 'jitter'"):
        optimizers.create("ascent:jitter=1")                    # transforms belong to the loop


@pytest.mark.parametrize("kind", ["endstop", "colour"])
def test_default_recipe_recovers_the_optimum_of_non_classical_families(kind):
    """Same bar on the end-stopped and colour families (pixel space; see README for ``cnn``)."""
    from actmax.core.registry import scorers

    neurons = scorers.create(f"model:kind={kind},n=3,size=32,seed=0")
    units = list(range(3))
    res = synthesize(f"pixel:size=32,channels={neurons.channels}", neurons, units=units, poles=("high",))
    assert (res.responses / neurons.optimal_response("high", units) >= 0.95).all()
    assert (neurons.similarity_to_optimum(res.images, units, "high") >= 0.9).all()


def test_scorer_without_budget_gets_the_natural_default_and_a_warning(tmp_path, capsys):
    """No silent budget: a scorer without input_contrast is limited to natural images' contrast."""
    from actmax.core.synthesize import NATURAL_CONTRAST_BY_SIZE
    scorer = _Energy()
    scorer.size = 32
    res = synthesize("pixel:size=32", scorer, units=[0], poles=("high",),
                     ascent="ascent:steps=20,lr=0.2,jitter=0", out_dir=tmp_path)
    assert "no contrast budget" in capsys.readouterr().err
    assert rms_contrast(res.images).item() == pytest.approx(NATURAL_CONTRAST_BY_SIZE[32], rel=1e-3)
    budget = json.loads((tmp_path / "manifest.json").read_text())["recipe"]["contrast_budget"]
    assert budget == {"kind": "rms_contrast", "value": NATURAL_CONTRAST_BY_SIZE[32], "measured_at_px": 32,
                      "source": "default"}
    row = res.table.iloc[0]                                   # every MEI/LEI reports its luminance and contrast
    assert row["mean_luminance"] == pytest.approx(res.images.mean().item(), abs=1e-5)
    assert row["rms_contrast"] == pytest.approx(NATURAL_CONTRAST_BY_SIZE[32], rel=1e-3)
    off = synthesize("pixel:size=32", _Energy(), units=[0], poles=("high",),
                     ascent="ascent:steps=20,lr=0.2,jitter=0,contrast=none")        # explicitly off
    assert rms_contrast(off.images).item() > 2 * NATURAL_CONTRAST_BY_SIZE[32]

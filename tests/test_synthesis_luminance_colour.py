"""Synthesis recipe: the mean-luminance constraint and grey synthesis of colour-blind units."""
from __future__ import annotations

import json

import pytest
import torch

from actmax.core.colour import colour_tuning
from actmax.core.errors import InputError
from actmax.core.synthesize import DEFAULT_LUMINANCE, synthesize
from actmax.core.transforms import SynthesisTransforms, grey_projection, limit_luminance, parse_luminance, rms_contrast
from actmax.scorers.base import Scorer
from actmax.scorers.model_neurons import ModelNeurons


def _ramp(mean: float, amp: float, size: int = 8) -> torch.Tensor:
    x = torch.linspace(-1, 1, size).view(1, 1, 1, size).expand(1, 3, size, size)
    return mean + amp * x


def test_luminance_pin_budget_and_free_known_answers():
    x = _ramp(0.7, 0.1)
    pinned = limit_luminance(x, centre=0.5, deviation=0.0)
    assert pinned.mean().item() == pytest.approx(0.5, abs=1e-6)
    assert torch.allclose(pinned - pinned.mean(), x - x.mean(), atol=1e-6)      # contrast kept: it fits
    budgeted = limit_luminance(x, centre=0.5, deviation=0.05)
    assert budgeted.mean().item() == pytest.approx(0.55, abs=1e-6)
    inside = _ramp(0.52, 0.1)
    assert torch.allclose(limit_luminance(inside, centre=0.5, deviation=0.05), inside)
    assert torch.equal(limit_luminance(x, deviation=None), x)                    # free


def test_luminance_shift_scales_contrast_down_only_to_stay_in_range():
    x = _ramp(0.8, 0.2)                        # spans 0.6..1.0; pinned at 0.2 it must shrink to +-0.2
    y = limit_luminance(x, centre=0.2, deviation=0.0)
    assert y.mean().item() == pytest.approx(0.2, abs=1e-6)
    assert y.min().item() == pytest.approx(0.0, abs=1e-6) and y.max().item() <= 1.0
    assert rms_contrast(y).item() == pytest.approx(rms_contrast(x).item(), rel=1e-5)   # 0.2 of room each side


def test_luminance_option_parsing():
    assert parse_luminance("free") == ("free", None) and parse_luminance(None) == ("free", None)
    assert parse_luminance("pin") == ("pin", None)
    assert parse_luminance("pin:0.4") == ("pin:0.4", 0.4)
    assert parse_luminance("budget:0.05") == ("budget:0.05", None)
    assert parse_luminance(0.1) == ("budget:0.1", None)
    for bad in ("bright", "pin:1.5", "budget:-1", "budget:x"):
        with pytest.raises(InputError):
            parse_luminance(bad)
    assert SynthesisTransforms(luminance="pin:0.4").luminance_budget() == {"kind": "pin", "centre": 0.4,
                                                                          "max_deviation": 0.0}


class _Brightness(Scorer):
    """Responds to the mean luminance: unconstrained, its MEI is a white screen."""

    units = 1

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(1, 2, 3))[:, None]


@pytest.mark.parametrize("option, low, high", [(None, 0.5, 0.5), ("budget:0.05", 0.55, 0.55), ("free", 0.8, 1.0)])
def test_mean_luminance_of_mei_follows_the_recipe_and_is_recorded(option, low, high, tmp_path):
    recipe = "ascent:steps=40,lr=0.5,jitter=0,contrast=0.1" + (f",luminance='{option}'" if option else "")
    res = synthesize("pixel:size=8", _Brightness(), units=[0], poles=("high",), ascent=recipe, out_dir=tmp_path)
    assert low - 1e-4 <= res.table["mean_luminance"].iloc[0] <= high + 1e-4
    lum = json.loads((tmp_path / "manifest.json").read_text())["recipe"]["luminance"]
    assert lum["source"] == ("recipe" if option else "default")
    assert lum["kind"] == {None: DEFAULT_LUMINANCE, "budget:0.05": "budget", "free": "free"}[option]


class _StatesMean(_Brightness):
    input_mean = 0.4


def test_pin_centres_on_the_scorers_stated_mean():
    res = synthesize("pixel:size=8", _StatesMean(), units=[0], poles=("high",), ascent="ascent:steps=5,jitter=0")
    assert res.table["mean_luminance"].iloc[0] == pytest.approx(0.4, abs=1e-4)


def test_grey_projection_keeps_the_luminance_a_grey_unit_sees():
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    y = grey_projection(x, torch.tensor([True, False]))
    assert torch.equal(y[1], x[1])
    assert torch.allclose(y[0, 0], y[0, 1]) and torch.allclose(y[0, 0], y[0, 2])
    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    assert torch.allclose((y[0] * w).sum(0), (x[0] * w).sum(0), atol=1e-6)


class _Conv(Scorer):
    """Two units of a conv layer: one sums R, G and B alike (colour-blind), one is red-on/green-off."""

    units, channels = 2, 3

    def __init__(self) -> None:
        super().__init__()
        k = torch.randn(1, 1, 5, 5, generator=torch.Generator().manual_seed(1))
        self.register_buffer("w", torch.cat([k.expand(1, 3, 5, 5), k * torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)]))

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu(torch.nn.functional.conv2d(images - 0.5, self.w)).mean(dim=(2, 3)) ** 2


def test_colour_tuning_from_gradients_on_model_neurons_and_a_conv_unit():
    m = ModelNeurons(kind="all", n=6, size=16, seed=0)
    tuning = colour_tuning(m, range(6), size=16)
    assert [tuning[u]["grey"] for u in range(6)] == [k != "colour" for k in m.kinds]
    assert tuning[4]["chromatic_share"] is not None and min(tuning[4]["colour_direction"]) < -0.1
    conv = colour_tuning(_Conv(), [0, 1], size=16)
    assert conv[0]["grey"] and not conv[1]["grey"]


def _chromatic(images: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the std across R, G, B (0 for a grey image)."""
    return images.std(dim=1).mean(dim=(1, 2))


def test_grey_cells_of_an_rgb_population_get_grey_meis_at_no_loss(tmp_path):
    m = ModelNeurons(kind="all", n=5, size=16, seed=0)        # simple, complex, dual, endstop, colour
    recipe = "ascent:method='sgd',normalize=True,lr=0.01,jitter=0,precondition=1.0,steps=120"
    auto = synthesize("pixel:size=16,channels=3", m, poles=("high",), ascent=recipe, out_dir=tmp_path)
    rgb = synthesize("pixel:size=16,channels=3", m, poles=("high",), ascent=recipe + ",colour=rgb")
    chroma_auto, chroma_rgb = _chromatic(auto.images), _chromatic(rgb.images)
    chroma_optimum = _chromatic(m.optimal_stimulus("high"))
    for u, kind in enumerate(m.kinds):
        if kind == "colour":
            assert auto.table["colour"][u] == "rgb" and chroma_auto[u] > 0.8 * chroma_optimum[u] > 0
        else:
            assert auto.table["colour"][u] == "grey" and chroma_auto[u] < 1e-6
            assert chroma_rgb[u] > 10 * chroma_auto[u] + 1e-4      # rgb synthesis of a grey cell is colourful
            assert auto.responses[u] >= 0.99 * rgb.responses[u]
    colour = json.loads((tmp_path / "manifest.json").read_text())["recipe"]["colour"]
    assert colour["mode"] == "auto" and colour["grey_units"] == [0, 1, 2, 3]

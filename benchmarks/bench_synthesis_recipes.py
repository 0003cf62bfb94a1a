"""Which synthesis recipe? Activation, compactness and naturalness of MEIs on every model-neuron family.

For every ground-truth family of ``actmax.scorers.model_neurons`` (each unit's receptive-field
centre and classical radius are known) and every recipe (pixel / Fourier space x Adam / SGD
with momentum x gradient blur / Fourier gradient preconditioning / jitter), synthesise the MEIs
of a few units under the same RMS contrast budget (the median RMS contrast of the natural
crops) and report, per recipe and family:

* ``act_vs_nat``   MEI response / best response over >= 500 natural crops (median over units);
* ``act_vs_best``  MEI response / the best recipe's response for that unit (min over units);
* ``centre``       fraction of the MEI's contrast energy (sum of (x - mean)^2) inside the
                   classical RF disc (median over units);
* ``slope``        power-law exponent of the MEI's radial power spectrum (Hann-windowed;
                   natural crops: see the printed reference, about -2 to -3);
* ``gt_corr``      correlation with the known optimum inside the RF, where the family has one.

Families are split into the ones the default was tuned on (``--tune``) and held-out ones;
the table says which. Prints a table and writes a CSV.

    OMP_NUM_THREADS=1 python benchmarks/bench_synthesis_recipes.py --quick
    OMP_NUM_THREADS=1 python benchmarks/bench_synthesis_recipes.py --csv recipes.csv
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from actmax.core.apps.natural_images import sample_patches
from actmax.core.synthesize import DEFAULT_RECIPE, synthesize
from actmax.core.transforms import rms_contrast
from actmax.scorers import model_neurons
from actmax.scorers.base import Scorer


@dataclass(frozen=True)
class Recipe:
    name: str
    space: str          # generator spec without size/channels: "pixel", "fourier", "pixel:init_std=0.02"
    ascent: str         # ascent spec without steps (steps are added per run)


PIXEL_ADAM = "ascent:method=adam,lr=0.05"
PIXEL_SGD = "ascent:method=sgd,normalize=True,lr=0.01"
FOURIER_ADAM = "ascent:method=adam,lr=0.2"
FOURIER_SGD = "ascent:method=sgd,normalize=True,lr=0.03"
DEFAULT_NAME = "pixel-sgd-precond"
RECIPES = [
    Recipe("pixel-adam", "pixel", f"{PIXEL_ADAM},jitter=0"),
    Recipe("pixel-adam-jitter", "pixel", f"{PIXEL_ADAM},jitter=2"),
    Recipe("pixel-adam-blur", "pixel", f"{PIXEL_ADAM},jitter=0,blur_sigma=1.5"),
    Recipe("pixel-adam-precond", "pixel", f"{PIXEL_ADAM},jitter=0,precondition=1.0"),
    Recipe("pixel-sgd", "pixel", f"{PIXEL_SGD},jitter=0"),
    Recipe("pixel-sgd-jitter", "pixel", f"{PIXEL_SGD},jitter=2"),
    Recipe("pixel-sgd-blur", "pixel", f"{PIXEL_SGD},jitter=0,blur_sigma=1.5"),
    Recipe("pixel-sgd-precond", "pixel", DEFAULT_RECIPE),   # the default (see README)
    Recipe("pixel-sgd-blur-jitter", "pixel", f"{PIXEL_SGD},jitter=1,blur_sigma=1.5"),
    Recipe("fourier-adam", "fourier", f"{FOURIER_ADAM},jitter=0"),
    Recipe("fourier-adam-jitter", "fourier", f"{FOURIER_ADAM},jitter=2"),
    Recipe("fourier-sgd", "fourier", f"{FOURIER_SGD},jitter=0"),
    Recipe("fourier-sgd-jitter", "fourier", f"{FOURIER_SGD},jitter=2"),
]


# -- a stand-in family with a suppressive surround -------------------------------------------------
class SurroundSuppressed(Scorer):
    """Benchmark stand-in: complex-cell energy of a centre Gabor pair, divided by the energy of
    six iso-oriented Gabor pairs around it at 2.5 sigma (surround suppression, length tuning).

    rate = gain * sqrt(E_centre) / (1 + w * sqrt(E_surround)); a full-field grating at the
    preferred orientation drives it far less than a patch confined to the centre. No global gain
    control, so only the contrast budget limits the response.
    """

    def __init__(self, n: int = 3, size: int = 32, seed: int = 0, weight: float = 3.0, gain: float = 10.0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed + 1000)
        self.units, self.size = int(n), int(size)
        centre, surround, masks = [], [], []
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        for _ in range(n):
            sigma = size * rng.uniform(0.07, 0.10)
            x, y = size * rng.uniform(0.4, 0.6, size=2)
            theta, cps = rng.uniform(0, math.pi), rng.uniform(0.45, 0.65)
            pair = lambda cx, cy: [model_neurons.gabor_filter(size, cx, cy, sigma, theta, cps, ph)  # noqa: E731
                                   for ph in (0.0, math.pi / 2)]
            centre.append(pair(x, y))
            ring = []
            for k in range(6):
                a = theta + k * math.pi / 3
                ring += pair(x + 2.5 * sigma * math.cos(a), y + 2.5 * sigma * math.sin(a))
            surround.append(ring)
            masks.append(((xx - x) ** 2 + (yy - y) ** 2) <= (2.0 * sigma) ** 2)
        self.register_buffer("centre", torch.tensor(np.array(centre), dtype=torch.float32).flatten(2))
        self.register_buffer("surround", torch.tensor(np.array(surround), dtype=torch.float32).flatten(2))
        self.register_buffer("rf_mask", torch.tensor(np.array(masks)))
        self.weight, self.gain = float(weight), float(gain)

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        c = images.mean(1).flatten(1) - 0.5                                  # (B, P)
        e_c = torch.einsum("bp,ukp->buk", c, self.centre).pow(2).sum(-1)
        e_s = torch.einsum("bp,ukp->buk", c, self.surround).pow(2).sum(-1)
        return self.gain * torch.sqrt(e_c + 1e-9) / (1 + self.weight * torch.sqrt(e_s + 1e-9))


class RandomConvUnits(Scorer):
    """Benchmark stand-in: units of a random 3-layer conv net (5x5 kernels, ELU, He init, no bias),
    read at the image centre; the classical RF is the net's receptive field (radius 6 px)."""

    def __init__(self, n: int = 3, size: int = 32, seed: int = 0, width: int = 8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed + 2000)
        self.units, self.size, self.width = int(n), int(size), int(width)
        shapes = [(width, 1, 5, 5), (width, width, 5, 5), (max(n, width), width, 5, 5)]
        for i, shape in enumerate(shapes):
            fan_in = shape[1] * shape[2] * shape[3]
            self.register_buffer(f"w{i}", torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in))
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        disc = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) <= 6.0 ** 2
        self.register_buffer("rf_mask", torch.tensor(np.stack([disc] * n)))

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        x = images.mean(1, keepdim=True) - 0.5
        x = torch.nn.functional.elu(torch.nn.functional.conv2d(x, self.w0, padding=2))
        x = torch.nn.functional.elu(torch.nn.functional.conv2d(x, self.w1, padding=2))
        x = torch.nn.functional.conv2d(x, self.w2, padding=2)
        return x[:, : self.units, self.size // 2, self.size // 2] * 10


class ColourOpponent(Scorer):
    """Benchmark stand-in: an energy unit on a red-green opponent channel (R - G) with a Gabor
    quadrature pair, plus a weaker luminance Gabor pair that suppresses it (RGB input)."""

    channels = 3

    def __init__(self, n: int = 3, size: int = 32, seed: int = 0, gain: float = 10.0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed + 3000)
        self.units, self.size, self.gain = int(n), int(size), float(gain)
        pairs, masks = [], []
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        for _ in range(n):
            sigma = size * rng.uniform(0.07, 0.10)
            x, y = size * rng.uniform(0.4, 0.6, size=2)
            theta, cps = rng.uniform(0, math.pi), rng.uniform(0.45, 0.65)
            pairs.append([model_neurons.gabor_filter(size, x, y, sigma, theta, cps, ph) for ph in (0.0, math.pi / 2)])
            masks.append(((xx - x) ** 2 + (yy - y) ** 2) <= (2.0 * sigma) ** 2)
        self.register_buffer("pairs", torch.tensor(np.array(pairs), dtype=torch.float32).flatten(2))
        self.register_buffer("rf_mask", torch.tensor(np.array(masks)))

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        x = images.expand(-1, 3, -1, -1) - 0.5
        opponent, lum = (x[:, 0] - x[:, 1]).flatten(1), x.mean(1).flatten(1)
        e_rg = torch.einsum("bp,ukp->buk", opponent, self.pairs).pow(2).sum(-1)
        e_lum = torch.einsum("bp,ukp->buk", lum, self.pairs).pow(2).sum(-1)
        return self.gain * torch.sqrt(e_rg + 1e-9) / (1 + 2.0 * torch.sqrt(e_lum + 1e-9))


def make_family(family: str, units: int, size: int, seed: int) -> Scorer:
    if family == "surround-standin":
        return SurroundSuppressed(n=units, size=size, seed=seed)
    if family == "colour-standin":
        return ColourOpponent(n=units, size=size, seed=seed)
    if family == "randomcnn-standin":
        return RandomConvUnits(n=units, size=size, seed=seed)
    return model_neurons.ModelNeurons(kind=family, n=units, size=size, seed=seed)


# -- measures -------------------------------------------------------------------------------------
def centre_fraction(images: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Fraction of each image's contrast energy (x - mean)^2, summed over channels, inside its mask."""
    x = images.double()
    e = ((x - x.mean(dim=(2, 3), keepdim=True)) ** 2).sum(1)            # (N, H, W)
    inside = (e * masks.double()).flatten(1).sum(1)
    return (inside / e.flatten(1).sum(1).clamp_min(1e-12)).numpy()


def spectral_slope(images: torch.Tensor) -> np.ndarray:
    """Exponent of a power law fitted to the radial power spectrum (2 .. N/2 - 1 cycles/image),
    Hann-windowed, power summed over channels."""
    x = images.double()                                                  # (N, C, H, W)
    n = x.shape[-1]
    hann = torch.hann_window(n, periodic=False, dtype=torch.float64)
    win = hann[:, None] * hann[None, :]
    x = (x - x.mean(dim=(2, 3), keepdim=True)) * win
    # power summed over channels (colour contrast counts, e.g. a red-green MEI of no luminance)
    power = torch.fft.fftshift(torch.fft.fft2(x).abs().pow(2).sum(1), dim=(-2, -1)).numpy()
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    radius = np.rint(np.hypot(yy, xx)).astype(int)
    freqs = np.arange(2, n // 2)
    slopes = []
    for p in power:
        radial = np.array([p[radius == f].mean() for f in freqs])
        slopes.append(np.polyfit(np.log(freqs), np.log(radial + 1e-20), 1)[0])
    return np.array(slopes)


def rf_masks(scorer: Scorer) -> torch.Tensor:
    """(units, H, W) boolean disc of each unit's classical receptive field: the family's own
    ``rf_mask``, else a disc of radius 2 sigma around ``receptive_fields`` (x, y, sigma, ...)."""
    if hasattr(scorer, "rf_mask"):
        return scorer.rf_mask.bool()
    size = int(scorer.size)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    discs = [((xx - rf[0]) ** 2 + (yy - rf[1]) ** 2) <= (2.0 * rf[2]) ** 2 for rf in scorer.receptive_fields]
    return torch.tensor(np.stack(discs))


# -- the benchmark --------------------------------------------------------------------------------
def run(families: list[str], tune: set[str], *, units: int, size: int, steps: int, patches: int,
        seed: int, recipes: list[Recipe], budget: float | None = None) -> pd.DataFrame:
    rows = []
    for family in families:
        scorer = make_family(family, units, size, seed)
        channels = int(scorer.channels or 1)
        crops = torch.from_numpy(sample_patches(patches, size, channels=channels, seed=seed))
        with torch.no_grad():
            nat = torch.cat([scorer(crops[i:i + 250]) for i in range(0, patches, 250)])
        family_budget = float(rms_contrast(crops).median()) if budget is None else float(budget)
        best_nat = nat.max(0).values
        masks = rf_masks(scorer)
        ids = list(range(units))
        for recipe in recipes:
            t0 = time.perf_counter()
            gen = f"{recipe.space}{',' if ':' in recipe.space else ':'}size={size},channels={channels}"
            res = synthesize(gen, scorer, units=ids, poles=("high",), seeds=(seed,),
                             ascent=f"{recipe.ascent},steps={steps}", transforms={"contrast": family_budget})
            images = res.images.clamp(0, 1)
            sim = (scorer.similarity_to_optimum(images, ids, "high").numpy()
                   if hasattr(scorer, "similarity_to_optimum") else np.full(units, np.nan))
            centre, slope = centre_fraction(images, masks), spectral_slope(images)
            for i in ids:
                rows.append({"family": family, "tuned": family in tune, "recipe": recipe.name, "unit": i,
                             "response": float(res.responses[i]), "best_natural": float(best_nat[i]),
                             "centre": float(centre[i]), "slope": float(slope[i]), "gt_corr": float(sim[i]),
                             "budget": family_budget, "seconds": time.perf_counter() - t0})
        nat_slope = float(np.median(spectral_slope(crops[:200])))
        nat_centre = float(np.median(centre_fraction(crops[:200], masks[:1].expand(200, -1, -1))))
        rows.append({"family": family, "tuned": family in tune, "recipe": "natural-crops", "unit": -1,
                     "response": float(best_nat.mean()), "best_natural": float(best_nat.mean()),
                     "centre": nat_centre, "slope": nat_slope, "gt_corr": np.nan, "budget": family_budget,
                     "seconds": 0.0})
    df = pd.DataFrame(rows)
    syn = df[df["recipe"] != "natural-crops"].copy()
    best = syn.groupby(["family", "unit"])["response"].transform("max")
    df.loc[syn.index, "vs_best"] = syn["response"] / best
    df.loc[syn.index, "vs_natural"] = syn["response"] / syn["best_natural"]
    return df


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    syn = df[df["recipe"] != "natural-crops"]
    table = syn.groupby(["family", "recipe"], sort=False).agg(
        tuned=("tuned", "first"), act_vs_nat=("vs_natural", "median"), act_vs_best=("vs_best", "min"),
        centre=("centre", "median"), slope=("slope", "median"), gt_corr=("gt_corr", "min")).reset_index()
    nat = df[df["recipe"] == "natural-crops"][["family", "centre", "slope"]].rename(
        columns={"centre": "nat_centre", "slope": "nat_slope"})
    return table.merge(nat, on="family")


def default_check(df: pd.DataFrame) -> pd.DataFrame:
    """Per family, the default recipe's worst unit: activation vs the best recipe, centre fraction."""
    d = df[df["recipe"] == DEFAULT_NAME]
    out = d.groupby("family", sort=False).agg(tuned=("tuned", "first"), min_act_vs_best=("vs_best", "min"),
                                              min_centre=("centre", "min"), median_slope=("slope", "median"),
                                              min_gt_corr=("gt_corr", "min")).reset_index()
    print(f"\ndefault recipe {DEFAULT_NAME} ({DEFAULT_RECIPE}), worst unit per family:")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 units per family, 150 steps, 500 crops")
    ap.add_argument("--families", default=",".join(model_neurons.KINDS + ("surround-standin", "colour-standin", "randomcnn-standin")),
                    help="comma-separated model-neuron kinds (default: all)")
    ap.add_argument("--tune", default="simple,complex", help="families the default was tuned on")
    ap.add_argument("--recipes", default=None, help="comma-separated recipe names (default: all)")
    ap.add_argument("--units", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--patches", type=int, default=None)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--budget", type=float, default=None,
                    help="RMS contrast budget (default: median RMS contrast of the natural crops)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", default="bench_synthesis_recipes.csv")
    args = ap.parse_args()
    units = args.units or (3 if args.quick else 6)
    steps = args.steps or (150 if args.quick else 256)
    patches = args.patches or (500 if args.quick else 2000)
    if patches < 500:
        raise SystemExit("error: --patches must be >= 500 (the natural reference is the best of >= 500 crops)")
    recipes = RECIPES if not args.recipes else [r for r in RECIPES if r.name in args.recipes.split(",")]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    t0 = time.perf_counter()
    df = run(families, set(args.tune.split(",")), units=units, size=args.size, steps=steps, patches=patches,
             seed=args.seed, recipes=recipes, budget=args.budget)
    df.to_csv(args.csv, index=False)
    table = summarise(df)
    pd.set_option("display.width", 200)
    print(f"units/family={units} steps={steps} natural crops={patches} size={args.size} seed={args.seed} "
          f"threads={torch.get_num_threads()} budget={args.budget or 'median natural RMS contrast'}; "
          f"default recipe: {DEFAULT_RECIPE}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    overall = table.groupby("recipe", sort=False).agg(act_vs_best=("act_vs_best", "min"),
                                                      act_vs_nat=("act_vs_nat", "median"),
                                                      centre=("centre", "median"), slope=("slope", "median"))
    print("\nover all families (act_vs_best: worst family; others: median of family medians)")
    print(overall.to_string(float_format=lambda v: f"{v:.3f}"))
    print(default_check(df).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {args.csv} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

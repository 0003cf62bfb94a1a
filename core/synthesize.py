"""Gradient synthesis of MEIs and LEIs for many units x poles x seeds in one batch.

Every target (unit, pole, seed) is one element of a single batch of codes: one forward and
one backward pass through generator and scorer serve all of them, each element ascending
its own unit's response (``high``) or its negation (``low``). The record holds the per-step
response of every target (``scores.parquet``), the final codes, each image and a montage.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from actmax.core.contracts import Target
from actmax.core.specs import parse_spec, split_mapping
from actmax.core.transforms import TRANSFORM_KEYS


@dataclass
class SynthesisResult:
    """Synthesised images and how far each drove its unit."""

    images: torch.Tensor          # (T, C, H, W): what the scorer saw (after the input limit)
    codes: torch.Tensor           # (T, dim)
    targets: list[Target]
    responses: torch.Tensor       # (T,) final response of each target's own unit
    table: pd.DataFrame           # one row per target: unit, pole, seed, response
    out_dir: Path | None = None

    def image(self, unit: int, pole: str = "high", seed: int | None = None) -> torch.Tensor:
        for i, t in enumerate(self.targets):
            if t.unit == unit and t.pole == pole and (seed is None or t.seed == seed):
                return self.images[i]
        raise KeyError(f"no target unit={unit} pole={pole} seed={seed}")

    def __repr__(self) -> str:
        units = sorted({t.unit for t in self.targets})
        shown = units if len(units) <= 8 else f"{units[:8]}... ({len(units)} units)"
        spans = []
        for pole, name in (("high", "MEI"), ("low", "LEI")):
            vals = [float(r) for t, r in zip(self.targets, self.responses) if t.pole == pole]
            if vals:
                spans.append(f"{name} {min(vals):.4g}..{max(vals):.4g}")
        where = str(self.out_dir) if self.out_dir is not None else "not saved (no out_dir)"
        return (f"SynthesisResult({len(self.targets)} targets, units={shown}, "
                f"responses: {', '.join(spans) or '-'} (range over units), record={where})")


#: The default synthesis recipe (optimiser + loop transforms), chosen with
#: benchmarks/bench_synthesis_recipes.py (README, "Synthesis recipe"): SGD with momentum on the
#: per-target RMS-normalised gradient, the gradient's spectrum shaped by 1/f (Fourier
#: preconditioning), no jitter; best in pixel space. A bare ``"ascent"`` spec keeps the older
#: Adam defaults (lr 0.05, jitter 1).
DEFAULT_RECIPE = "ascent:method='sgd',normalize=True,lr=0.01,jitter=0,precondition=1.0"


#: The default mean-luminance constraint of synthesis (recipe option ``luminance``; see
#: :func:`actmax.core.transforms.parse_luminance`), chosen with benchmarks/bench_luminance.py
#: (README, "Mean luminance").
DEFAULT_LUMINANCE = "pin"


def split_recipe(ascent: Any) -> tuple[Any, dict[str, Any]]:
    """Split an ascent spec into the optimiser's spec and the loop's transform options.

    ``"ascent:method=sgd,lr=1,jitter=2,blur_sigma=1"`` -> ``("ascent:method='sgd',lr=1",
    {"jitter": 2, "blur_sigma": 1})``: a recipe is written as one spec, but the optimiser only
    optimises and the loop applies the transforms. Live optimiser objects pass through.
    """
    if isinstance(ascent, str):
        name, options = parse_spec(ascent)
    elif isinstance(ascent, Mapping):
        name, options = split_mapping(ascent)
    else:
        return ascent, {}
    moved = {k: options.pop(k) for k in list(options) if k in TRANSFORM_KEYS}
    key = "path" if ":" in name else "name"      # a class named by import path stays one
    return {key: name, **options}, moved


def budget_from_scorer(scorer: Any) -> dict[str, Any]:
    """The contrast budget a scorer asks for: RMS ``input_contrast`` (at ``input_contrast_size``
    px), else the legacy L2 ``input_norm`` (twins saved before the RMS budget), else none."""
    if scorer.input_contrast:
        return {"contrast": float(scorer.input_contrast), "contrast_size": scorer.input_contrast_size}
    norm = scorer.input_norm
    return {"norm": float(norm)} if norm else {}


#: Median RMS contrast of natural photograph patches (scikit-image's photographs, random square
#: crops of 1/4-1/2 of the photo side, 600 patches) at the resolution they are measured at:
#: the default contrast budget of a scorer that has none (see :func:`default_budget`).
#: Measured with ``benchmarks/measure_natural_contrast.py``: 32 px 0.107, 64 px 0.124, 112 px 0.135.
NATURAL_CONTRAST_BY_SIZE: dict[int, float] = {32: 0.107, 64: 0.124, 112: 0.135}


def default_budget(scorer: Any) -> dict[str, Any]:
    """The documented default budget for a scorer without one: the median RMS contrast of
    natural image patches at the scorer's resolution (``scorer.size``, else 64 px), measured at
    that resolution. Without a budget MEIs saturate and their look depends on the run length."""
    size = int(getattr(scorer, "size", None) or 64)
    nearest = min(NATURAL_CONTRAST_BY_SIZE, key=lambda s: abs(s - size))
    return {"contrast": NATURAL_CONTRAST_BY_SIZE[nearest], "contrast_size": size}


def best_per_target(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit, pole): the seed that drove the unit furthest (max for MEIs, min for LEIs)."""
    rows = []
    for (_, pole), d in table.groupby(["unit", "pole"], sort=False):
        rows.append(d.loc[d["response"].idxmax() if pole == "high" else d["response"].idxmin()])
    return pd.DataFrame(rows).reset_index(drop=True)


def synthesize(generator: Any, scorer: Any, *, units: Sequence[int] | None = None,
               poles: Sequence[str] = ("high", "low"), seeds: Sequence[int] = (0,), ascent: Any = DEFAULT_RECIPE,
               out_dir: str | Path | None = None, progress: bool | None = None, checkpoint_every: int = 25,
               device: str | None = None, amp: bool = False, overwrite: bool = False,
               transforms: Mapping[str, Any] | None = None) -> SynthesisResult:
    """MEIs (``high``) and LEIs (``low``) of ``units`` x ``seeds`` by batched gradient ascent.

    ``ascent`` is the recipe: optimiser options plus the loop's transforms (``jitter``,
    ``noise``, ``blur_sigma``, ``precondition``, ``contrast``/``contrast_size``, ``norm``; see
    :mod:`actmax.core.transforms`), which ``transforms`` may also give or override. Without a
    budget in the recipe the scorer's own (``input_contrast``) applies, and a scorer without one
    gets :func:`default_budget` (natural images' median RMS contrast; a warning on stderr, and
    ``source: default`` in the manifest; ``contrast=none`` in the recipe turns every budget off).
    The applied recipe and budget are written to the manifest (``recipe``); the result table
    reports each image's ``mean_luminance`` and ``rms_contrast``. ``device`` places generator, scorer and
    codes (e.g. ``"cuda"``); ``amp`` runs the forward pass in bfloat16 autocast (codes,
    optimizer state and reported responses stay float32). ``progress=None`` shows a bar only on a
    terminal or in a notebook. The record's ``best.png`` holds one tile per unit and pole (the best
    seed of each), listed in ``best.csv``.
    """
    from actmax.core.runs.driver import execute
    from actmax.core.runs.synthesize import SynthesizeRun

    return execute(lambda: SynthesizeRun(generator, scorer, units=units, poles=poles, seeds=seeds, ascent=ascent,
                                         device=device, amp=amp, transforms=transforms,
                                         checkpoint_every=checkpoint_every),
                   out_dir=out_dir, overwrite=overwrite, progress=progress)


def resume_synthesis(out_dir: str | Path, *, progress: bool | None = None, trust: bool = False,
                     repair: bool = False) -> SynthesisResult:
    """Continue a killed synthesis from its last checkpoint (same rules as :func:`actmax.core.evolve.resume_evolution`).

    A finished synthesis is re-verified and its result returned; ``repair`` rebuilds every
    derived file from the final checkpoint; ``trust`` allows specs that import non-plugin modules.
    """
    from actmax.core.runs.driver import resume
    return resume(out_dir, kind="synthesize", progress=progress, trust=trust, repair=repair)

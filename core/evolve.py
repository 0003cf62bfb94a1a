"""Closed-loop evolution: ask/tell over one or several generator spaces against one scorer.

Each generation every thread (one generator space + its own optimizer) asks for codes and
renders them in parallel threads; all images of the generation, plus optional natural
reference images, are scored as one block (what a rig shows the neuron in one go); each
thread is told the responses of its own images (negated for the LEI pole). Several
``generators`` give the paper's paired evolution (e.g. DeePSim and BigGAN side by side).

Every generation the record (scores table, best codes) and an atomic checkpoint are
written, so ``resume`` continues a killed run and ends exactly where an uninterrupted run
would have ended. The run itself is the ``evolve`` run kind (:mod:`actmax.core.runs.evolve`),
driven by the one driver (:mod:`actmax.core.runs.driver`); this module is its public face.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core import paired
from actmax.core.contracts import check_count, check_device  # noqa: F401  (re-exported: their old home)
from actmax.core.errors import InputError
from actmax.core.registry import parse_spec

PartSpec = "str | Mapping[str, Any] | Any"


@dataclass
class EvolutionResult:
    """What an evolution produced (also on disk in ``out_dir`` when one was given)."""

    scores: pd.DataFrame
    best_score: float
    best_image: torch.Tensor
    best_code: np.ndarray
    best_space: str
    trajectory: pd.DataFrame
    out_dir: Path | None = None
    spaces: list[str] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return int((self.scores["space"] != "reference").sum())

    @property
    def evaluations_per_space(self) -> dict[str, int]:
        """Images shown per space: paired spaces are compared per image, not per generation."""
        return paired.evaluations_per_space(self.scores)

    def __repr__(self) -> str:
        units = sorted(set(self.scores["unit"].tolist())) if "unit" in self.scores else []
        where = str(self.out_dir) if self.out_dir is not None else "not saved (no out_dir)"
        return (f"EvolutionResult(unit={units[0] if len(units) == 1 else units}, spaces={self.spaces}, "
                f"evaluations={self.evaluations}, best_score={self.best_score:.4g} in {self.best_space!r}, "
                f"record={where})")


def space_names(gen_specs: Sequence[Any], gens: Sequence[torch.nn.Module]) -> list[str]:
    names = []
    for spec, gen in zip(gen_specs, gens):
        base = parse_spec(spec)[0] if isinstance(spec, str) else (
            spec.get("name", spec.get("path")) if isinstance(spec, Mapping) else type(gen).__name__.lower())
        base = base.rpartition(":")[2].lower() if ":" in base else base   # path=pkg.mod:Class -> class
        name, k = base, 2
        while name in names:
            name, k = f"{base}{k}", k + 1
        names.append(name)
    return names


#: Above this code dimension the fallback optimizer switches from pycma's full CMA-ES (whose
#: O(dim^2) update and occasional O(dim^3) eigendecomposition dominate a generation there) to
#: the lab's CholeskyCMAES with rank-1 factor updates (the Ponce-lab choice for DeePSim fc6).
LARGE_SPACE_DIM = 1000


def default_optimizer(dim: int) -> str:
    """``cma`` (pycma, full covariance) for small spaces, ``cholesky_cma`` for large ones."""
    return "cholesky_cma" if dim > LARGE_SPACE_DIM else "cma"


def space_optimizer(gen: Any) -> Any:
    """The optimizer a space gets when the run names none: the preset the generator declares
    (``optimizer_preset``; the lab's for DeePSim and BigGAN), else :func:`default_optimizer`."""
    return gen.optimizer_preset or default_optimizer(gen.dim)


def per_space(optimizer: Any, n_spaces: int) -> list[Any]:
    """One optimizer spec per space: one spec (or a one-item list) for all, or exactly one each."""
    specs = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    if len(specs) == 1:
        return specs * n_spaces
    if len(specs) != n_spaces:
        raise InputError(f"{len(specs)} optimizers for {n_spaces} generator spaces: give one optimizer for "
                         "all spaces or exactly one per space, in the order of the spaces")
    return specs


def optimizer_context(gen: Any, *, seed: int, init_seed: int, generations: int) -> dict[str, Any]:
    """What the run loop tells an optimizer about its space (used only where the optimizer takes it):
    start code, step size, SphereCMA's radius, the space's own initial sampler, the number of
    generations (for schedules)."""
    with torch.no_grad():
        x0 = gen.init_codes(1, seed=init_seed)[0].double().numpy()
    context: dict[str, Any] = {"dim": gen.dim, "x0": x0, "sigma0": gen.default_sigma, "seed": seed,
                               "n_gen": int(generations),
                               "prior": lambda n: gen.init_codes(int(n), seed=init_seed)}
    radius = gen.sphere_norm
    if radius:
        context["sphere_norm"] = float(radius)
    return context


def evolve(generator: Any | Sequence[Any], scorer: Any, optimizer: Any = None, *, unit: int = 0,
           pole: str = "high", generations: int = 75, seed: int = 0, out_dir: str | Path | None = None,
           reference_images: torch.Tensor | None = None, progress: bool | None = None, image_every: int = 10,
           device: str | None = None, plots: bool = True, overwrite: bool = False) -> EvolutionResult:
    """Evolve images for one ``unit`` of ``scorer`` (``pole='high'`` MEI-like, ``'low'`` LEI-like).

    ``generator`` is one space or a list of spaces (paired evolution, one optimizer per space);
    ``optimizer`` is one spec used for every space or a list with exactly one per space (``None``,
    or a ``None`` entry: the space's own preset, e.g. the lab's CholeskyCMAES sigma0 3 / popsize 40
    in DeePSim and sigma0 0.2 / popsize 28 in BigGAN; see :func:`space_optimizer`). Specs are
    ``"name:k=v"`` strings, dicts or live objects; only runs built from specs can be resumed.
    ``image_every=0`` and ``plots=False`` leave out the per-generation montages and the
    trajectory plot (matplotlib dominates the cost of tiny runs, e.g. in campaigns).
    ``progress=None`` shows a bar only on a terminal or in a notebook (see :mod:`actmax.core.progress`).
    """
    from actmax.core.runs.driver import execute
    from actmax.core.runs.evolve import EvolveRun

    gen_specs = list(generator) if isinstance(generator, (list, tuple)) else [generator]
    if isinstance(image_every, bool) or not isinstance(image_every, int) or image_every < 0:
        raise InputError(f"image_every must be a whole number >= 0 (0: no montages), got {image_every!r}")
    if not gen_specs:
        raise InputError("evolve needs at least one generator")
    def build() -> EvolveRun:
        run = EvolveRun(gen_specs, scorer, optimizer, unit=unit, pole=pole, generations=generations, seed=seed,
                        reference_images=reference_images, device=device, image_every=image_every, plots=plots)
        if len(run.gens) > 1:   # paired spaces: say where budgets or settings differ (core/paired.py)
            paired.warn(paired.preset_override_warning(run.spaces, [space_optimizer(g) for g in run.gens], optimizer))
            paired.warn(paired.popsize_warning(run.spaces, [o.popsize for o in run.opts]))
        return run

    return execute(build, out_dir=out_dir, overwrite=overwrite, progress=progress)


def resume_evolution(out_dir: str | Path, *, progress: bool | None = None, trust: bool = False,
                     repair: bool = False) -> EvolutionResult:
    """Continue a killed evolution from its checkpoint; ends where an uninterrupted run ends.

    The record is verified first (checksums, run id, spec, generation and row counts): any
    mismatch is a RecordError, unless ``repair`` rebuilds what the checkpoint can rebuild
    (tables, codes, best image, final montages) and drops (and logs) what it cannot. A
    finished run is not run again: it is re-verified and its result returned. ``trust``
    allows a spec that imports a module which is not an installed plugin.
    """
    from actmax.core.runs.driver import resume
    return resume(out_dir, kind="evolve", progress=progress, trust=trust, repair=repair)

"""Paired spaces compared at equal budget: images shown per space, and warnings where budgets differ.

A paired evolution gives each space its own optimizer. The lab's protocol gives DeePSim 40 and
BigGAN 28 images per generation, so "generation 50" means 2000 images in one space and 1400 in
the other: comparisons are made per image shown. This module counts images per space (for the
result line, the manifest and ``trajectory.png``), warns when paired spaces get different
population sizes, and warns when one optimizer spec given for several spaces overrides presets
that differ between them.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import pandas as pd

log = logging.getLogger("actmax")

__all__ = ["evaluations_per_space", "popsize_warning", "preset_override_warning", "with_images_shown"]


def evaluations_per_space(scores: pd.DataFrame) -> dict[str, int]:
    """Images shown per space (reference images excluded), in the order the spaces first appear."""
    shown = scores[scores["space"] != "reference"]
    return {str(k): int(v) for k, v in shown.groupby("space", sort=False).size().items()}


def with_images_shown(traj: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``traj`` plus ``images_shown``: per space, the cumulative number of images up to each generation."""
    shown = scores[scores["space"] != "reference"].groupby(["space", "generation"]).size()
    cum = shown.groupby(level=0).cumsum().rename("images_shown").reset_index()
    return traj.drop(columns=["images_shown"], errors="ignore").merge(cum, on=["space", "generation"], how="left")


def popsize_warning(spaces: Sequence[str], popsizes: Sequence[Any]) -> str | None:
    """A warning when paired spaces show different numbers of images per generation (None otherwise)."""
    known = {s: int(p) for s, p in zip(spaces, popsizes) if p is not None}
    if len(set(known.values())) <= 1:
        return None
    sizes = ", ".join(f"{s} {p}" for s, p in known.items())
    return (f"paired spaces get different population sizes ({sizes} images per generation; unequal sizes are "
            "the lab's protocol, e.g. DeePSim 40 and BigGAN 28): compare the spaces per image shown "
            "(trajectory.png and the evaluations per space do), not per generation")


def preset_override_warning(spaces: Sequence[str], presets: Sequence[str], optimizer: Any) -> str | None:
    """A warning when one optimizer given for all spaces replaces presets that differ between them."""
    if optimizer is None or isinstance(optimizer, (list, tuple)) and len(optimizer) != 1:
        return None
    if len(set(map(str, presets))) <= 1:
        return None
    spec = optimizer[0] if isinstance(optimizer, (list, tuple)) else optimizer
    overridden = ", ".join(f"{s}: {p}" for s, p in zip(spaces, presets))
    return (f"one optimizer {spec!r} for all {len(spaces)} spaces overrides their own presets ({overridden}); "
            "give -o once per -g, in order, to keep per-space settings")


def warn(message: str | None) -> None:
    if message:
        log.warning("warning: %s", message)

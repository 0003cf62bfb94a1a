"""The state (eye position, behaviour) at which a twin with a shifter / modulator is evaluated.

Scorer options (issue 24), spelled so the spec language parses them (options are split on
``,``; ``;`` inside a value is kept as text):

* ``eye=centre`` the eye position (0, 0) in the recording's units (the monitor centre when eye
  positions are given relative to it); ``eye=training_mean`` the mean training eye position
  (shift 0: the shifter is anchored there); ``eye=X;Y`` an explicit position (also
  ``eye=(X,Y)`` or ``eye=[X,Y]``);
* ``behavior=none`` the modulator is skipped (gain 1); ``behavior=training_mean`` the mean training
  behaviour (also gain 1, the modulator is anchored there; both spellings follow the field's
  convention); ``behavior=P;DP;RUN`` explicit pupil dilation, its derivative and treadmill speed.

A chosen value must have the right number of entries and lie inside the range seen in training
(per variable, [min, max] of the training trials): extrapolating the shifter or modulator would
make MEIs at a state the twin never saw. Anything else is a ``ValueError`` (one ``error:`` line).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

EYE_WORDS = {"centre": "centre", "center": "centre", "training_mean": "training_mean", "mean": "training_mean"}
BEHAVIOR_WORDS = {"none": "none", "training_mean": "training_mean", "mean": "training_mean"}
VARIABLES = {"eye": ("x", "y"), "behavior": ("pupil", "dpupil", "run")}


def _numbers(value: Any, option: str, dims: int) -> list[float]:
    names = ";".join(v.upper() for v in VARIABLES[option])
    if isinstance(value, str):
        parts = [p.strip() for p in value.strip().strip("()[]").replace(";", " ").replace(",", " ").split()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        nums = [float(p) for p in parts]
    except (TypeError, ValueError):
        nums = []
    if len(nums) != dims or not all(math.isfinite(v) for v in nums):
        words = "centre|training_mean" if option == "eye" else "none|training_mean"
        raise ValueError(f"twin: {option}={value!r} is not a valid state; use {option}={words}|{names} "
                         f"({dims} finite numbers separated by ';')")
    return nums


def resolve_state(option: str, value: Any, *, has_part: bool, mean: Sequence[float] | None,
                  low: Sequence[float] | None, high: Sequence[float] | None) -> dict[str, Any] | None:
    """One state option -> ``{"choice": ..., "value": [...] or None}`` (None: part skipped).

    ``has_part``: the twin has the matching shifter / modulator. A twin without it accepts only
    the words that mean "nothing" (eye ``centre``/``training_mean``, behaviour ``none``/``training_mean``).
    """
    dims = len(VARIABLES[option])
    words = EYE_WORDS if option == "eye" else BEHAVIOR_WORDS
    word = words.get(value.strip().lower()) if isinstance(value, str) else None
    if value is None:
        word = "none" if option == "behavior" else None
        if option == "eye":
            raise ValueError("twin: eye=None is not a state; use eye=centre, training_mean or X;Y")
    if not has_part:
        if word is None:
            part = "shifter" if option == "eye" else "modulator"
            flag = "--eye" if option == "eye" else "--behavior"
            raise ValueError(f"twin: {option}={value!r} needs a twin with a {part} (train it with {flag} FILE); "
                             f"this twin has none")
        return None
    if word == "none":
        return {"choice": "none", "value": None}
    if word == "training_mean":
        return {"choice": "training_mean", "value": [float(v) for v in mean]}
    nums = [0.0] * dims if word == "centre" else _numbers(value, option, dims)
    out = [i for i, v in enumerate(nums) if not (low[i] <= v <= high[i])]
    if out:
        names = VARIABLES[option]
        bad = ", ".join(f"{names[i]}={nums[i]:g} not in [{low[i]:.4g}, {high[i]:.4g}]" for i in out)
        raise ValueError(f"twin: {option}={value!r} is out of the training range ({bad}); the "
                         f"{'shifter' if option == 'eye' else 'modulator'} would extrapolate")
    return {"choice": word or "value", "value": nums}

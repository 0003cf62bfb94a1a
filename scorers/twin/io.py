"""Recordings with per-trial state: eye-position / behaviour arrays and the sensorium-style folder.

**State arrays** (issue 24): ``.npy`` arrays shaped like the responses array without its unit
axis plus the variables: eye position ``(trials, images, 2)`` (x, y in pixels of the stimulus,
relative to the monitor centre) and behaviour ``(trials, images, 3)`` (pupil dilation, its
derivative, treadmill speed). They are NaN exactly where there was no trial (where every neuron's
response is NaN); any other missing value, and any value where there was no trial, is an error.
For responses given as ``(images, neurons)`` the arrays are ``(images, 2)`` / ``(images, 3)``.

**Sensorium-style folder** (the layout of the Sensorium 2022 data sets, as their published
description gives it): ``data/images/X.npy`` (the image of trial X, (1, H, W) or (H, W), grey levels
0-255 or [0, 1]), ``data/responses/X.npy`` (one value per neuron), ``data/behavior/X.npy`` (pupil
dilation, its derivative, running speed), ``data/pupil_center/X.npy`` (horizontal, vertical eye
position); ``meta/trials/frame_image_id.npy`` (which image each trial showed: repeats share it),
``meta/trials/tiers.npy`` (``train``, ``validation``, ``test``; other tiers such as ``final_test``
whose responses are withheld are left out), optionally ``meta/trials/trial_idx.npy`` (presentation
order) and ``meta/neurons/unit_ids.npy``. Trial files are named by their integer index X.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_DIMS = {"eye": 2, "behavior": 3}
TIERS = {"train": "train", "validation": "val", "test": "test"}


def load_state_file(path: str | Path, name: str) -> np.ndarray:
    """A ``.npy`` state array (float64); the shape is checked against the responses by :func:`check_state`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{name} file {p} does not exist")
    if p.suffix != ".npy":
        raise ValueError(f"{name}: expected a .npy array ({'(trials, images, 2)' if name == 'eye' else '(trials, images, 3)'}), "
                         f"got {p.name}")
    arr = np.load(p, allow_pickle=False)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name}: {p} holds {arr.dtype} values, expected numbers")
    return arr.astype(np.float64)


def check_state(array: Any, responses: np.ndarray, name: str) -> np.ndarray:
    """``array`` as (trials, images, dims) float64, checked against responses (trials, images, neurons).

    NaN must mark exactly the missing trials (all neurons NaN); a ValueError names the first
    offending trial otherwise.
    """
    dims = STATE_DIMS[name]
    a = np.asarray(array, dtype=np.float64)
    r = np.asarray(responses)
    if a.ndim == 2 and r.shape[0] == 1:
        a = a[None]
    want = (*r.shape[:2], dims)
    if a.shape != want:
        raise ValueError(f"{name}: shape {a.shape} does not fit the responses {r.shape}: expected {want} "
                         f"(the responses' trials x images, then {dims} values)")
    if np.isinf(a).any():
        raise ValueError(f"{name} contains inf")
    has_trial = np.isfinite(r).any(axis=2)
    nan = np.isnan(a)
    partial = nan.any(2) & ~nan.all(2)
    if partial.any():
        t, i = np.argwhere(partial)[0]
        raise ValueError(f"{name}: trial {t} of image {i} has some values missing ({a[t, i].tolist()}); "
                         "a trial has all its values or none")
    missing = nan.all(2) & has_trial
    if missing.any():
        t, i = np.argwhere(missing)[0]
        raise ValueError(f"{name}: {int(missing.sum())} recorded trial(s) have no {name} values (first: trial {t} "
                         f"of image {i}); NaN may only mark trials that were not recorded")
    extra = ~nan.all(2) & ~has_trial
    if extra.any():
        t, i = np.argwhere(extra)[0]
        raise ValueError(f"{name}: {int(extra.sum())} value(s) where there was no trial (first: trial {t} of "
                         f"image {i}); use NaN there")
    return a


@dataclass
class Recording:
    """A recording in the twin's arrays: images (N, C, H, W) in [0, 1], responses (trials, images,
    neurons) and states (trials, images, 2 / 3) with NaN where there was no trial, and the split."""

    images: np.ndarray
    responses: np.ndarray
    neuron_ids: list[str]
    eye: np.ndarray | None = None
    behavior: np.ndarray | None = None
    split: dict[str, np.ndarray] | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _trial_files(folder: Path, where: str) -> dict[int, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"sensorium folder: {folder} is missing ({where})")
    files = {}
    for f in folder.glob("*.npy"):
        try:
            files[int(f.stem)] = f
        except ValueError:
            raise ValueError(f"sensorium folder: {f} is not named by an integer trial index") from None
    if not files:
        raise ValueError(f"sensorium folder: {folder} holds no .npy trial files")
    return files


def _grey_levels(img: np.ndarray, where: Path) -> np.ndarray:
    a = np.asarray(img)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"sensorium folder: {where} contains NaN or inf")
    hi = float(a.max()) if a.size else 0.0
    if a.min() < 0 or hi > 255:
        raise ValueError(f"sensorium folder: {where} has values outside [0, 255]")
    return a / 255.0 if hi > 1.0 else a


def read_sensorium(folder: str | Path, *, eye: bool = True, behavior: bool = True) -> Recording:
    """Read a sensorium-style folder (see the module docstring) into a :class:`Recording`.

    Trials of one image (same ``frame_image_id``) become that image's repeats, in presentation
    order (``trial_idx``) when known; the tier of an image's trials gives its split. Eye position
    and behaviour are read when their folders exist (and ``eye`` / ``behavior`` are true).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"sensorium folder {root} does not exist")
    data, trials_meta = root / "data", root / "meta" / "trials"
    image_files = _trial_files(data / "images", "data/images")
    response_files = _trial_files(data / "responses", "data/responses")
    index = sorted(image_files)
    if sorted(response_files) != index:
        raise ValueError(f"sensorium folder: data/images and data/responses hold different trials "
                         f"({len(image_files)} vs {len(response_files)} files)")
    n = len(index)
    if index != list(range(n)):
        raise ValueError(f"sensorium folder: trial files must be numbered 0..{n - 1}")

    def meta(name: str, required: bool) -> np.ndarray | None:
        f = trials_meta / f"{name}.npy"
        if not f.is_file():
            if required:
                raise FileNotFoundError(f"sensorium folder: meta/trials/{name}.npy is missing")
            return None
        arr = np.load(f, allow_pickle=False).reshape(-1)
        if arr.size != n:
            raise ValueError(f"sensorium folder: meta/trials/{name}.npy has {arr.size} entries for {n} trials")
        return arr

    image_id = meta("frame_image_id", True)
    tiers = np.array([str(t) for t in meta("tiers", True)])
    order = meta("trial_idx", False)
    kept = np.flatnonzero(np.isin(tiers, list(TIERS)))
    if kept.size == 0:
        raise ValueError(f"sensorium folder: no trial in the tiers {sorted(TIERS)} (found {sorted(set(tiers))})")
    dropped = {str(t): int((tiers == t).sum()) for t in sorted(set(tiers) - set(TIERS))}
    ids, slot = np.unique(image_id[kept], return_inverse=True)
    # trial number within each image, in presentation order
    key = order[kept] if order is not None else kept
    rank = np.zeros(kept.size, dtype=int)
    for j in range(ids.size):
        members = np.flatnonzero(slot == j)
        rank[members[np.argsort(key[members], kind="stable")]] = np.arange(members.size)
    first = {}
    for pos in np.argsort(rank, kind="stable"):
        first.setdefault(int(slot[pos]), int(kept[pos]))
    image_tier = {}
    for pos, t in enumerate(kept):
        tier = TIERS[tiers[t]]
        if image_tier.setdefault(int(slot[pos]), tier) != tier:
            raise ValueError(f"sensorium folder: image {ids[slot[pos]]} has trials in two tiers")
    imgs = [_grey_levels(np.load(image_files[first[j]], allow_pickle=False), image_files[first[j]])
            for j in range(ids.size)]
    if len({a.shape for a in imgs}) > 1:
        raise ValueError("sensorium folder: images have different shapes")
    from actmax.scorers.twin.train import images_to_nchw

    images = images_to_nchw(np.stack(imgs), where=str(data / "images"))
    first_resp = np.load(response_files[int(kept[0])], allow_pickle=False).reshape(-1)
    n_neurons = first_resp.size
    shape = (int(rank.max()) + 1, ids.size)
    responses = np.full((*shape, n_neurons), np.nan)
    states = {"eye": (data / "pupil_center", eye), "behavior": (data / "behavior", behavior)}
    arrays = {name: np.full((*shape, STATE_DIMS[name]), np.nan) for name, (d, use) in states.items()
              if use and d.is_dir()}
    for pos, t in enumerate(kept):
        r = np.load(response_files[int(t)], allow_pickle=False).reshape(-1)
        if r.size != n_neurons:
            raise ValueError(f"sensorium folder: {response_files[int(t)]} has {r.size} neurons, trial "
                             f"{int(kept[0])} has {n_neurons}")
        responses[rank[pos], slot[pos]] = r
        for name, arr in arrays.items():
            f = states[name][0] / f"{int(t)}.npy"
            if not f.is_file():
                raise FileNotFoundError(f"sensorium folder: {f} is missing ({name} of trial {int(t)})")
            v = np.load(f, allow_pickle=False).reshape(-1)
            if v.size != STATE_DIMS[name]:
                raise ValueError(f"sensorium folder: {f} has {v.size} values, expected {STATE_DIMS[name]}")
            arr[rank[pos], slot[pos]] = v
    if not np.isfinite(responses[np.isfinite(responses).any(2)]).all():
        raise ValueError("sensorium folder: some responses are NaN or inf")
    unit_file = root / "meta" / "neurons" / "unit_ids.npy"
    neuron_ids = [str(u) for u in np.load(unit_file, allow_pickle=False).reshape(-1)] if unit_file.is_file() \
        else [str(i) for i in range(n_neurons)]
    if len(neuron_ids) != n_neurons:
        raise ValueError(f"sensorium folder: meta/neurons/unit_ids.npy lists {len(neuron_ids)} ids for "
                         f"{n_neurons} neurons")
    split = {name: np.array(sorted(j for j, t in image_tier.items() if t == name), dtype=int)
             for name in ("train", "val", "test")}
    for name, arr in arrays.items():
        check_state(arr, responses, name)
    return Recording(images=images, responses=responses, neuron_ids=neuron_ids, eye=arrays.get("eye"),
                     behavior=arrays.get("behavior"), split=split,
                     notes={"trials": n, "trials_used": int(kept.size), "tiers_left_out": dropped,
                            "image_ids": ids.tolist()})

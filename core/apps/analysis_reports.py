"""Analyses applied to run records and image files, writing a table (CSV) and a figure each.

These back the ``actmax analyze ...`` commands; each returns the table it wrote.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.errors import RecordError

__all__ = ["read_image", "report_trajectory", "report_images", "report_bidirectional", "report_activation",
           "report_similarity"]


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    from actmax.core.records import atomic_write_bytes
    atomic_write_bytes(path, df.to_csv(index=False).encode())
    return path


def read_image(path: str | Path) -> torch.Tensor:
    """One stimulus -> (C, H, W) float32 in [0, 1] (grey files give one channel).

    A PNG preview from a run record (8-bit, upscaled) is never analysed as it is: its native
    float stimulus is read from the record's ``stimuli.safetensors`` instead. Other PNG/JPEG
    files are read as they are.
    """
    from PIL import Image

    from actmax.core.apps.screen import _pil_to_array
    from actmax.core.records import PREVIEW_KEY, STIMULUS_KEY

    p = Path(path)
    if p.is_dir():
        stimuli = read_stimuli(p)   # an evolution's come best first; a synthesis has no single best
        if len(stimuli) != 1 and stimuli[0][0] != "best":
            raise ValueError(f"record {str(p)!r} holds {len(stimuli)} stimuli; give one image file")
        return stimuli[0][1]
    if not p.is_file():
        raise FileNotFoundError(f"image {str(p)!r} does not exist")
    with Image.open(p) as img:
        img.load()
        text = dict(getattr(img, "text", {}) or {})
        if STIMULUS_KEY in text:
            return _native_stimulus(p, text[STIMULUS_KEY])
        if PREVIEW_KEY in text:
            raise ValueError(f"{p} is a preview that names no native stimulus ({text[PREVIEW_KEY]}); give one "
                             "stimulus (a record's best.png or images/<target>.png) or the record folder")
        return torch.from_numpy(_pil_to_array(img, None))


def _native_stimulus(png: Path, key: str) -> torch.Tensor:
    """The entry ``key`` (``name`` or ``name[i]``) of the record's stimuli that ``png`` previews."""
    from actmax.core.records import STIMULI, RunRecord

    folder = next((f for f in (png.parent, png.parent.parent) if (f / STIMULI).is_file()), None)
    if folder is None:
        raise RecordError(f"{png} is a preview of a run record, but {STIMULI} (its native stimuli) is not beside it; "
                          "analyse the record folder, or `actmax resume --repair` it")
    name, _, index = key.partition("[")
    stimuli = RunRecord(folder).stimuli()
    if name not in stimuli:
        raise RecordError(f"{folder / STIMULI} has no entry {name!r} (that {png.name} names)")
    value = stimuli[name]
    return value[int(index.rstrip("]"))] if index else value


def read_stimuli(record: str | Path) -> list[tuple[str, torch.Tensor]]:
    """The native stimuli of a record folder as (label, (C, H, W)) pairs.

    Evolution: the overall best, then each space's best; synthesis: every target of
    ``targets.csv``, labelled like its PNG preview (``unit0003_mei_seed0``).
    """
    from actmax.core.records import STIMULI, RunRecord

    rec = RunRecord(record)
    kind = rec.manifest().get("kind")
    if not (rec.path / STIMULI).is_file():
        raise RecordError(f"{rec.path} has no {STIMULI} (made by an older actmax?); `actmax resume --repair` "
                          "rebuilds it from the checkpoint")
    stimuli = rec.stimuli()
    if kind == "evolve":
        from safetensors import safe_open

        with safe_open(str(rec.path / STIMULI), "pt") as fh:
            spaces = (fh.metadata() or {}).get("spaces", "").split(",")
        return [("best", stimuli["best"])] + [(f"{s}_best", stimuli[f"{s}/best"]) for s in spaces
                                              if f"{s}/best" in stimuli]
    if kind == "synthesize":
        targets = pd.read_csv(rec.check_file("targets.csv"))
        return [(f"unit{r.unit:04d}_{'mei' if r.pole == 'high' else 'lei'}_seed{r.seed}", stimuli["images"][i])
                for i, r in enumerate(targets.itertuples())]
    raise RecordError(f"{rec.path} is a {kind!r} record; stimuli come from evolve and synthesize records")


def report_trajectory(record: str | Path, *, out: str | Path | None = None, alpha: float = 0.05,
                      normalise: str = "max") -> pd.DataFrame:
    """Time constant and success test per space of an evolution record (``actmax evolve --out``)."""
    from actmax.core.apps.analysis import analyze_trajectories
    from actmax.core.apps.plots import plot_trajectory_analysis
    from actmax.core.records import RunRecord

    rec = RunRecord(record)
    manifest = rec.manifest()
    if manifest.get("kind") != "evolve":
        raise RecordError(f"{record} is a {manifest.get('kind')!r} record; trajectories come from `actmax evolve`")
    pole = manifest.get("spec", {}).get("pole", "high")
    scores = rec.scores()
    table = analyze_trajectories(scores, pole=pole, alpha=alpha, normalise=normalise)
    dest = Path(out) if out else rec.path
    _write_csv(table, dest / "trajectory_analysis.csv")
    plot_trajectory_analysis(scores, table, dest / "trajectory_analysis.png", pole=pole, normalise=normalise)
    return table


def _labelled_images(paths: Sequence[str | Path]) -> list[tuple[str, str, torch.Tensor]]:
    """Image files (native stimuli for record previews) and record folders (all their stimuli) as
    (label, short name, image)."""
    out = []
    for p in paths:
        if Path(p).is_dir():
            out += [(f"{p}:{label}", f"{Path(p).name}_{label}", img) for label, img in read_stimuli(p)]
        else:
            out.append((str(p), Path(p).stem, read_image(p)))
    return out


def report_images(paths: Sequence[str | Path], *, out: str | Path) -> pd.DataFrame:
    """MEI-vs-Gabor metrics of image files or record folders (native stimuli): a table row and a figure each."""
    from actmax.core.apps.analysis import compare_to_gabor
    from actmax.core.apps.plots import plot_gabor_comparison

    if not paths:
        raise ValueError("give at least one image file")
    dest = Path(out)
    rows = []
    for label, name, img in _labelled_images(paths):
        rows.append({"image": label, **compare_to_gabor(img)})
        plot_gabor_comparison(img, dest / f"gabor_{name}.png", title=name)
    table = pd.DataFrame(rows)
    _write_csv(table, dest / "gabor_metrics.csv")
    return table


def _extremes_from_record(record: Path, units: int) -> tuple[np.ndarray, np.ndarray, str]:
    from actmax.core.records import RunRecord

    kind = RunRecord(record).manifest().get("kind")
    if kind == "screen":
        from actmax.core.apps.screen import load_screen
        _, stats = load_screen(record)
        if len(stats) != units:
            raise RecordError(f"{record}: the screen has {len(stats)} units, the scorer {units}")
        return stats["max"].to_numpy(float), stats["min"].to_numpy(float), "screen extremes"
    if kind == "synthesize":
        path = record / "targets.csv"
        if not path.exists() and RunRecord(record).manifest().get("status") != "finished":
            raise RecordError(f"{record}: targets.csv is missing (an unfinished synthesis?)")
        RunRecord(record).check_file("targets.csv")
        t = pd.read_csv(path)
        mx, mn = np.full(units, np.nan), np.full(units, np.nan)
        for (u, pole), d in t.groupby(["unit", "pole"]):
            if pole == "high":
                mx[int(u)] = d["response"].max()
            else:
                mn[int(u)] = d["response"].min()
        return mx, mn, "MEI/LEI responses"
    raise RecordError(f"{record}: expected a screen or synthesize record, got {kind!r}")


def _record_scorer(record: Path) -> str | None:
    from actmax.core.records import RunRecord

    return RunRecord(record).manifest().get("spec", {}).get("scorer")


def check_same_scorer(records: Sequence[str | Path], scorer: Any = None) -> Any:
    """The scorer the records share; mixing records of different scorers is refused.

    Each record's manifest names its scorer spec. Two different specs raise a ValueError
    naming both (their responses are on different scales, often of different units). A
    ``scorer`` given explicitly that differs from the records' is used, with a warning naming
    both; ``scorer=None`` takes the records' scorer.
    """
    import logging

    from actmax.core.registry import spec_text

    seen: dict[str, Path] = {}
    unknown = []
    for r in records:
        text = _record_scorer(Path(r))
        if text is None:
            unknown.append(str(r))
        elif text not in seen:
            seen[text] = Path(r)
    if len(seen) > 1:
        (a, ra), (b, rb) = list(seen.items())[:2]
        raise ValueError(f"records were made with different scorers: {a!r} ({ra}) and {b!r} ({rb}); "
                         "their responses are not comparable: analyse each scorer's records separately")
    log = logging.getLogger(__name__)
    if unknown:
        log.warning("warning: no scorer spec in %s (made with a live scorer object): cannot check that "
                    "it used the same scorer as the others", ", ".join(unknown))
    recorded = next(iter(seen), None)
    if scorer is None:
        if recorded is None:
            raise ValueError("no scorer spec in the records: give the scorer (--scorer)")
        return recorded
    given = spec_text(scorer)
    if recorded is not None and given is not None and given != recorded:
        log.warning("warning: the scorer given (%r) is not the one the records were made with (%r, %s); "
                    "baseline and extremes may not match", given, recorded, seen[recorded])
    return scorer


def report_bidirectional(scorer: Any = None, *, records: Sequence[str | Path], out: str | Path,
                         level: float = 0.5, trust: bool = False) -> pd.DataFrame:
    """Baseline (uniform grey at ``level``) and bidirectional index of every unit of ``scorer``.

    The maximum and minimum of each unit are the most extreme responses over the given screen
    and/or synthesis records (MEI/LEI responses), and the baseline itself. All records must
    come from one scorer (``scorer=None``: the records' own; see :func:`check_same_scorer`). A
    scorer spec read from the records is data: a module it names that is not an installed plugin
    is refused unless ``trust`` (see :mod:`actmax.core.trust`).
    """
    from actmax.core.apps.analysis import baseline_response, bidirectional_index
    from actmax.core.apps.plots import plot_bidirectional
    from actmax.core.registry import scorers

    if not records:
        raise ValueError("give at least one screen or synthesis record for the units' extremes")
    from actmax.core.trust import untrusted

    from_records = scorer is None
    scorer = check_same_scorer(records, scorer)
    with untrusted(f"{records[0]}", trusted=trust or not from_records):
        s = scorers.create(scorer)
    base = baseline_response(s, level=level)
    mx, mn = base.copy(), base.copy()
    sources = []
    for r in records:
        rmx, rmn, what = _extremes_from_record(Path(r), len(base))
        mx = np.fmax(mx, rmx)
        mn = np.fmin(mn, rmn)
        sources.append(f"{r} ({what})")
    bi = bidirectional_index(maximum=mx, minimum=mn, baseline=base)
    names = list(getattr(s, "unit_names", [str(i) for i in range(len(base))]))
    table = bi.table()
    table.insert(0, "unit", np.arange(len(base)))
    table.insert(1, "unit_name", names)
    dest = Path(out)
    _write_csv(table, dest / "bidirectional.csv")
    plot_bidirectional(table, dest / "bidirectional.png", labels=names)
    from actmax.core.registry import spec_text
    (dest / "bidirectional_sources.json").write_text(json.dumps(
        {"scorer": spec_text(scorer), "baseline_level": level, "extremes": sources}, indent=2))
    return table


def report_activation(scorer: Any, images: str | Path, *, unit: int, out: str | Path, samples: int = 30,
                      seed: int = 0, batch_size: int = 64, size: int | None = None, key: str | None = None) -> pd.DataFrame:
    """Activation curve of one unit over an image set, adaptive samples, and its Gini coefficient.

    Keeps the N responses of that one unit (O(N), not O(N x units)). Writes
    ``activation_unit<u>.csv`` (the sampled images), ``.png`` (curve) and ``_samples.png``.
    """
    from actmax.core.apps.analysis import adaptive_sample, gini
    from actmax.core.apps.plots import plot_activation_curve, plot_mai_lai
    from actmax.core.registry import scorers
    from actmax.core.apps.screen import _collate, open_images

    s = scorers.create(scorer).eval()
    u = s.check_unit(unit) if hasattr(s, "check_unit") else int(unit)
    data = open_images(images, size=size, key=key)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    chunks = []
    with torch.no_grad():
        for batch in loader:
            chunks.append(s(batch)[:, u].double().cpu().numpy())
    resp = np.concatenate(chunks)
    picks = adaptive_sample(resp, min(samples, resp.size), seed=seed)
    dest = Path(out)
    plot_activation_curve(resp, dest / f"activation_unit{u}.png", samples=picks, title=f"unit {u}")
    imgs = data.batch(picks)
    half = (len(picks) + 1) // 2
    plot_mai_lai(imgs[half:].flip(0), imgs[:half], resp[picks[half:]][::-1], resp[picks[:half]],
                 dest / f"activation_unit{u}_samples.png", title=f"unit {u}: adaptive samples (high / low half)")
    policy = "raise" if resp.min() >= 0 else "shift"
    table = pd.DataFrame({"unit": u, "image_index": picks, "source": [data.source(int(i)) for i in picks],
                          "response": resp[picks]})
    table.attrs["gini"] = gini(resp, negative=policy)
    _write_csv(table, dest / f"activation_unit{u}.csv")
    (dest / f"activation_unit{u}.json").write_text(json.dumps(
        {"unit": u, "images": int(resp.size), "gini": table.attrs["gini"],
         "gini_negative_policy": "none needed" if policy == "raise" else "shift (responses < 0)",
         "min": float(resp.min()), "max": float(resp.max()), "mean": float(resp.mean())}, indent=2))
    return table


def _lpips_or_one_line_error(factory: Any, net: str, trunk_weights: str | None) -> Any:
    """Build LPIPS; a missing trunk file becomes one short line naming the file and the flag."""
    from actmax.core.apps.analysis import LPIPS_TRUNKS
    from actmax.core.errors import WeightsError

    try:
        return factory(net, trunk_weights=trunk_weights)
    except WeightsError as exc:
        if trunk_weights or os.environ.get(f"ACTMAX_LPIPS_{net.upper()}_WEIGHTS", "").strip():
            raise  # an explicit path that is wrong: the weights module's message names it
        filename = LPIPS_TRUNKS[net][1] if net in LPIPS_TRUNKS else "?"
        raise WeightsError(
            f"LPIPS needs the torchvision {net} trunk weights {filename}, not found locally; pass "
            f"--weights /path/to/{filename} (Python: trunk_weights=...) or set ACTMAX_LPIPS_{net.upper()}_WEIGHTS, "
            f"or use --metric cosine --features SCORER (no weights needed)") from exc


def report_similarity(paths: Sequence[str | Path], *, out: str | Path, metric: str = "lpips", net: str = "alex",
                      trunk_weights: str | None = None, features: Any = None, size: int = 64) -> pd.DataFrame:
    """Pairwise similarity of image files: LPIPS distance or feature cosine (``features`` = a scorer spec)."""
    from actmax.core.apps.analysis import LPIPSDistance, feature_cosine
    from actmax.core.apps.plots import plot_similarity_matrix
    from actmax.core.contracts import to_channels, to_size

    found = _labelled_images(paths)
    if len(found) < 2:
        raise ValueError("give at least two images to compare (image files or record folders)")
    imgs = [img for _, _, img in found]
    chans = 3 if any(i.shape[0] == 3 for i in imgs) else 1
    batch = torch.stack([to_size(to_channels(i[None], chans), size)[0] for i in imgs])
    n = len(imgs)
    ii, jj = np.triu_indices(n, 1)
    if metric == "lpips":
        model = _lpips_or_one_line_error(LPIPSDistance, net, trunk_weights)
        with torch.no_grad():
            vals = model(batch[ii], batch[jj]).numpy()
        diag = 0.0
    elif metric == "cosine":
        if features is None:
            raise ValueError("metric 'cosine' needs features= (a scorer spec whose responses are the features)")
        vals = feature_cosine(batch[ii], batch[jj], features=features)
        diag = 1.0
    else:
        raise ValueError(f"metric must be 'lpips' or 'cosine', got {metric!r}")
    m = np.full((n, n), diag)
    m[ii, jj] = vals
    m[jj, ii] = vals
    labels = [name for _, name, _ in found]
    dest = Path(out)
    table = pd.DataFrame({"a": [found[i][0] for i in ii], "b": [found[j][0] for j in jj], metric: vals})
    _write_csv(table, dest / f"similarity_{metric}.csv")
    plot_similarity_matrix(m, labels, dest / f"similarity_{metric}.png",
                           title="LPIPS distance" if metric == "lpips" else "feature cosine")
    return table

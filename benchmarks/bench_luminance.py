"""Choose the default mean-luminance constraint of synthesis (recipe option ``luminance``).

Direct synthesis on the ground truth (no twin) of every model-neuron family, the population
``model:kind=all,n=12,size=32`` (RGB: it has colour cells) at population seeds 0 and 1, at the
default contrast budget (natural images' median RMS contrast at 32 px), with each luminance
option, in two generator spaces (pixel: the default; fourier: codes with a free DC term).
Per family (medians over cells and seeds): MEI / known optimum, the LEI's excess over the floor
as a share of (grey baseline - floor) (cnn: grey is the floor, so the excess / the optimum), and
the range of the MEIs' and LEIs' mean luminance. Also each family's response to uniform fields
(mean luminance 0.25 / 0.75, as a share of the optimum above the grey baseline): whether a
family's optimum depends on the mean luminance; and the optimum's response when its mean is
raised by 0.1 (share of the optimum): what a drifting mean costs under the families' gain control.

    OMP_NUM_THREADS=1 python benchmarks/bench_luminance.py            # ~2-3 CPU-minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_luminance.py --quick    # one seed, pixel space only
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from actmax.core.synthesize import DEFAULT_RECIPE, synthesize
from actmax.scorers.model_neurons import KINDS, ModelNeurons

OPTIONS = ("free", "pin", "budget:0.05", "budget:0.1")


def uniform_field_table(size: int = 32, seed: int = 0) -> pd.DataFrame:
    """Response to uniform fields per family, as (r(field) - r(grey)) / (r(optimum) - r(grey))."""
    m = ModelNeurons(kind="all", n=12, size=size, seed=seed)
    fields = torch.stack([torch.full((3, size, size), v) for v in (0.25, 0.5, 0.75)])
    with torch.no_grad():
        r = m(fields)
    opt = m.optimal_response("high")
    with torch.no_grad():
        shifted = m((m.optimal_stimulus("high").expand(-1, 3, -1, -1) + 0.1).clamp(0, 1))
    rows = []
    for kind in KINDS:
        idx = [u for u, k in enumerate(m.kinds) if k == kind]
        span = (opt[idx] - r[1, idx]).clamp_min(1e-9)
        rows.append({"family": kind, "uniform 0.25": float(((r[0, idx] - r[1, idx]) / span).max()),
                     "uniform 0.75": float(((r[2, idx] - r[1, idx]) / span).max()),
                     "optimum +0.1 mean": float((shifted[idx, idx] / opt[idx]).median())})
    return pd.DataFrame(rows)


def measure(seeds: list[int], generators: list[str]) -> pd.DataFrame:
    rows = []
    for gen in generators:
        for seed in seeds:
            m = ModelNeurons(kind="all", n=12, size=32, seed=seed)
            opt_hi, floor, grey = m.optimal_response("high"), m.optimal_response("low"), m.baseline()
            for option in OPTIONS:
                res = synthesize(f"{gen}:size=32,channels=3", m, ascent=f"{DEFAULT_RECIPE},luminance='{option}'",
                                 progress=False)
                t = res.table
                for u, kind in enumerate(m.kinds):
                    hi = t[(t.unit == u) & (t.pole == "high")].iloc[0]
                    lo = t[(t.unit == u) & (t.pole == "low")].iloc[0]
                    span = float(grey[u] - floor[u]) if float(grey[u] - floor[u]) > 1e-6 else float(opt_hi[u])
                    rows.append({"generator": gen, "seed": seed, "option": option, "unit": u, "family": kind,
                                 "mei_over_optimum": float(hi.response / opt_hi[u]),
                                 "lei_excess": float((lo.response - floor[u]) / span),
                                 "mei_luminance": float(hi.mean_luminance), "lei_luminance": float(lo.mean_luminance)})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    def span(s: pd.Series) -> str:
        return f"{s.min():.2f}-{s.max():.2f}"
    out = df.groupby(["generator", "option", "family"], sort=False).agg(
        mei_over_optimum=("mei_over_optimum", "median"), worst_mei=("mei_over_optimum", "min"),
        lei_excess=("lei_excess", "median"), worst_lei=("lei_excess", "max"),
        mei_luminance=("mei_luminance", span), lei_luminance=("lei_luminance", span)).reset_index()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one population seed, pixel space only")
    args = ap.parse_args()
    t0 = time.process_time()
    print("uniform fields (response above grey, share of the optimum's; max over cells):")
    print(uniform_field_table().to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    df = measure([0] if args.quick else [0, 1], ["pixel"] if args.quick else ["pixel", "fourier"])
    table = summarise(df)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    overall = df.groupby(["generator", "option"], sort=False).agg(
        worst_family_mei=("mei_over_optimum", lambda s: s.groupby(df.loc[s.index, "family"]).median().min()),
        worst_lei_excess=("lei_excess", "max"),
        max_luminance_shift=("mei_luminance", lambda s: float(np.max(np.abs(
            np.r_[s.to_numpy(), df.loc[s.index, "lei_luminance"].to_numpy()] - 0.5)))))
    print(overall.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"CPU {time.process_time() - t0:.0f} s")


if __name__ == "__main__":
    main()

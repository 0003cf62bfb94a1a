"""Optimizer benchmark in the style of GECCO 2022 (Wang & Ponce): optimizers x spaces x units x noise.

Every run is one :func:`actmax.core.evolve.evolve` call (nothing written to disk per run) with a
fixed evaluation budget (default 3000 = 75 generations x 40). The default space is GECCO's: the
4096-d DeePSim fc6 space when its weights are present locally, else a stated stand-in of the same
dimension, ``pixel:size=64`` (64 x 64 grey pixels = 4096-d; no Fourier space has exactly 4096
coefficients: ``fourier:size=64`` has 4224). Results are reported per space, never pooled across
spaces (whose dimensions, and so difficulties, differ). Responses reach the optimizer
with multiplicative noise ``r * max(0, 1 + sigma * N(0, 1))`` (the reference's noise model);
the clean response of every evaluated image is kept too. A run's score is the best *clean*
response among all images it evaluated (as the reference's second round), normalised per
(space, unit) by the best clean response that any optimizer, noise level or seed reached for
that unit in that space (``norm_score``).
For scorers with a known optimum (model neurons) ``fraction_of_optimum`` divides by it instead.

Outputs (``out_dir``): ``runs.parquet`` / ``runs.csv`` (one row per run), ``trajectory.parquet``
(best clean response so far per generation), ``summary.csv`` (mean normalised score per
space x optimizer x noise, with the space's dimension) and ``benchmark.png`` (one row per space).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.registry import generators, optimizers, scorers, spec_text
from actmax.scorers.base import Scorer
from actmax.core.errors import InputError

DEFAULT_OPTIMIZERS = ("cholesky_cma", "sphere_cma", "cma", "cma:diagonal=True", "genetic", "random")
GECCO_SPACE = "deepsim"
GECCO_STAND_IN = "pixel:size=64"
DEFAULT_SPACES = (GECCO_STAND_IN,)


def default_spaces() -> tuple[str, ...]:
    """GECCO's 4096-d DeePSim fc6 space when its weights are found locally (never downloaded),
    else the same-dimension stand-in ``pixel:size=64``."""
    from actmax.core.errors import WeightsError
    from actmax.core.weights import locate

    try:
        found = locate("deepsim-fc6")
    except WeightsError:
        found = None
    return (GECCO_SPACE,) if found is not None else (GECCO_STAND_IN,)
DEFAULT_SCORER = "model:kind=mixed,n=6"
NOISE_LEVELS = (0.0, 0.2, 0.5)


class NoisyResponses(Scorer):
    """A scorer whose responses carry multiplicative noise ``r * max(0, 1 + sigma * N(0, 1))``.

    The clean responses of every call are kept in ``clean`` (one array per call, in call order),
    so the benchmark can score what the optimizer really found while it only saw noisy values.
    """

    def __init__(self, base: Scorer, *, sigma: float, seed: int | Sequence[int]) -> None:
        super().__init__()
        if sigma < 0:
            raise InputError(f"benchmark: noise sigma must be >= 0, got {sigma}")
        self.base, self.sigma = base, float(sigma)
        self.units, self.differentiable = base.units, False
        self.rng = np.random.default_rng(seed)
        self.clean: list[np.ndarray] = []

    @property
    def unit_names(self) -> list[str]:
        return self.base.unit_names

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            clean = self.base(images)
        self.clean.append(clean.detach().double().cpu().numpy())
        if self.sigma == 0:
            return clean
        gain = np.maximum(0.0, 1.0 + self.sigma * self.rng.standard_normal(tuple(clean.shape)))
        return clean * torch.as_tensor(gain, dtype=clean.dtype, device=clean.device)


@dataclass
class BenchmarkResult:
    """``runs``: one row per run; ``trajectory``: per generation; ``summary``: mean normalised scores."""

    runs: pd.DataFrame
    trajectory: pd.DataFrame
    summary: pd.DataFrame
    out_dir: Path | None = None

    def table(self, space: str | None = None, by: str = "noise") -> pd.DataFrame:
        """Mean normalised score in one space (default: the only one), optimizers as rows and ``by``
        (e.g. noise) as columns. Never pooled across spaces."""
        spaces = list(dict.fromkeys(self.runs["space"]))
        if space is None:
            if len(spaces) != 1:
                raise InputError(f"benchmark: {len(spaces)} spaces ({', '.join(spaces)}); results are per space, "
                                 "name one: table(space=...)")
            space = spaces[0]
        runs = self.runs[self.runs["space"] == space]
        if runs.empty:
            raise InputError(f"benchmark: no runs in space {space!r}; spaces: {', '.join(spaces)}")
        table = runs.groupby(["optimizer", by], sort=False)["norm_score"].mean().unstack(by)
        return table.reindex(list(dict.fromkeys(runs["optimizer"])))

    def tables(self, by: str = "noise") -> dict[str, pd.DataFrame]:
        """:meth:`table` of every space, keyed by space."""
        return {space: self.table(space, by) for space in dict.fromkeys(self.runs["space"])}


def _label(spec: Any) -> str:
    return spec_text(spec) or type(spec).__name__


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


def run_benchmark(*, optimizer_specs: Sequence[Any] = DEFAULT_OPTIMIZERS, spaces: Sequence[Any] | None = None,
                  scorer: Any = DEFAULT_SCORER, units: Sequence[int] | None = None, budget: int = 3000,
                  popsize: int = 40, noise: Sequence[float] = NOISE_LEVELS, seeds: Sequence[int] = (0,),
                  out_dir: str | Path | None = None, progress: bool = False,
                  threads: int | None = None) -> BenchmarkResult:
    """Run every optimizer on every (space, unit, noise level, seed) with ``budget`` evaluations each.

    ``spaces`` default: :func:`default_spaces` (GECCO's 4096-d setting). Optimizer specs get the
    run-loop context (``dim``, ``x0`` = the space's ``init_codes(1, seed)``, ``sigma0`` = the
    space's ``default_sigma``, ``seed``, SphereCMA's ``sphere_norm``, the GA's ``prior``) plus
    ``popsize`` and ``n_gen`` (the number of generations, for schedules such as SphereCMA's);
    options in a spec win. Each run lasts
    ``budget // popsize`` generations of the optimizer's own population size. ``scorer`` is any
    scorer spec (model neurons by default; a twin or CNN unit works the same way).
    """
    if threads is not None:                   # set torch threads for the run only; the caller's setting comes back
        args, before = {**locals(), "threads": None}, torch.get_num_threads()
        torch.set_num_threads(int(threads))
        try:
            return run_benchmark(**{k: v for k, v in args.items() if k not in ("args", "before")})
        finally:
            torch.set_num_threads(before)
    from actmax.core.evolve import evolve
    from tqdm.auto import tqdm

    spaces = default_spaces() if spaces is None else spaces
    noise = [float(s) for s in noise]
    _check_benchmark_args(budget, popsize, noise, optimizer_specs, spaces, seeds)
    base = scorers.create(scorer).eval()
    units = list(range(base.units)) if units is None else [base.check_unit(u) for u in units]
    gens = [(_label(s), generators.create(s).eval()) for s in spaces]
    opt_labels = [_label(o) for o in optimizer_specs]
    if len(set(opt_labels)) != len(opt_labels) or len({g for g, _ in gens}) != len(gens):
        raise InputError("benchmark: optimizer and space specs must be distinct")
    n_runs = len(gens) * len(units) * len(seeds) * len(noise) * len(opt_labels)
    bar = tqdm(total=n_runs, disable=not progress, desc="benchmark", unit="run")
    rows: list[dict[str, Any]] = []
    traj: list[pd.DataFrame] = []
    try:
        for space, gen in gens:
            for unit in units:
                for seed in seeds:
                    with torch.no_grad():
                        x0 = gen.init_codes(1, seed=int(seed))[0].double().numpy()
                    for sigma in noise:
                        for label, spec in zip(opt_labels, optimizer_specs):
                            row, tr = _one_run(evolve, gen, base, spec, space=space, label=label, unit=unit,
                                               seed=int(seed), sigma=sigma, x0=x0, budget=budget, popsize=popsize)
                            rows.append(row)
                            traj.append(tr)
                            bar.update(1)
    finally:
        bar.close()
    runs = pd.DataFrame(rows)
    trajectory = pd.concat(traj, ignore_index=True)
    _normalise(runs, trajectory)
    summary = _summary(runs)
    out = None if out_dir is None else _write_benchmark(Path(out_dir), runs, trajectory, summary)
    return BenchmarkResult(runs=runs, trajectory=trajectory, summary=summary, out_dir=out)


def _check_benchmark_args(budget: int, popsize: int, noise: list[float], optimizer_specs: Sequence[Any],
                          spaces: Sequence[Any], seeds: Sequence[int]) -> None:
    if budget < 1 or popsize < 1:
        raise InputError(f"benchmark: budget and popsize must be >= 1, got {budget} and {popsize}")
    if any(s < 0 for s in noise):
        raise InputError(f"benchmark: noise levels must be >= 0, got {noise}")
    if not optimizer_specs or not spaces or not noise or not seeds:
        raise InputError("benchmark: needs at least one optimizer, space, noise level and seed")


def _write_benchmark(out: Path, runs: pd.DataFrame, trajectory: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """The benchmark's tables (parquet and CSV) and its figure."""
    out.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(out / "runs.parquet", index=False)
    runs.to_csv(out / "runs.csv", index=False)
    trajectory.to_parquet(out / "trajectory.parquet", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    plot_benchmark(runs, trajectory, out / "benchmark.png")
    return out


def _one_run(evolve: Any, gen: Any, base: Scorer, spec: Any, *, space: str, label: str, unit: int, seed: int,
             sigma: float, x0: np.ndarray, budget: int, popsize: int) -> tuple[dict[str, Any], pd.DataFrame]:
    from actmax.core.evolve import optimizer_context

    n_gen = max(1, budget // popsize)
    context = optimizer_context(gen, seed=seed, init_seed=seed, generations=n_gen)
    opt = optimizers.create(spec, **{**context, "x0": x0, "popsize": popsize})
    pop = int(opt.popsize or popsize)
    generations = max(1, budget // pop)
    noisy = NoisyResponses(base, sigma=sigma, seed=[seed, unit, int(round(sigma * 1e6)), _key(space)])
    t0 = time.perf_counter()
    res = evolve(gen, noisy, opt, unit=unit, pole="high", generations=generations, seed=seed)
    elapsed = time.perf_counter() - t0
    clean = np.concatenate(noisy.clean)[:, unit]
    seen = res.scores.sort_values(["generation", "index"])
    if len(seen) != len(clean):
        raise RuntimeError(f"benchmark: {len(seen)} scored images but {len(clean)} clean responses "
                           "(the run loop scored images outside its generations)")
    told = seen["score"].to_numpy()
    gen_idx = seen["generation"].to_numpy()
    per_gen_max = pd.Series(clean).groupby(gen_idx).max().to_numpy()
    last = gen_idx == gen_idx.max()
    optimum = np.nan
    if hasattr(base, "optimal_response"):  # ground-truth model neurons know their ceiling
        optimum = float(base.optimal_response("high", [unit])[0])
    row = {"optimizer": label, "space": space, "dim": int(gen.dim), "unit": unit, "unit_name": base.unit_names[unit],
           "noise": sigma, "seed": seed, "generations": generations, "evaluations": len(clean),
           "best_clean": float(clean.max()), "best_noisy": float(told.max()),
           "clean_at_best_noisy": float(clean[int(np.argmax(told))]),
           "last_generation_clean_mean": float(clean[last].mean()), "known_optimum": optimum,
           "fraction_of_optimum": float(clean.max()) / optimum if optimum == optimum else np.nan,
           "time_s": elapsed}
    evaluations = (np.arange(len(per_gen_max)) + 1) * pop
    tr = pd.DataFrame({"optimizer": label, "space": space, "unit": unit, "noise": sigma, "seed": seed,
                       "generation": np.arange(len(per_gen_max)), "evaluations": evaluations,
                       "generation_max_clean": per_gen_max,
                       "best_clean_so_far": np.maximum.accumulate(per_gen_max)})
    return row, tr


def _normalise(runs: pd.DataFrame, trajectory: pd.DataFrame) -> None:
    """Divide by the best clean response any run reached for the same (space, unit) (and unit)."""
    ref = runs.groupby(["space", "unit"])["best_clean"].transform("max")
    runs["norm_score"] = runs["best_clean"] / ref
    runs["norm_clean_at_best_noisy"] = runs["clean_at_best_noisy"] / ref
    per_unit = runs.groupby(["space", "unit"])["best_clean"].max().rename("unit_best").reset_index()
    merged = trajectory.merge(per_unit, on=["space", "unit"], how="left")
    trajectory["norm_best_so_far"] = (merged["best_clean_so_far"] / merged["unit_best"]).to_numpy()


def _summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per space (never pooled across spaces) x optimizer x noise: mean, std, SEM, runs."""
    def agg(df: pd.DataFrame, space: str) -> pd.DataFrame:
        g = df.groupby(["optimizer", "noise"], sort=False)["norm_score"]
        out = g.agg(["mean", "std", "count"]).reset_index()
        out["sem"] = out["std"] / np.sqrt(out["count"])
        out.insert(0, "dim", int(df["dim"].iloc[0]))
        out.insert(0, "space", space)
        return out

    parts = [agg(d, s) for s, d in runs.groupby("space", sort=False)]
    return pd.concat(parts, ignore_index=True).rename(columns={"mean": "norm_score_mean",
                                                               "std": "norm_score_std", "count": "runs"})


def plot_benchmark(runs: pd.DataFrame, trajectory: pd.DataFrame, path: str | Path) -> Path:
    """One row per space: normalised score per optimizer and noise level (bars, SEM) and normalised
    best-so-far vs evaluations. Spaces are never pooled."""
    from actmax.core.run_plots import plt  # headless figures; the caller's pyplot backend is left alone

    spaces = list(dict.fromkeys(runs["space"]))
    fig, axes = plt.subplots(len(spaces), 2, figsize=(13, 4.8 * len(spaces)), squeeze=False)
    styles = ["-", "--", ":", "-."]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, space in enumerate(spaces):
        ax1, ax2 = axes[row]
        sruns, straj = runs[runs["space"] == space], trajectory[trajectory["space"] == space]
        dim = int(sruns["dim"].iloc[0]) if "dim" in sruns else None
        order = list(dict.fromkeys(sruns["optimizer"]))
        levels = sorted(sruns["noise"].unique())
        width = 0.8 / len(levels)
        for j, sigma in enumerate(levels):
            sub = sruns[sruns["noise"] == sigma].groupby("optimizer")["norm_score"]
            mean, sem = sub.mean().reindex(order), (sub.std() / np.sqrt(sub.count())).reindex(order)
            ax1.bar(np.arange(len(order)) + (j - (len(levels) - 1) / 2) * width, mean, width, yerr=sem.fillna(0),
                    label=f"noise {sigma:g}", capsize=2)
        ax1.set_xticks(np.arange(len(order)), order, rotation=30, ha="right")
        ax1.set_ylabel("normalised best clean response")
        ax1.set_ylim(0, 1.05)
        ax1.legend(fontsize=8)
        ax1.set_title(f"{space}" + (f" ({dim}-d)" if dim else "") + ": score per optimizer and noise level")
        for i, name in enumerate(order):
            for j, sigma in enumerate(levels):
                sub = straj[(straj["optimizer"] == name) & (straj["noise"] == sigma)]
                curve = sub.groupby("evaluations")["norm_best_so_far"].mean()
                ax2.plot(curve.index, curve.to_numpy(), styles[j % len(styles)], color=colors[i % len(colors)],
                         label=name if j == 0 else None)
        ax2.set_xlabel("evaluations")
        ax2.set_ylabel("normalised best clean response so far")
        ax2.set_title(f"{space}: score vs evaluations (" + ", ".join(f"{styles[j % 4]} noise {s:g}"
                                                                   for j, s in enumerate(levels)) + ")", fontsize=9)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The ``actmax`` command line. Each command is a thin layer over a ``core`` function.

Errors that come from bad input (unknown part names, bad options, wrong shapes, corrupt
files) are printed as one clear ``error:`` line with exit code 2, without a traceback.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from actmax.core.cli.options import progress_option
from actmax.core.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="actmax: most and least exciting inputs (MEIs/LEIs) of visual neurons.")


@app.callback()
def _root() -> None:
    """actmax: most and least exciting inputs (MEIs/LEIs) of visual neurons."""

KINDS = ("generators", "optimizers", "scorers")


@app.command("list")
def list_parts(kind: Optional[str] = typer.Argument(None, help="generators, optimizers or scorers (default: all)"),
               name: Optional[str] = typer.Argument(None, help="one part: its options (type, default, meaning), "
                                                             "docstring, optimizer preset and weight files"),
               verbose: bool = typer.Option(False, "--verbose", "-v",
                                            help="also show each part's source and distribution (name, version)"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List registered parts (built-in and plugins) with a one-line description each;
    `actmax list KIND NAME` describes one part (e.g. `actmax list generators fourier`)."""
    from actmax.core.registry import registry_for

    if name is not None:   # one part (core/describe.py)
        from actmax.core.describe import describe, format_description

        d = describe(kind or "", name)
        typer.echo(json.dumps(d.to_dict(), indent=2) if as_json else format_description(d))
        return

    kinds = [kind] if kind else list(KINDS)
    regs = {(k if k.endswith("s") else k + "s"): registry_for(k) for k in kinds}
    if as_json:
        if verbose:
            table = {k: {e.name: {"description": e.description, "source": e.source, "origin": e.origin,
                                  "distribution": e.distribution} for e in reg.details()}
                     for k, reg in regs.items()}
        else:
            table = {k: reg.describe() for k, reg in regs.items()}
        typer.echo(json.dumps(table, indent=2))
        return
    for k, reg in regs.items():
        typer.echo(f"{k}:")
        entries = reg.details()
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            typer.echo(f"  {e.name.ljust(width)}  {e.description}")
            if verbose:
                typer.echo(f"  {' ' * width}    {e.origin}: {e.source} [{e.distribution or 'distribution unknown'}]")
        if verbose:
            for name, message in reg.skipped.items():
                typer.echo(f"  (skipped plugin {name}: {message})")
            for name, message in reg.plugin_errors.items():
                typer.echo(f"  (broken plugin {name}: {message})")


@app.command("weights")
def weights_cmd(download: Optional[str] = typer.Option(None, "--download", help="fetch this known weight file (from its Hugging Face repo or its own published URL), then verify it"),
                as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List known pretrained weights: verified / present / corrupt / missing, where, and how to get the rest.

    Nothing is downloaded unless --download NAME is given."""
    from actmax.core.weights import fetch, verify, weights_table

    if download:
        path = fetch(download)
        status, detail = verify(path, download)
        typer.echo(f"{download}: {status}  {path}  ({detail})")
        return
    rows = weights_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        if row["path"]:
            state = f"{row['status']}  {row['path']}  ({row['source']}; {row['bytes']} bytes; {row['detail']})"
        else:
            state = "missing"
        typer.echo(f"{row['name']}: {state}\n    {row['description']}; file {row['file']}; "
                   f"hub {row['hub_repo'] or '-'}; env {row['env_var']}")
        if row["problem"]:
            typer.echo(f"    problem: {row['problem']}")
        elif row["status"] == "corrupt":
            typer.echo(f"    fix: {row['fix']}")
        elif not row["path"]:
            typer.echo(f"    to get it: {row['how_to_get']}")



def _check_out(out: Path) -> None:
    """``--out`` must be a folder (or not exist yet), never a file."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the run record")


def _int_list(text: str | None, option: str = "the list") -> list[int] | None:
    """``"0,3,5"`` -> [0, 3, 5]; None or ``all`` -> None (every one); an empty list is an error, never "all"."""
    if text is None or text.strip().lower() == "all":
        return None
    try:
        values = [int(x) for x in text.replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option}: expected a comma-separated list of integers, got {text!r}") from None
    if not values:
        raise InputError(f"{option} is empty; give comma-separated integers (or leave the option out)")
    return values


def reject_empty_arguments(argv: list[str]) -> None:
    """An empty argument (``--out ""``, ``--units ""``, ``--units=``) is an error, never a default or ``.``."""
    for i, arg in enumerate(argv):
        if arg.startswith("--") and arg.endswith("=") and len(arg) > 3:
            raise InputError(f"{arg[:-1]} was given an empty value")
        if arg.strip() == "":
            after = f" after {argv[i - 1]}" if i else ""
            raise InputError(f"an empty argument was given{after}; give a value (or leave the option out)")


@app.command("evolve")
def evolve_cmd(
    generator: List[str] = typer.Option(["gabor"], "--generator", "-g", help="generator spec; repeat for paired evolution (one optimizer per space, parallel threads)"),
    scorer: str = typer.Option("model", "--scorer", "-s", help="scorer spec, e.g. model:kind=dual,n=1"),
    optimizer: List[str] = typer.Option([], "--optimizer", "-o", help="optimizer spec, e.g. cholesky_cma:sigma0=3; give one for all spaces or repeat it once per -g, in order (default: each space's preset, the lab's CholeskyCMAES for deepsim/biggan)"),
    unit: int = typer.Option(0, help="index of the unit to drive"),
    pole: str = typer.Option("high", help="high (most exciting) or low (least exciting)"),
    generations: int = typer.Option(75, help="number of generations"),
    seed: int = typer.Option(0, help="random seed"),
    out: Path = typer.Option(..., "--out", help="run record folder"),
    device: Optional[str] = typer.Option(None, help="torch device, e.g. cuda"),
    image_every: int = typer.Option(10, help="save a montage of every this many generations (0: none)"),
    overwrite: bool = typer.Option(False, help="replace an existing record in --out"),
    progress: bool = progress_option(),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Closed-loop evolution of images for one unit (gradient-free ask/tell)."""
    from actmax.core.evolve import evolve, per_space

    if optimizer and len(optimizer) not in (1, len(generator)):
        per_space(optimizer, len(generator))          # one clear error: the counts do not match
    _check_out(out)
    res = evolve(generator, scorer, list(optimizer) or None, unit=unit, pole=pole, generations=generations, seed=seed,
                 out_dir=out, device=device, overwrite=overwrite, progress=progress, image_every=image_every)
    _print_evolution(res, as_json)


def _print_evolution(res, as_json: bool) -> None:
    per_space = res.evaluations_per_space
    summary = {"record": str(res.out_dir), "best_score": res.best_score, "best_space": res.best_space,
               "evaluations": res.evaluations, "evaluations_per_space": per_space, "spaces": res.spaces}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        each = f" ({', '.join(f'{s} {n}' for s, n in per_space.items())})" if len(per_space) > 1 else ""
        typer.echo(f"best score {res.best_score:.4g} in space {res.best_space} after {res.evaluations} "
                   f"evaluations{each}; record in {res.out_dir}")


@app.command("synthesize")
def synthesize_cmd(
    generator: str = typer.Option("pixel", "--generator", "-g", help="generator spec, e.g. fourier:size=64"),
    scorer: str = typer.Option("model", "--scorer", "-s", help="differentiable scorer spec"),
    units: Optional[str] = typer.Option(None, help="comma-separated unit indices (default: all)"),
    poles: str = typer.Option("high,low", help="comma-separated poles: high (MEI), low (LEI), or high,low for both"),
    seeds: str = typer.Option("0", help="comma-separated seeds"),
    ascent: Optional[str] = typer.Option(None, help="synthesis recipe: optimiser options + loop transforms "
                                         "(jitter, blur_sigma, precondition, contrast, norm); default: the "
                                         "benchmarked recipe (README, Synthesis recipe)"),
    out: Path = typer.Option(..., "--out", help="run record folder"),
    device: Optional[str] = typer.Option(None, help="torch device, e.g. cuda"),
    amp: bool = typer.Option(False, help="bfloat16 autocast for the forward pass (GPU)"),
    overwrite: bool = typer.Option(False, help="replace an existing record in --out"),
    progress: bool = progress_option(),
    as_json: bool = typer.Option(False, "--json", help="print the per-target table as JSON"),
) -> None:
    """MEIs and LEIs of many units x seeds by batched gradient ascent."""
    from actmax.core.synthesize import DEFAULT_RECIPE, synthesize

    _check_out(out)
    res = synthesize(generator, scorer, units=_int_list(units, "--units"), poles=[p.strip() for p in poles.split(",")],
                     seeds=_int_list(seeds, "--seeds") or [0], ascent=ascent or DEFAULT_RECIPE, out_dir=out, device=device,
                     amp=amp, overwrite=overwrite, progress=progress)
    _print_synthesis(res, as_json)


def _print_synthesis(res, as_json: bool) -> None:
    if as_json:
        typer.echo(res.table.to_json(orient="records", indent=2))
    else:
        typer.echo(res.table.to_string(index=False))
        typer.echo(f"record in {res.out_dir}")


@app.command("resume")
def resume_cmd(record: Path = typer.Argument(..., help="run record folder of a killed (or finished) run"),
               progress: bool = progress_option(),
               trust: bool = typer.Option(False, "--trust", help="allow a record whose spec imports a module that is not an installed plugin (runs that code)"),
               repair: bool = typer.Option(False, "--repair", help="rebuild damaged files from the checkpoint and say what was dropped"),
               as_json: bool = typer.Option(False, "--json", help="print the summary as JSON")) -> None:
    """Continue a killed evolution, synthesis or screen from its checkpoint (a finished run is re-verified)."""
    from actmax.core.records import RunRecord
    from actmax.core.runs import resume

    kind = RunRecord(record).manifest().get("kind")
    result = resume(record, kind=kind, progress=progress, trust=trust, repair=repair)
    from actmax.core.cli.twin import print_closed_loop
    printers = {"evolve": _print_evolution, "synthesize": _print_synthesis, "screen": _print_screen,
                "closed_loop": print_closed_loop}
    printers.get(kind, _print_repr)(result, as_json)


def _print_repr(res, as_json: bool) -> None:
    typer.echo(repr(res))


@app.command("demo")
def demo_cmd(out: Path = typer.Option(Path("demo_out"), "--out", help="output folder (an earlier demo there is replaced)"),
             as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
             progress: bool = progress_option()) -> None:
    """The in-silico lab, no downloads, about 20 CPU-s (19-22 measured on a 2-core machine): gradient MEIs/LEIs of
    model neurons vs their known optima, a paired evolution in two generator spaces (clean and Poisson-noisy)
    with the budget at which each succeeds, and natural-image baselines."""
    from actmax.core.apps.demo import format_summary, run_demo, summary_json
    from actmax.core.progress import stderr_is_terminal

    log = None if stderr_is_terminal() else (lambda line: typer.echo(line, err=True))  # logs: one line per stage
    summary = run_demo(out, progress=progress and not as_json, overwrite=True, log=log)
    typer.echo(summary_json(summary) if as_json else format_summary(summary))


@app.command("benchmark")
def benchmark_cmd(
    optimizer: List[str] = typer.Option([], "--optimizer", "-o", help="optimizer spec; repeat (default: cholesky_cma, sphere_cma, cma, cma:diagonal=True, genetic, random)"),
    space: List[str] = typer.Option([], "--space", "-g", help="generator spec; repeat (default, GECCO's 4096-d setting: deepsim when its fc6 weights are present, else the stand-in pixel:size=64, also 4096-d)"),
    scorer: str = typer.Option("model:kind=mixed,n=6", "--scorer", "-s", help="scorer spec (model neurons, twin, cnn...)"),
    units: Optional[str] = typer.Option(None, help="comma-separated unit indices (default: all units of the scorer)"),
    budget: int = typer.Option(3000, help="evaluations per run (75 generations x 40)"),
    popsize: int = typer.Option(40, help="images per generation"),
    noise: List[float] = typer.Option([], "--noise", help="multiplicative noise sigma; repeat (default: 0, 0.2, 0.5)"),
    seeds: int = typer.Option(1, help="number of seeds (0..seeds-1) per run configuration"),
    out: Path = typer.Option(Path("benchmark_out"), "--out", help="output folder (tables and benchmark.png)"),
    threads: Optional[int] = typer.Option(None, help="torch threads (e.g. 1)"),
    progress: bool = progress_option(),
) -> None:
    """GECCO-2022-style optimizer benchmark: optimizers x spaces x units x noise, normalised scores per space."""
    from actmax.core.apps.benchmark import DEFAULT_OPTIMIZERS, NOISE_LEVELS, default_spaces, run_benchmark

    spaces = space or list(default_spaces())
    if not space:
        typer.echo(f"space: {spaces[0]}" + ("" if spaces[0] == "deepsim" else
                                            " (4096-d stand-in for DeePSim fc6, whose weights were not found)"))
    res = run_benchmark(optimizer_specs=optimizer or DEFAULT_OPTIMIZERS, spaces=spaces,
                        scorer=scorer, units=_int_list(units, "--units"), budget=budget, popsize=popsize,
                        noise=noise or NOISE_LEVELS, seeds=range(seeds), out_dir=out, progress=progress,
                        threads=threads)
    for name, table in res.tables().items():
        dim = int(res.runs.loc[res.runs["space"] == name, "dim"].iloc[0])
        typer.echo(f"space {name} ({dim}-d): mean normalised score (best clean response / best of any run "
                   "in this space, per unit), optimizers x noise:")
        typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"tables and benchmark.png in {res.out_dir}")


@app.command("screen")
def screen_cmd(
    images: Path = typer.Argument(..., help="folder of PNG/JPEG images (searched recursively) or a .npy/.npz array"),
    scorer: str = typer.Option("model", "--scorer", "-s", help="scorer spec, e.g. model:kind=dual,n=8"),
    out: Path = typer.Option(..., "--out", help="record folder (tables, montages, checkpoint)"),
    k: int = typer.Option(16, "-k", "--k", help="most/least activating images kept per unit"),
    batch_size: int = typer.Option(64, help="images per batch"),
    num_workers: int = typer.Option(0, help="DataLoader worker processes"),
    size: Optional[int] = typer.Option(None, help="resize every image to this square size"),
    channels: Optional[int] = typer.Option(None, help="force 1 (grey) or 3 (RGB) channels"),
    key: Optional[str] = typer.Option(None, help="array name inside an .npz file"),
    layout: str = typer.Option("auto", help="array layout: auto, NHW, NHWC or NCHW"),
    relative_accuracy: float = typer.Option(0.005, help="quantile sketch accuracy alpha: quantile error <= alpha x |value|, "
                                                     "Gini error <= alpha (DDSketch)"),
    bins: int = typer.Option(2048, help="sketch buckets per unit and sign (a range of ~exp(2 alpha bins) kept at full "
                                        "accuracy; smaller values collapse into the lowest bucket, bounds widen)"),
    checkpoint_every: int = typer.Option(50, help="save a resumable checkpoint every this many batches"),
    montages: int = typer.Option(16, help="MAI/LAI montages for the first this many units"),
    device: Optional[str] = typer.Option(None, help="torch device, e.g. cuda"),
    overwrite: bool = typer.Option(False, help="replace an existing record in --out"),
    progress: bool = progress_option(),
    as_json: bool = typer.Option(False, "--json", help="print the unit statistics as JSON"),
) -> None:
    """Most and least activating images (MAIs/LAIs) of every unit over an image set, streamed in batches."""
    from actmax.core.apps.screen import screen

    _check_out(out)
    if size is not None and size < 1:
        raise InputError(f"--size must be >= 1, got {size}")
    res = screen(scorer, images, k=k, batch_size=batch_size, num_workers=num_workers, size=size, channels=channels,
                 key=key, layout=layout, relative_accuracy=relative_accuracy, bins=bins,
                 checkpoint_every=checkpoint_every, out_dir=out,
                 overwrite=overwrite, device=device, max_montages=montages, progress=progress)
    _print_screen(res, as_json)


def _print_screen(res, as_json: bool) -> None:
    cols = ["unit", "unit_name", "mean", "std", "min", "max", "q50", "q50_error", "gini", "gini_error"]
    if as_json:
        typer.echo(res.stats[cols].to_json(orient="records", indent=2))
    else:
        typer.echo(res.stats[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        typer.echo(f"{res.state.n} images x {len(res.unit_names)} units; record in {res.out_dir}")


analyze_app = typer.Typer(no_args_is_help=True, help="Analyses of screens, evolutions and images (tables + figures).")
app.add_typer(analyze_app, name="analyze")


def _echo_table(table, as_json: bool, where: Path) -> None:
    if as_json:
        typer.echo(table.to_json(orient="records", indent=2))
    else:
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        typer.echo(f"written to {where}")


@analyze_app.command("trajectory")
def analyze_trajectory_cmd(record: Path = typer.Argument(..., help="an `actmax evolve` record folder"),
                           out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: the record)"),
                           alpha: float = typer.Option(0.05, help="significance level of the success test"),
                           normalise: str = typer.Option("max", help="max, range or baseline normalisation"),
                           as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Convergence time constant and success test (peak blocks vs first two) per space."""
    from actmax.core.apps.analysis_reports import report_trajectory

    _echo_table(report_trajectory(record, out=out, alpha=alpha, normalise=normalise), as_json, out or record)


@analyze_app.command("gabor")
def analyze_gabor_cmd(images: List[Path] = typer.Argument(..., help="image files or run record folders (their native stimuli)"),
                      out: Path = typer.Option(Path("analysis_out"), "--out", help="output folder"),
                      as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """MEI vs Gabor: best-fitting Gabor, masked luminance/contrast, rotational symmetry (ours, and the seed
    notebook's spectral folio/quarto index as there and mean-removed), power spectrum."""
    from actmax.core.apps.analysis_reports import report_images

    _echo_table(report_images(images, out=out), as_json, out)


@analyze_app.command("bidirectional")
def analyze_bidirectional_cmd(records: List[Path] = typer.Argument(..., help="screen and/or synthesize record folders"),
                              scorer: Optional[str] = typer.Option(None, "--scorer", "-s", help="scorer spec (default: the one the records were made with; records of different scorers are refused)"),
                              out: Path = typer.Option(Path("analysis_out"), "--out", help="output folder"),
                              level: float = typer.Option(0.5, help="grey level of the baseline image"),
                              trust: bool = typer.Option(False, "--trust", help="allow the records' scorer spec to import a module that is not an installed plugin (runs that code)"),
                              as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Baseline (grey) and how far each unit is driven above and below it."""
    from actmax.core.apps.analysis_reports import report_bidirectional

    _echo_table(report_bidirectional(scorer, records=records, out=out, level=level, trust=trust), as_json, out)


@analyze_app.command("activation")
def analyze_activation_cmd(images: Path = typer.Argument(..., help="image folder or .npy/.npz array"),
                           scorer: str = typer.Option("model", "--scorer", "-s", help="scorer spec"),
                           unit: int = typer.Option(0, help="unit index"),
                           samples: int = typer.Option(30, help="adaptively sampled images"),
                           size: Optional[int] = typer.Option(None, help="resize images to this square size"),
                           out: Path = typer.Option(Path("analysis_out"), "--out", help="output folder"),
                           as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Sorted-response (activation) curve of one unit, adaptive samples of its steep parts, Gini."""
    from actmax.core.apps.analysis_reports import report_activation

    table = report_activation(scorer, images, unit=unit, out=out, samples=samples, size=size)
    _echo_table(table, as_json, out)
    if not as_json:
        typer.echo(f"Gini coefficient {table.attrs['gini']:.4g}")


@analyze_app.command("similarity")
def analyze_similarity_cmd(images: List[Path] = typer.Argument(..., help="two or more image files or run record folders"),
                           metric: str = typer.Option("lpips", help="lpips (distance) or cosine (feature similarity)"),
                           features: Optional[str] = typer.Option(None, help="scorer spec giving the features for cosine"),
                           net: str = typer.Option("alex", help="LPIPS trunk: alex, vgg or squeeze"),
                           weights: Optional[str] = typer.Option(None, help="path of the LPIPS trunk's torchvision weights"),
                           out: Path = typer.Option(Path("analysis_out"), "--out", help="output folder"),
                           as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Pairwise image similarity: LPIPS distance or cosine of scorer/CNN features."""
    from actmax.core.apps.analysis_reports import report_similarity

    _echo_table(report_similarity(images, out=out, metric=metric, net=net, trunk_weights=weights,
                                  features=features), as_json, out)


@app.command("campaign")
def campaign_cmd(
    spec: Path = typer.Argument(..., help="campaign spec file (.toml, .yaml or .json)"),
    out: Optional[Path] = typer.Option(None, "--out", help="campaign folder (default: 'out' in the spec)"),
    workers: int = typer.Option(1, "--workers", "-w", help="parallel local processes (1: run in this process)"),
    backend: str = typer.Option("local", help="local (process pool) or submitit (SLURM / submitit's local executor)"),
    cluster: Optional[str] = typer.Option(None, help="submitit cluster: slurm, local, or unset for auto"),
    jobs: Optional[int] = typer.Option(None, help="submitit: number of array jobs the cells are packed into (default: --workers)"),
    gather_tables: bool = typer.Option(True, "--gather/--no-gather", help="merge the records into parquet tables afterwards"),
    tables: Optional[Path] = typer.Option(None, "--tables", help="folder for the gathered tables (default: <out>/tables)"),
    gather_only: bool = typer.Option(False, "--gather-only", help="only merge existing records into tables"),
    progress: bool = progress_option(),
) -> None:
    """A grid of runs (units x spaces x optimizers x seeds) from a spec; re-running skips finished runs and resumes killed ones."""
    from actmax.core.apps.campaign import gather, load_spec, run_campaign

    parsed = load_spec(spec)
    root = out if out is not None else (Path(parsed.out) if parsed.out else None)
    if root is None:
        raise InputError("campaign: no output folder (give --out or 'out' in the spec)")
    if not gather_only:
        report = run_campaign(parsed, out=root, backend=backend, workers=workers, jobs=jobs, cluster=cluster,
                              progress=progress)
        typer.echo(report.summary())
        failed = report.table[report.table["action"] == "failed"]
        for _, row in failed.head(10).iterrows():
            typer.echo(f"  failed {row['name']}: {row['error']}", err=True)
    else:
        failed = ()
    if gather_tables or gather_only:
        merged = gather(root, out=tables)
        typer.echo("tables: " + ", ".join(f"{k} ({len(v)} rows)" for k, v in merged.items()) +
                   f" in {tables or root / 'tables'}")
    if len(failed):
        typer.echo(f"error: {len(failed)} of {len(report.table)} cells failed (see campaign_log.csv)", err=True)
        raise typer.Exit(1)


from actmax.core.cli.twin import twin_app  # noqa: E402  (actmax twin train / eval / closed-loop)
app.add_typer(twin_app, name="twin")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; an :class:`ActmaxError` (bad input) becomes one ``error:`` line (exit 2).

    Any other exception is a bug and keeps its traceback; ``ACTMAX_DEBUG=1`` shows the traceback
    of input errors too.
    """
    import os

    from actmax.core.errors import ActmaxError

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    debug = os.environ.get("ACTMAX_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        reject_empty_arguments(list(sys.argv[1:] if argv is None else argv))
        code = app(args=argv, standalone_mode=False)
    except ActmaxError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:   # a read-only or full disk, permissions: one line with the path and the free space
        from actmax.core.bounds import os_error_line
        typer.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:   # Ctrl-C: where the run stopped and how to continue it
        from actmax.core.interrupts import interrupt_message
        typer.echo(interrupt_message(), err=True)
        sys.exit(130)
    except typer.Abort as exc:   # click turns a Ctrl-C into Abort in non-standalone mode
        from actmax.core.interrupts import interrupt_message
        ctrl_c = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        typer.echo(interrupt_message() if ctrl_c else f"aborted{': ' + str(exc) if str(exc) else ''}", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code != 0:  # click returns 130 after Ctrl-C in non-standalone mode
        if code == 130:
            from actmax.core.interrupts import interrupt_message
            typer.echo(interrupt_message(), err=True)
        sys.exit(code)

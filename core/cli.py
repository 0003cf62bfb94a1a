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

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="actmax: most and least exciting inputs (MEIs/LEIs) of visual neurons.")


@app.callback()
def _root() -> None:
    """actmax: most and least exciting inputs (MEIs/LEIs) of visual neurons."""

KINDS = ("generators", "optimizers", "scorers")


@app.command("list")
def list_parts(kind: Optional[str] = typer.Argument(None, help="generators, optimizers or scorers (default: all)"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List registered parts (built-in and plugins) with a one-line description each."""
    from core.registry import registry_for

    kinds = [kind] if kind else list(KINDS)
    table = {k if k.endswith("s") else k + "s": registry_for(k).describe() for k in kinds}
    if as_json:
        typer.echo(json.dumps(table, indent=2))
        return
    for k, parts in table.items():
        typer.echo(f"{k}:")
        width = max((len(n) for n in parts), default=0)
        for name, desc in parts.items():
            typer.echo(f"  {name.ljust(width)}  {desc}")


@app.command("weights")
def weights_cmd(download: Optional[str] = typer.Option(None, "--download", help="fetch this known weight file from the Hugging Face hub"),
                as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List known pretrained weights: which are present locally (and where) and how to get the rest."""
    from core.weights import resolve, weights_table

    if download:
        typer.echo(str(resolve(download)))
        return
    rows = weights_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = f"present  {row['path']}  ({row['source']})" if row["present"] else "missing"
        typer.echo(f"{row['name']}: {state}\n    {row['description']}; file {row['file']}; "
                   f"hub {row['hub_repo'] or '-'}; env {row['env_var']}")
        if row["problem"]:
            typer.echo(f"    problem: {row['problem']}")
        elif not row["present"]:
            typer.echo(f"    to get it: {row['how_to_get']}")



def _int_list(text: str | None) -> list[int] | None:
    if text is None or text.strip().lower() in ("", "all"):
        return None
    try:
        return [int(x) for x in text.replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of integers, got {text!r}") from None


@app.command("evolve")
def evolve_cmd(
    generator: List[str] = typer.Option(["gabor"], "--generator", "-g", help="generator spec; repeat for paired evolution (one optimizer per space, parallel threads)"),
    scorer: str = typer.Option("model", "--scorer", "-s", help="scorer spec, e.g. model:kind=dual,n=1"),
    optimizer: str = typer.Option("cma", "--optimizer", "-o", help="optimizer spec, e.g. cma:popsize=40"),
    unit: int = typer.Option(0, help="index of the unit to drive"),
    pole: str = typer.Option("high", help="high (most exciting) or low (least exciting)"),
    generations: int = typer.Option(75, help="number of generations"),
    seed: int = typer.Option(0, help="random seed"),
    out: Path = typer.Option(..., "--out", help="run record folder"),
    device: Optional[str] = typer.Option(None, help="torch device, e.g. cuda"),
    overwrite: bool = typer.Option(False, help="replace an existing record in --out"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Closed-loop evolution of images for one unit (gradient-free ask/tell)."""
    from core.evolve import evolve

    res = evolve(generator, scorer, optimizer, unit=unit, pole=pole, generations=generations, seed=seed,
                 out_dir=out, device=device, overwrite=overwrite, progress=progress)
    _print_evolution(res, as_json)


def _print_evolution(res, as_json: bool) -> None:
    summary = {"record": str(res.out_dir), "best_score": res.best_score, "best_space": res.best_space,
               "evaluations": res.evaluations, "spaces": res.spaces}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"best score {res.best_score:.4g} in space {res.best_space} after {res.evaluations} "
                   f"evaluations; record in {res.out_dir}")


@app.command("synthesize")
def synthesize_cmd(
    generator: str = typer.Option("fourier", "--generator", "-g", help="generator spec, e.g. pixel:size=64"),
    scorer: str = typer.Option("model", "--scorer", "-s", help="differentiable scorer spec"),
    units: Optional[str] = typer.Option(None, help="comma-separated unit indices (default: all)"),
    poles: str = typer.Option("high,low", help="high (MEI), low (LEI) or both"),
    seeds: str = typer.Option("0", help="comma-separated seeds"),
    ascent: str = typer.Option("ascent", help="gradient optimizer spec, e.g. ascent:steps=300,lr=0.05"),
    out: Path = typer.Option(..., "--out", help="run record folder"),
    device: Optional[str] = typer.Option(None, help="torch device, e.g. cuda"),
    amp: bool = typer.Option(False, help="bfloat16 autocast for the forward pass (GPU)"),
    overwrite: bool = typer.Option(False, help="replace an existing record in --out"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print the per-target table as JSON"),
) -> None:
    """MEIs and LEIs of many units x seeds by batched gradient ascent."""
    from core.synthesize import synthesize

    res = synthesize(generator, scorer, units=_int_list(units), poles=[p.strip() for p in poles.split(",")],
                     seeds=_int_list(seeds) or [0], ascent=ascent, out_dir=out, device=device, amp=amp,
                     overwrite=overwrite, progress=progress)
    _print_synthesis(res, as_json)


def _print_synthesis(res, as_json: bool) -> None:
    if as_json:
        typer.echo(res.table.to_json(orient="records", indent=2))
    else:
        typer.echo(res.table.to_string(index=False))
        typer.echo(f"record in {res.out_dir}")


@app.command("resume")
def resume_cmd(record: Path = typer.Argument(..., help="run record folder of a killed run"),
               progress: bool = typer.Option(True, help="show a progress bar"),
               as_json: bool = typer.Option(False, "--json", help="print the summary as JSON")) -> None:
    """Continue a killed evolution or synthesis from its checkpoint."""
    from core.records import RunRecord

    kind = RunRecord(record).manifest().get("kind")
    if kind == "evolve":
        from core.evolve import resume_evolution
        _print_evolution(resume_evolution(record, progress=progress), as_json)
    elif kind == "synthesize":
        from core.synthesize import resume_synthesis
        _print_synthesis(resume_synthesis(record, progress=progress), as_json)
    else:
        raise ValueError(f"{record}: cannot resume a run of kind {kind!r}")


@app.command("demo")
def demo_cmd(out: Path = typer.Option(Path("demo_out"), "--out", help="output folder"),
             as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
             progress: bool = typer.Option(True, help="show progress bars")) -> None:
    """The in-silico default: MEI/LEI pairs of model neurons vs their known optima, and one evolution."""
    from core.demo import format_summary, run_demo, summary_json

    summary = run_demo(out, progress=progress and not as_json, overwrite=True)
    typer.echo(summary_json(summary) if as_json else format_summary(summary))


@app.command("benchmark")
def benchmark_cmd(
    optimizer: List[str] = typer.Option([], "--optimizer", "-o", help="optimizer spec; repeat (default: cholesky_cma, sphere_cma, cma, cma:diagonal=True, genetic, random)"),
    space: List[str] = typer.Option([], "--space", "-g", help="generator spec; repeat (default: gabor, fourier:size=32)"),
    scorer: str = typer.Option("model:kind=mixed,n=6", "--scorer", "-s", help="scorer spec (model neurons, twin, cnn...)"),
    units: Optional[str] = typer.Option(None, help="comma-separated unit indices (default: all units of the scorer)"),
    budget: int = typer.Option(3000, help="evaluations per run (75 generations x 40)"),
    popsize: int = typer.Option(40, help="images per generation"),
    noise: List[float] = typer.Option([], "--noise", help="multiplicative noise sigma; repeat (default: 0, 0.2, 0.5)"),
    seeds: int = typer.Option(1, help="number of seeds (0..seeds-1) per run configuration"),
    out: Path = typer.Option(Path("benchmark_out"), "--out", help="output folder (tables and benchmark.png)"),
    threads: Optional[int] = typer.Option(None, help="torch threads (e.g. 1)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """GECCO-2022-style optimizer benchmark: optimizers x spaces x units x noise, normalised scores."""
    from core.benchmark import DEFAULT_OPTIMIZERS, DEFAULT_SPACES, NOISE_LEVELS, run_benchmark

    res = run_benchmark(optimizer_specs=optimizer or DEFAULT_OPTIMIZERS, spaces=space or DEFAULT_SPACES,
                        scorer=scorer, units=_int_list(units), budget=budget, popsize=popsize,
                        noise=noise or NOISE_LEVELS, seeds=range(seeds), out_dir=out, progress=progress,
                        threads=threads)
    typer.echo("mean normalised score (best clean response / best of any run, per space and unit):")
    typer.echo(res.table("noise").to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"tables and benchmark.png in {res.out_dir}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn input errors into one clear line."""
    from core.errors import USER_ERRORS

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()

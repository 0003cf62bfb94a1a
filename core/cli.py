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

"""Gathering a campaign: its run records merged into tidy parquet tables, and its log."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from actmax.core.apps.campaign_spec import CELL_KINDS, Cell
from actmax.core.errors import RecordError

__all__ = ["gather", "campaign_log", "executions", "iter_records"]

RUNS_DIR, CAMPAIGN_FILE, LOG_FILE, TABLES_DIR = "runs", "campaign.json", "campaign_log.csv", "tables"
EXECUTED = ("ran", "resumed", "restarted")


# ============================================================================================
# Gather
# ============================================================================================
def _campaign_cells(root: Path) -> list[Cell]:
    path = root / CAMPAIGN_FILE
    if not path.exists():
        raise RecordError(f"{root} is not a campaign folder: {CAMPAIGN_FILE} is missing")
    try:
        data = json.loads(path.read_text())
        return [Cell.from_dict(c) for c in data["cells"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RecordError(f"{path} is corrupt: {exc}") from exc


def _cell_columns(cell: Cell) -> dict[str, Any]:
    return {"cell": cell.name, "kind": cell.kind, "scorer": cell.scorer, "space_spec": cell.space_label,
            "optimizer": cell.optimizer, "seed": cell.seed}


def gather(root: str | Path, *, out: str | Path | None = None, include_unfinished: bool = False) -> dict[str, pd.DataFrame]:
    """Merge a campaign's run records into tidy tables, written as parquet to ``out`` (default ``root/tables``).

    * ``runs``: one row per cell (record status, best score, evaluations, elapsed seconds,
      resumes, and the last invocation's action and error from ``campaign_log.csv``);
    * ``scores`` (evolve): one row per evaluated image: the cell columns plus the record's
      generation, thread, space, index, unit, score (reference images have space ``reference``);
    * ``trajectories`` (evolve): per cell, space and generation: mean, max, min and count;
    * ``synthesis`` (synthesize): one row per target: unit, pole, seed and final response.

    Only finished runs contribute scores unless ``include_unfinished``.
    """
    from actmax.core.records import RunRecord

    root = Path(root)
    cells = _campaign_cells(root)
    runs, scores, synth = [], [], []
    for cell in cells:
        path = root / RUNS_DIR / cell.name
        from actmax.core.apps.campaign import cell_status
        status = cell_status(path)
        ck = CELL_KINDS[cell.kind]
        row = {**_cell_columns(cell), "unit": ck.unit(cell), "units": ",".join(map(str, cell.units)),
               "pole": ",".join(cell.poles), "status": status, "generations": ck.generations(cell),
               "path": str(path)}
        manifest: dict[str, Any] = {}
        if status in ("finished", "interrupted"):
            manifest = RunRecord(path).manifest(verify=True)
        for key in ("best_score", "best_space", "evaluations", "elapsed_s", "generations_done", "steps_done",
                    "created", "finished", "resumed"):
            row[key] = manifest.get(key)
        row["resumed"] = int(row["resumed"] or 0)
        runs.append(row)
        if status != "finished" and not (include_unfinished and status == "interrupted"):
            continue
        got = CELL_KINDS[cell.kind].gather(cell, path, _cell_columns(cell), status)
        if got is not None:
            (scores if got[0] == "scores" else synth).append(got[1])
    runs_table = pd.DataFrame(runs)
    if (root / LOG_FILE).exists():  # what the last invocation did with each cell (e.g. failed: why)
        last = campaign_log(root).groupby("name").tail(1).set_index("name")
        runs_table["last_action"] = runs_table["cell"].map(last["action"])
        runs_table["last_error"] = runs_table["cell"].map(last["error"])
    tables: dict[str, pd.DataFrame] = {"runs": runs_table}
    if scores:
        s = pd.concat(scores, ignore_index=True)
        tables["scores"] = s
        g = s.groupby(["cell", "space", "generation"], sort=False)["score"]
        traj = g.agg(["mean", "max", "min", "count"]).reset_index()
        meta = s.drop_duplicates("cell").set_index("cell")[["space_spec", "optimizer", "seed", "unit", "pole"]]
        tables["trajectories"] = traj.join(meta, on="cell")
    if synth:
        tables["synthesis"] = pd.concat(synth, ignore_index=True)
    out_dir = Path(out) if out is not None else root / TABLES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_parquet(out_dir / f"{name}.parquet", index=False)
    return tables


def campaign_log(root: str | Path) -> pd.DataFrame:
    """Every invocation's per-cell actions (``campaign_log.csv``): how often each cell really ran."""
    path = Path(root) / LOG_FILE
    if not path.exists():
        raise RecordError(f"{root}: {LOG_FILE} is missing (the campaign never ran here)")
    table = pd.read_csv(path)
    table["error"] = table["error"].astype(object).where(table["error"].notna(), "").astype(str)
    return table


def executions(root: str | Path) -> pd.Series:
    """Number of times each cell was executed (ran, resumed or restarted) over all invocations."""
    log_table = campaign_log(root)
    return log_table[log_table["action"].isin(EXECUTED)].groupby("name").size()


def iter_records(root: str | Path) -> Iterable[tuple[Cell, Path]]:
    """(cell, record folder) of every cell the campaign folder knows."""
    root = Path(root)
    for cell in _campaign_cells(root):
        yield cell, root / RUNS_DIR / cell.name

"""Shared plumbing of the figure scripts: arguments, reading ``source_data/``, saving PNG + PDF, small stats.

Every figure script reads ``source_data/`` — our in-silico tables (made by ``make_source_data.py``)
or the paper's own download placed there in the paper's file names — runs headless (matplotlib
Agg) and writes ``<name>.png`` and ``<name>.pdf`` to ``--out``. The helpers below let each script
turn either file set into one internal form right where it reads.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPACE_COLORS = {"DeePSim": "tab:blue", "BigGAN": "tab:red", "FC": "tab:blue", "BG": "tab:red",
                "fourier": "tab:blue", "gabor": "tab:red"}
STAND_IN = {"DeePSim": "fourier", "BigGAN": "gabor"}


def arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--source-data", type=Path, default=REPO / "source_data", help="the source_data folder")
    ap.add_argument("--out", type=Path, default=HERE / "output", help="where the PNG and PDF go")
    ap.add_argument("--allow-pickle", action="store_true",
                    help="read pickled source files (.pkl) of the paper's download; pickles can run code, "
                         "so only for files you trust")
    ap.add_argument("--extras", action="store_true",
                    help="also compute and draw our alternative definitions next to the paper's (masking padded "
                         "blocks, ddof 1, ...): extra, labelled lines and stats.csv rows; the default is the paper's")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def fail(message: str) -> None:
    """One ``error:`` line on stderr and exit code 2 (bad or missing input, never a traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_pickle(path: Path, allow: bool):
    """Unpickle one of the paper's ``.pkl`` source files, only when the user allowed it (``--allow-pickle``).

    Without permission nothing is unpickled: one line names the file and the flag.
    """
    if not allow:
        fail(f"{need(path)} is a pickle (it can run code when read); pass --allow-pickle if it is your own "
             "download of the paper's source data, or provide the CSV version of the same table")
    import pickle

    with open(need(path), "rb") as fh:
        return pickle.load(fh)


def need(path: Path) -> Path:
    """The path, or one clear error saying how to make the source data."""
    if not path.exists():
        raise SystemExit(f"missing {path}; make the source data with `python figure_reproduction/make_source_data.py`")
    return path


def first_file(folder: Path, pattern: str) -> Path:
    """The first file in ``folder`` matching ``pattern`` (the example experiment), or a clear exit."""
    found = sorted(need(folder).glob(pattern))
    if not found:
        raise SystemExit(f"no {pattern} in {folder}; run make_source_data.py")
    return found[0]


def read_csv(path: Path, **kw) -> pd.DataFrame:
    return pd.read_csv(need(path), **kw)


def read_frame(csv: Path, pkl: Path, allow_pickle: bool) -> pd.DataFrame:
    """A table given as CSV or as the paper's pickled DataFrame; the CSV wins (no pickle needed)."""
    if csv.exists() or not pkl.exists():
        return read_csv(csv)
    frame = read_pickle(pkl, allow_pickle)
    if not isinstance(frame, pd.DataFrame):
        fail(f"{pkl} does not hold a table (found {type(frame).__name__})")
    return frame


INDEX_NAMES = ("Exp", "Expi", "Unnamed: 0", "area")


def split_index(df: pd.DataFrame) -> tuple[pd.Index | None, pd.DataFrame]:
    """(row labels, data) of a table whose first column may be an index (ours: ``Exp``; the paper's have none)."""
    if len(df.columns) and df.columns[0] in INDEX_NAMES:
        return pd.Index(df.iloc[:, 0]), df.iloc[:, 1:]
    return None, df


def matrix(path: Path) -> tuple[pd.Index | None, np.ndarray]:
    """Row labels (or None) and the float values of an experiments x columns table, with or without index column."""
    labels, data = split_index(read_csv(path))
    return labels, data.to_numpy(float)


def as_bool(values) -> np.ndarray:
    """Booleans from a column that may hold True/False, 1/0 or their string forms (``"False"`` is not truthy)."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    text = np.char.lower(np.asarray(arr, dtype=str))
    ok = np.isin(text, ("true", "false", "1", "0", "1.0", "0.0"))
    if not ok.all():
        raise ValueError(f"not a boolean value: {arr[~ok][0]!r}")
    return np.isin(text, ("true", "1", "1.0"))


def bool_matrix(path: Path) -> np.ndarray:
    """An experiments x blocks boolean CSV, with or without a header row of block numbers and an index column.

    The paper's script reads it with ``header=None`` although ``DataFrame.to_csv`` writes a header
    row ``0,1,...``; such a row (and a leading ``Exp`` column, as in ours) is recognised and dropped.
    """
    raw = pd.read_csv(need(path), header=None, dtype=str, keep_default_na=False).to_numpy()
    head = raw[0]
    if head[0] in ("", *INDEX_NAMES):
        head = head[1:]
    if list(head) == [str(i) for i in range(len(head))]:
        raw = raw[1:]
    if raw.size and raw[0, 0] not in ("True", "False", "true", "false", "1", "0", "1.0", "0.0"):
        raw = raw[:, 1:]
    try:
        return as_bool(raw.ravel()).reshape(raw.shape)
    except ValueError as exc:
        fail(f"{path}: {exc}")


def read_json(path: Path) -> dict:
    return json.loads(need(path).read_text())


def save(fig: plt.Figure, out: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150 if ext == "png" else None, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {out / name}.png and .pdf")


def label(space: str, paper: bool = False) -> str:
    """The paper's name ('DeePSim') on the paper's file set; 'DeePSim (fourier)' (name and stand-in) on ours."""
    return space if paper or space not in STAND_IN else f"{space} ({STAND_IN[space]})"


STATS_COLUMNS = ("figure", "panel", "area", "test", "block", "window_ms", "statistic", "pvalue", "n", "significant",
                 "correction", "subset", "ci_low", "ci_high", "note")


class Stats:
    """The statistical tests of one figure script, one row each, written to ``stats.csv`` beside its PNG.

    ``stats.csv`` is a contract (other tools read it): columns ``STATS_COLUMNS``; ``panel`` in the paper's
    naming (``4B``, ``5C``), ``block`` the 0-based column of the source array or ``first`` / ``last``,
    ``window_ms`` such as ``20-30`` (empty where none), ``significant`` after the panel's own correction
    (named in ``correction``); ``statistic`` is the test's (t, F, r) or, for a fit or a proportion, its R^2 or
    fraction (then ``pvalue`` is empty and ``ci_low`` / ``ci_high`` may hold an interval). Several scripts may share one output folder: each replaces only the rows of
    its own ``figure``.
    """

    def __init__(self, figure: str):
        self.figure = figure
        self.rows: list[dict] = []

    def add(self, panel: str, test: str, statistic: float, pvalue: float, n: int, significant: bool | str = "",
            area: str = "", block: int | str = "", window_ms: str = "", correction: str = "", subset: str = "",
            ci_low: float = float("nan"), ci_high: float = float("nan"), note: str = "") -> None:
        self.rows.append({"figure": self.figure, "panel": panel, "area": area, "test": test, "block": block,
                          "window_ms": window_ms, "statistic": float(statistic), "pvalue": float(pvalue), "n": int(n),
                          "significant": significant, "correction": correction, "subset": subset,
                          "ci_low": float(ci_low), "ci_high": float(ci_high), "note": note})

    def write(self, out: Path) -> Path:
        path = out / "stats.csv"
        mine = pd.DataFrame(self.rows, columns=list(STATS_COLUMNS))
        if path.exists():
            old = pd.read_csv(path, dtype=str, keep_default_na=False)
            if "figure" in old:
                mine = pd.concat([old[old["figure"] != self.figure], mine.astype(str)], ignore_index=True)
        mine[list(STATS_COLUMNS)].to_csv(path, index=False)
        print(f"wrote {path} ({len(self.rows)} tests of {self.figure})")
        return path


def bh_fdr(pvals) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg adjusted p-values and rejections at alpha .05 over one family (NaN = not tested).

    Equal to ``statsmodels.stats.multitest.multipletests(p, alpha=.05, method='fdr_bh')`` (the paper's)
    on finite p-values.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(pvals, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method="bh")
    return q, np.isfinite(q) & (q <= 0.05)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-based confidence interval (NaN when fewer than two values)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        m = float(v.mean()) if v.size else float("nan")
        return m, float("nan"), float("nan")
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1)) * se
    return m, m - half, m + half


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    from scipy.stats import norm

    if n == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at k = 0 (k = n) the lower (upper) end is exactly 0 (1); rounding must not move it past k / n
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def fmt_p(p: float) -> str:
    return "nan" if not np.isfinite(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")

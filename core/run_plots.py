"""Plots written into run records: evolution trajectories and MEI/LEI pairs (headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_FIGURE_KEYS = ("figsize", "dpi", "facecolor", "edgecolor", "layout", "constrained_layout", "tight_layout")


class HeadlessPyplot:
    """The few ``pyplot`` calls actmax uses, on private Agg canvases.

    pyplot keeps global state (the backend, a list of open figures): ``matplotlib.use("Agg")`` in a
    library switches the caller's backend (a notebook's inline or a GUI one) behind their back.
    Figures made here belong to nobody's pyplot and are written with ``fig.savefig``.
    """

    rcParams = matplotlib.rcParams

    @staticmethod
    def figure(**kwargs: object) -> Figure:
        fig = Figure(**kwargs)  # type: ignore[arg-type]
        FigureCanvasAgg(fig)
        return fig

    @classmethod
    def subplots(cls, nrows: int = 1, ncols: int = 1, **kwargs: object) -> tuple[Figure, object]:
        fig = cls.figure(**{k: kwargs.pop(k) for k in _FIGURE_KEYS if k in kwargs})
        return fig, fig.subplots(nrows, ncols, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def close(fig: object = None) -> None:
        """Nothing to release: no pyplot registry holds these figures."""


plt = HeadlessPyplot()


def plot_trajectory(traj: pd.DataFrame, path: str | Path, *, pole: str = "high",
                    reference: float | None = None, title: str | None = None) -> None:
    """Mean and best score of each space's population against images shown (``images_shown``, so that
    paired spaces with different population sizes are compared at equal budget), else generation."""
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    x = "images_shown" if "images_shown" in traj else "generation"
    for space, d in traj.groupby("space"):
        d = d.sort_values("generation")
        line, = ax.plot(d[x], d["mean"], label=f"{space} mean")
        ax.plot(d[x], d["best"], ls="--", color=line.get_color(), label=f"{space} best")
    if reference is not None:
        ax.axhline(reference, color="k", lw=0.8, ls=":", label="reference")
    ax.set_xlabel("images shown (per space)" if x == "images_shown" else "generation")
    ax.set_ylabel("response" + (" (LEI search)" if pole == "low" else ""))
    ax.set_title(title or "evolution trajectory", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_image_rows(rows: Sequence[Sequence[torch.Tensor]], path: str | Path, *, row_labels: Sequence[str],
                    col_labels: Sequence[str] | Sequence[Sequence[str]], cell: float = 1.4,
                    captions: Sequence[Sequence[str]] | None = None, title: str | None = None,
                    footer: str | None = None) -> None:
    """A labelled grid of (C, H, W) images in [0, 1] (e.g. unit x [MEI, optimum, LEI, optimum]).

    ``col_labels`` is one list for the top row, or one list per row; ``captions`` (one string
    per tile, e.g. its response) is written under each tile; ``footer`` under the grid.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    per_row = bool(col_labels) and not isinstance(col_labels[0], str)
    extra = (0.25 if title else 0) + (0.12 * (footer.count("\n") + 1) if footer else 0)
    height = (cell + (0.45 if per_row else 0) + (0.2 if captions else 0)) * n_rows + 0.3 + extra
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, height), dpi=120, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j < len(row) and row[j] is not None:
                img = row[j].detach().float().cpu().clamp(0, 1)
                if img.shape[0] == 1:
                    ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(img.permute(1, 2, 0).numpy())
            else:
                ax.axis("off")
            labels = col_labels[i] if per_row else (col_labels if i == 0 else ())
            if j < len(labels) and labels[j]:
                ax.set_title(labels[j], fontsize=7)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
            if captions is not None and j < len(captions[i]) and captions[i][j]:
                ax.set_xlabel(captions[i][j], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    if footer:
        fig.text(0.01, 0.005, footer, fontsize=6.5, va="bottom", ha="left")
    fig.tight_layout(rect=(0, (0.12 * (footer.count("\n") + 1) / height) if footer else 0, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)

"""Figures for screens and analyses (matplotlib, Agg backend: works headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from actmax.core.run_plots import plt  # headless figures; the caller's pyplot backend is left alone
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

__all__ = ["plot_mai_lai", "plot_screen_summary", "plot_activation_curve", "plot_trajectory_analysis",
           "plot_gabor_comparison", "plot_bidirectional", "plot_similarity_matrix"]


def _save(fig: Any, path: str | Path) -> Path:
    from actmax.core import files as fileio
    import io

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    fileio.atomic_write_bytes(path, buf.getvalue())
    return path


def _show(ax: Any, image: Any) -> None:
    img = image.detach().float().cpu().clamp(0, 1).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    if img.ndim == 2:
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(img, 0, 1))
    ax.set_xticks([]), ax.set_yticks([])


def _grid(images: torch.Tensor, pad: int) -> np.ndarray:
    """(n, C, H, W) in [0, 1] -> one (H, n*(W+pad)-pad, 3) strip on white."""
    imgs = images.detach().float().cpu().clamp(0, 1)
    if imgs.shape[1] == 1:
        imgs = imgs.expand(-1, 3, -1, -1)
    n, _, h, w = imgs.shape
    strip = np.ones((h, n * (w + pad) - pad if n else 1, 3))
    for j in range(n):
        strip[:, j * (w + pad): j * (w + pad) + w] = imgs[j].permute(1, 2, 0).numpy()
    return strip


def plot_mai_lai(mais: torch.Tensor, lais: torch.Tensor, top_values: Sequence[float], bottom_values: Sequence[float],
                 path: str | Path, *, title: str = "") -> Path:
    """Two labelled rows: the most activating images (best first) and the least activating (lowest first)."""
    k = max(len(mais), len(lais))
    h, w = mais.shape[-2:]
    pad = max(2, w // 12)
    fig, axes = plt.subplots(2, 1, figsize=(1.1 * k + 0.8, 2.9), dpi=110, squeeze=False)
    for row, (imgs, vals, label) in enumerate(((mais, top_values, "MAIs"), (lais, bottom_values, "LAIs"))):
        ax = axes[row][0]
        ax.imshow(_grid(imgs, pad), interpolation="nearest")
        ax.set_xticks([(w + pad) * j + w / 2 for j in range(len(imgs))],
                      [f"{float(v):.3g}" for v in vals[:len(imgs)]], fontsize=7)
        ax.set_yticks([])
        ax.tick_params(length=0)
        ax.set_ylabel(label, fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_screen_summary(result: Any, path: str | Path, *, max_curves: int = 12) -> Path:
    """Activation curves (approximate quantile functions) of the first units and population histograms."""
    stats: pd.DataFrame = result.stats
    state = result.state
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.1), dpi=110)
    qs = np.linspace(0, 1, 101)
    curves, _ = state.quantiles(qs)
    for u in range(min(max_curves, state.units)):
        axes[0].plot(qs, curves[u], lw=1, label=result.unit_names[u])
    axes[0].set_xlabel("rank (fraction of images)")
    axes[0].set_ylabel("response")
    axes[0].set_title("activation curves (sorted responses)", fontsize=9)
    if state.units <= max_curves:
        axes[0].legend(fontsize=6, frameon=False)
    for ax, col, label in ((axes[1], "gini", "Gini (units with responses >= 0)"), (axes[2], "skewness", "skewness"),
                           (axes[3], "max", "max response")):
        vals = stats[col].to_numpy(dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            ax.hist(vals, bins=min(30, max(5, vals.size)), color="0.4")
        else:
            ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("units")
    fig.suptitle(f"screen of {state.n} images x {state.units} units", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_activation_curve(responses: Any, path: str | Path, *, samples: Sequence[int] | None = None,
                          title: str = "") -> Path:
    """Sorted responses of one unit, with adaptively sampled images marked."""
    from actmax.core.apps.analysis import activation_curve

    r = np.asarray(responses, dtype=np.float64).ravel()
    frac, sorted_r = activation_curve(r)
    fig, ax = plt.subplots(figsize=(4.5, 3.1), dpi=110)
    ax.plot(frac, sorted_r, color="k", lw=1.2, label="sorted responses")
    if samples is not None and len(samples):
        ranks = np.argsort(np.argsort(r, kind="stable"), kind="stable")
        pos = ranks[np.asarray(samples)] / max(r.size - 1, 1)
        ax.scatter(pos, r[np.asarray(samples)], s=9, color="tab:red", zorder=3, label="adaptive samples")
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel("rank (fraction of images)")
    ax.set_ylabel("response")
    ax.set_title(title or "activation curve", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_trajectory_analysis(scores: pd.DataFrame, analysis: pd.DataFrame, path: str | Path, *,
                             pole: str = "high", normalise: str = "max") -> Path:
    """Normalised mean trajectory per space with its exponential fit, time constant and success p-value."""
    from actmax.core.apps.analysis import ExponentialFit, normalise_trajectory

    df = scores if "space" in scores.columns else scores.assign(space="all")
    df = df[df["space"] != "reference"]
    sign = 1.0 if pole == "high" else -1.0
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=110)
    for _, row in analysis.iterrows():
        d = df[df["space"] == row["space"]].groupby("generation")["score"].mean()
        gens = d.index.to_numpy(dtype=np.float64)
        try:
            norm = normalise_trajectory(sign * d.to_numpy(), mode=normalise)
        except ValueError:
            continue
        line, = ax.plot(gens, norm, lw=1.2,
                        label=f"{row['space']}: tau={row['tau']:.3g}"
                              + ("" if row["tau_converged"] else " (not converged)")
                              + f", p={row['p_value']:.2g}" + (" (success)" if row["success"] else ""))
        if np.isfinite(row["tau"]):
            fit = ExponentialFit(row["tau"], row["y_inf"], row["y0"], row["fit_r2"], bool(row["tau_converged"]))
            ax.plot(gens, fit.predict(gens - gens.min()), ls="--", color=line.get_color(), lw=1)
    ax.set_xlabel("generation (block)")
    ax.set_ylabel(f"{normalise}-normalised response" + (" (negated, LEI)" if pole == "low" else ""))
    ax.set_title("evolution trajectories and exponential fits", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_gabor_comparison(image: Any, path: str | Path, *, title: str = "", folds: Sequence[int] = range(2, 9)) -> Path:
    """An image, its best-fitting Gabor, the residual, its radial power spectrum and symmetry profile."""
    from actmax.core.apps.analysis import _grey, fit_gabor, radial_power_spectrum, rotational_symmetry

    img = _grey(image)
    fit = fit_gabor(img)
    spec = radial_power_spectrum(img)
    h, w = img.shape
    try:
        sym = rotational_symmetry(img, folds=folds, center=(min(max(fit.params["x0"], 2.0), w - 3.0),
                                                          min(max(fit.params["y0"], 2.0), h - 3.0)))
    except ValueError:
        sym = {int(n): float("nan") for n in folds}
    fig, axes = plt.subplots(1, 5, figsize=(14, 2.9), dpi=110)
    _show(axes[0], img)
    axes[0].set_title("image", fontsize=9)
    _show(axes[1], np.clip(fit.image, 0, 1))
    axes[1].set_title(f"best Gabor (R2={fit.r2:.2f})", fontsize=9)
    res = img - fit.image
    lim = max(float(np.abs(res).max()), 1e-6)
    axes[2].imshow(res, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_xticks([]), axes[2].set_yticks([])
    axes[2].set_title("residual", fontsize=9)
    ok = (spec.frequency > 0) & np.isfinite(spec.power) & (spec.power > 0)
    axes[3].loglog(spec.frequency[ok], spec.power[ok], color="k")
    axes[3].set_xlabel("cycles / pixel")
    axes[3].set_title(f"radial power (peak {spec.peak_frequency:.3g})", fontsize=9)
    axes[4].bar([str(n) for n in sym], list(sym.values()), color="0.4")
    axes[4].axhline(0, color="k", lw=0.6)
    axes[4].set_ylim(-1.05, 1.05)
    axes[4].set_xlabel("fold n")
    axes[4].set_title("rotational symmetry index", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_bidirectional(table: pd.DataFrame, path: str | Path, *, labels: Sequence[str] | None = None) -> Path:
    """Excitation (max - baseline) against suppression (baseline - min), one point per unit."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=110)
    e, s = table["excitation"].to_numpy(float), table["suppression"].to_numpy(float)
    axes[0].scatter(s, e, s=14, color="k")
    top = float(np.nanmax(np.concatenate([e, s, [1e-9]])))
    axes[0].plot([0, top], [0, top], ls=":", color="0.5", lw=1)
    if labels is not None and len(labels) <= 40:
        for x, y, lab in zip(s, e, labels):
            axes[0].annotate(str(lab), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    axes[0].set_xlabel("suppression: baseline - min")
    axes[0].set_ylabel("excitation: max - baseline")
    axes[0].set_title("driven above vs below baseline", fontsize=9)
    idx = table["index"].to_numpy(float)
    idx = idx[np.isfinite(idx)]
    axes[1].hist(idx, bins=np.linspace(0, 1, 21), color="0.4")
    axes[1].set_xlabel("suppression share S / (E + S)")
    axes[1].set_ylabel("units")
    axes[1].set_title("bidirectional index", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_similarity_matrix(matrix: Any, labels: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """A labelled matrix of pairwise image similarities or distances."""
    m = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(labels), 0.8 + 0.45 * len(labels)), dpi=110)
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)

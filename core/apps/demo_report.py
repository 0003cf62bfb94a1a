"""The demo's pictures and text: the evolution figure per neuron kind, the summary and the README.

The demo's settings (``NOISE``, ``OPTIMIZER``, ...) are read from :mod:`actmax.core.apps.demo`
inside the functions (that module imports this one)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _fmt(x: float) -> str:
    """A response for a tile: 2 decimals, or 3 significant digits below 1."""
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def _wrap(text: str, width: int = 120) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ") for line in text.splitlines())


# -- pictures --------------------------------------------------------------------------------
def _plot_evolution(kind: str, truth: dict[str, Any], grad: dict[str, Any], mei: torch.Tensor,
                    details: dict[str, Any], evo: dict[str, Any], path: Path) -> None:
    """Two panels (clean / Poisson) of responses vs evaluations per space, and the images found."""
    from actmax.core.apps.demo import NOISE, OPTIMIZER, budget_note  # the demo's settings (demo imports this module)

    from actmax.core.run_plots import plt   # headless figures; the caller's pyplot backend is left alone

    spaces = list(details["clean"])
    colors = dict(zip(spaces, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    n_img = 2 * len(spaces) + 2
    fig = plt.figure(figsize=(max(8.0, 1.35 * n_img), 6.9), dpi=120)
    grid = fig.add_gridspec(3, n_img, height_ratios=[2.3, 0.36, 0.75])
    half = n_img // 2
    axes = [fig.add_subplot(grid[0, :half]), fig.add_subplot(grid[0, half:])]
    titles = {"clean": "clean neuron", "noisy": f"Poisson spike counts ({NOISE})"}
    for cond in titles:
        n = evo[cond][spaces[0]]["replicates"]
        medians = ", ".join(f"{sp} {evo[cond][sp]['fraction_of_optimum']:.2f}" for sp in spaces)
        titles[cond] += (f" - first of {n} replicates shown\nmedian best image / optimum: {medians}" if n > 1
                         else f"\nbest image / optimum: {medians}")
    for ax, cond in zip(axes, ("clean", "noisy")):
        for space, b in details[cond].items():
            t = b["trajectory"]
            evals = b["evaluations"]
            ax.plot(evals, np.maximum.accumulate(t["best"].to_numpy()), color=colors[space], lw=1.6,
                    label=f"{space} ({b['dim']}-d): best so far")
            ax.plot(evals, t["mean"].to_numpy(), color=colors[space], lw=0.9, ls="--",
                    label=f"{space}: generation mean")
            if cond == "noisy":
                ax.plot(evals, b["clean_per_generation"], color=colors[space], lw=0.9, ls=":",
                        label=f"{space}: generation's best, re-scored clean")
        ax.axhline(truth["optimum"], color="k", lw=1.0, label=f"known optimum {truth['optimum']:.2f}")
        ax.axhline(grad["mei"]["response"], color="0.45", lw=1.0, ls="-.",
                   label=f"gradient MEI {grad['mei']['response']:.2f}")
        ax.axhline(truth["baseline"], color="0.7", lw=0.8, ls=":", label=f"grey baseline {truth['baseline']:.2f}")
        ax.set_title(titles[cond], fontsize=8)
        ax.set_xlabel("evaluations (images shown)", fontsize=8)
        ax.set_ylabel("response (model rate)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes[1].get_legend_handles_labels()
    legend_ax = fig.add_subplot(grid[1, :])
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, fontsize=6.5, frameon=False, loc="center", ncol=len(spaces) + 1)
    lo = min(a.get_ylim()[0] for a in axes)
    hi = max(a.get_ylim()[1] for a in axes)
    for a in axes:
        a.set_ylim(lo, hi)
    tiles = []
    for cond in ("clean", "noisy"):
        for space, b in details[cond].items():
            flip = "\n= −optimum" if b["sign_flipped"] else ""
            tiles.append((b["image"], f"{space}, {cond}", f"clean r={_fmt(b['clean'])}{flip}"))
    tiles.append((mei, "gradient MEI", f"r={_fmt(grad['mei']['response'])}"))
    tiles.append((truth["optimal_image"], "known optimum", f"r={_fmt(truth['optimum'])}"))
    for j, (img, label, cap) in enumerate(tiles):
        ax = fig.add_subplot(grid[2, j])
        img = img.detach().float().clamp(0, 1).cpu()
        ax.imshow((img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(label, fontsize=7)
        ax.set_xlabel(cap, fontsize=7)
    note = ""
    if truth["sign_invariant"] and truth["unique"]["high"]:
        note = ("  A '= −optimum' image is the contrast-reversed optimum: this cell's response depends on the "
                "square of the feature's projection, so −e drives it exactly as much as +e.")
    span = truth["optimum"] - truth["baseline"]
    if any(abs(b["clean"] - truth["baseline"]) < 0.05 * span for b in details["noisy"].values()):
        note += ("  An image at the grey baseline means the noisy search retreated to a blank image: the small gains "
                 "that lead towards the feature drown in the noise, while most random images drive the cell no "
                 "better than grey.")
    note += "  Measured budget to success (0.9 of the optimum; benchmarks/bench_demo_budgets.py): " + "; ".join(
        budget_note(sp, kind) for sp in spaces) + "."
    fig.suptitle(f"{kind} cell: paired evolution ({OPTIMIZER}, {' and '.join(spaces)}, same budget each) "
                 "vs the gradient MEI and the known optimum", fontsize=8.5)
    fig.text(0.01, 0.005, _wrap("Noisy panel: best-so-far is the highest *observed* count rate, which noise inflates "
                                "(it can exceed the optimum); the dotted line re-scores each generation's best image "
                                "on the clean neuron." + note, 170), fontsize=6)
    fig.tight_layout(rect=(0, 0.085, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


# -- text ------------------------------------------------------------------------------------
def format_summary(summary: dict[str, Any]) -> str:
    """The demo's one-screen table as plain text."""
    spaces = list(summary["units"][0]["evolution"]["clean"])
    seeds = summary["config"]["evolution"]["replicates"]
    seed_text = " and ".join(f"{n} ({c})" for c, n in seeds.items())
    head = (f"{'unit':<10} {'MEI/opt':>7} {'LEI gap':>7} {'nat best':>8} {'MEI/nat':>7} "
            + " ".join(f"{s[:7] + ' ' + c:>13}" for c in ("clean", "noisy") for s in spaces))
    lines = ["MEI/opt: gradient MEI response / known optimum.  LEI gap: (LEI - floor) / (optimum - floor).",
             "nat best: best natural patch's response; MEI/nat: MEI / that.  <space> clean|noisy: noise-free",
             "response of the evolution's best image / optimum (noisy: picked on Poisson counts), median over",
             f"replicates: {seed_text}; * = some replicates ended at the grey baseline.", head]
    for u in summary["units"]:
        ev = u["evolution"]
        cells = " ".join(f"{ev[c][s]['fraction_of_optimum']:>12.3f}{'*' if ev[c][s]['stuck_at_baseline'] else ' '}"
                         for c in ("clean", "noisy") for s in spaces)
        mn = u["natural"]["mei_over_best_natural"]
        lines.append(f"{str(u['unit']) + ':' + u['kind']:<10} {u['mei']['fraction_of_optimum']:>7.3f} "
                     f"{u['lei']['gap_to_floor']:>7.3f} {u['natural']['best']:>8.2f} "
                     f"{(f'{mn:.2f}' if mn is not None else '-'):>7} {cells}")
    flips = [f"{u['kind']} ({c} {s})" for u in summary["units"] for c in ("clean", "noisy")
             for s in spaces if u["evolution"][c][s]["sign_flipped"]]
    flips += [f"{u['kind']} (gradient MEI)" for u in summary["units"] if u["mei"]["sign_flipped"]]
    if flips:
        lines.append("sign-flipped optimum, correct for a quadratic feature: " + ", ".join(flips))
    lines.append("budget to success (clean, 0.9 of optimum, measured): " + budget_range_text(spaces))
    for s in summary["spaces_skipped"]:
        lines.append(f"skipped {s['space']} (no {s['missing']} weights): {s['how_to_add']}")
    lines.append(f"pictures and README.txt in {summary['out']} ({summary['elapsed_s']:.0f} s)")
    return "\n".join(lines)


def budget_range_text(spaces: list[str]) -> str:
    """One line: per space, the clean budget range over kinds at which it succeeds, or that none measured does."""
    from actmax.core.apps.demo import MEASURED_BUDGETS  # the demo's settings (demo imports this module)

    out = []
    for sp in spaces:
        m = MEASURED_BUDGETS.get(sp)
        if m is None:
            out.append(f"{sp} not measured")
            continue
        hits = [n for n in m["clean"].values() if n is not None]
        if len(hits) == len(m["clean"]):
            out.append(f"{sp} {min(hits)}-{max(hits)} images")
        else:
            best = m.get("clean_best", {}).values()
            out.append(f"{sp} not within {m['clean_budget']} images (best {min(best):.2f}-{max(best):.2f})")
    return "; ".join(out)


def readme_text(summary: dict[str, Any]) -> str:
    """``README.txt`` of the demo folder: what each picture shows and how to make it on one's own neuron."""
    from actmax.core.apps.demo import ASCENT, GENERATOR, NOISE  # the demo's settings (demo imports this module)

    kinds = summary["config"]["kinds"]
    ev = summary["config"]["evolution"]
    u0 = summary["units"][0]
    ratios = ", ".join(f"{u['kind']} {u['natural']['mei_over_best_natural']:.1f}x" for u in summary["units"]
                       if u["natural"]["mei_over_best_natural"])
    reps = ", ".join(f"{n} {c}" for c, n in ev["replicates"].items())
    skipped = "\n".join(f"  skipped {s['space']} ({s['missing']} missing): {s['how_to_add']}"
                        for s in summary["spaces_skipped"]) or "  all present: they are in the comparison"
    return f"""actmax demo: ground-truth model neurons ({', '.join(kinds)}), one unit each, whose optimal stimuli
are known in closed form (scorers/model_neurons.py). Numbers: summary.json (`actmax demo --json`
prints it); the table printed by `actmax demo` is explained below. Run records (scores, codes,
images; `actmax.load_run(path)` reads one back): records/.

mei_lei.png
  One row per unit: the MEI and LEI found by gradient ascent in pixel space ({GENERATOR},
  {ASCENT}), beside the known optimum and the known floor. Under each tile: the unit's
  response r (MEI: % of the optimum). The footer says where an optimum or floor is not unique
  and so the picture may rightly differ from the known one (phase-invariant complex cells,
  sign-invariant quadratic features, flat floors).
  Your neuron, given a differentiable model of it (a digital twin or a CNN unit):
    actmax synthesize -g pixel:size=64 -s SCORER --units 0,1 --poles high,low --out runs/mei

evolution_<kind>.png
  A paired gradient-free evolution on one unit: one {ev['optimizers'][0]} per space, {ev['generations']} generations,
  in {' and '.join(ev['spaces'])} at once (each generation's images of all spaces are scored together, as
  a rig shows them), on the clean neuron (left) and on Poisson spike counts (right; {NOISE}).
  Response vs images shown: best so far (solid) and generation mean (dashed) per space, the
  gradient MEI's response and the known optimum as horizontal lines. Under noise the best so far
  is the highest *observed* count rate, inflated by noise (it can pass the optimum); the dotted
  line re-scores each generation's best image on the clean neuron. Below: each space's best image
  with its noise-free response. A quadratic (sign-invariant) cell may end on the contrast-reversed
  optimum ("= -optimum"): it drives the cell exactly as much, so that is a correct answer.
  The same on a model neuron, and on your recorded neuron through a rig exchange folder:
    actmax evolve -g gabor -g fourier:size=16 -s "{u0['noisy_scorer']}" --out runs/evo
    actmax evolve -g gabor -g fourier:size=16 -s rig:exchange=/path/to/exchange --unit 0 --out runs/evo

What budget succeeds (measured with benchmarks/bench_demo_budgets.py: images until the reported
image's noise-free response reaches 0.9 of the optimum, CMA-ES with 40 images per generation):
{chr(10).join("  " + u["kind"] + ": " + "; ".join(u["budget_to_success"].values()) for u in summary["units"])}
  The 8-d Gabor space contains the optimum and CMA-ES finds it within a few hundred images; in
  the 288-d Fourier space (16 px, upsampled) it does not reach 0.9 within 60000 images. Without
  a model of the neuron, search a small space that contains what the neuron likes; with a
  model, use gradient synthesis (seconds, mei_lei.png).

natural_vs_mei.png
  One row per unit: the 3 most exciting of {summary['config']['natural_patches']} natural image patches (scikit-image
  photographs), the gradient MEI and LEI, and the 3 least exciting patches, each with its response.
  MEI / best natural patch: {ratios}.
  Your neuron over your image set:
    actmax screen IMAGES_FOLDER -s SCORER --out runs/screen

The table
  MEI/opt    gradient MEI response / known optimum (1 = the optimum).
  LEI gap    (LEI response - floor) / (optimum - floor): 0 = the floor reached.
  nat best   response to the best natural patch; MEI/nat = MEI response / that.
  <space> clean|noisy   noise-free response of the image the evolution reports (noisy: picked on
             the Poisson counts) / optimum, median over replicates (independent optimizer threads of
             the same run: {reps}).
             * = some replicates ended at the grey baseline: the noisy search retreated to a blank
             image, because the small gains leading towards the feature drown in the noise while
             most random images drive the cell no better than grey.

Pretrained spaces (DeePSim, BigGAN) join the comparison when their weights are on this machine
(nothing is downloaded; on a CPU each adds several minutes: 256 px images, 3000 per run):
{skipped}
"""


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2)



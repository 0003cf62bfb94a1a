"""The main job on the embedded in-silico lab: MEI/LEI pairs and one closed-loop evolution.

Ground-truth model neurons (simple, complex, dual-feature; known optima) stand in for a
recorded population. The demo synthesises every unit's MEI and LEI by batched gradient
ascent in pixel space, compares them with the known optima, runs one CMA-ES evolution in
Gabor space (gradient-free, as on a real neuron) and compares it with the gradient MEI.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actmax.core.evolve import evolve
from actmax.core.records import atomic_write_json
from actmax.core.run_plots import plot_image_rows
from actmax.core.synthesize import synthesize

SCORER = "model:kind=mixed,n=4,size=64,seed=0"
GENERATOR = "pixel:size=64"
ASCENT = "ascent:steps=300,lr=0.05,jitter=1"
EVOLUTION = {"generator": "gabor:size=64", "optimizer": "cma:popsize=40", "generations": 75}


def run_demo(out: str | Path, *, evolve_unit: int = 2, seed: int = 0, progress: bool = True,
             overwrite: bool = False) -> dict[str, Any]:
    """Run the demo into ``out``; return the summary (also written to ``out/summary.json``)."""
    from actmax.core.registry import scorers

    out = Path(out)
    neurons = scorers.create(SCORER)
    units = list(range(neurons.units))
    syn = synthesize(GENERATOR, SCORER, units=units, poles=("high", "low"), seeds=(seed,), ascent=ASCENT,
                     out_dir=out / "synthesis", progress=progress, overwrite=overwrite)
    baseline = neurons.baseline()
    rows: list[dict[str, Any]] = []
    pictures = []
    for u in units:
        kind = neurons.kinds[u]
        mei, lei = syn.image(u, "high"), syn.image(u, "low")
        opt_hi, opt_lo = neurons.optimal_stimulus("high", [u])[0], neurons.optimal_stimulus("low", [u])[0]
        pictures.append([mei, opt_hi, lei, opt_lo])
        for pole, img in (("high", mei), ("low", lei)):
            if pole == "low" and kind != "dual":
                continue  # LEIs are scored for dual units: the ones with an elevated baseline to push down
            resp = float(neurons(img[None])[0, u])
            optimum = float(neurons.optimal_response(pole, [u])[0])
            rows.append({"unit": u, "kind": kind, "pole": pole, "response": round(resp, 4),
                         "optimum_response": round(optimum, 4), "baseline": round(float(baseline[u]), 4),
                         "fraction_of_optimum": round(resp / optimum, 4) if pole == "high" else None,
                         "correlation_with_optimum": round(float(neurons.similarity_to_optimum(img[None], [u], pole)[0]), 4)})
    plot_image_rows(pictures, out / "mei_lei_pairs.png", row_labels=neurons.unit_names,
                    col_labels=["MEI", "known optimum", "LEI", "known LEI optimum"])
    ev = evolve(EVOLUTION["generator"], SCORER, EVOLUTION["optimizer"], unit=evolve_unit, pole="high",
                generations=EVOLUTION["generations"], seed=seed, out_dir=out / "evolution", progress=progress,
                overwrite=overwrite)
    gradient_mei = float(syn.responses[[i for i, t in enumerate(syn.targets)
                                        if t.unit == evolve_unit and t.pole == "high"][0]])
    plot_image_rows([[ev.best_image, syn.image(evolve_unit, "high"), neurons.optimal_stimulus("high", [evolve_unit])[0]]],
                    out / "evolution_vs_gradient.png", row_labels=[neurons.unit_names[evolve_unit]],
                    col_labels=["evolved (CMA, Gabor)", "gradient MEI", "known optimum"])
    summary = {
        "scorer": SCORER, "synthesis": {"generator": GENERATOR, "ascent": ASCENT, "record": str(out / "synthesis")},
        "table": rows,
        "evolution": {**EVOLUTION, "unit": evolve_unit, "kind": neurons.kinds[evolve_unit],
                      "evaluations": ev.evaluations, "best_response": round(ev.best_score, 4),
                      "gradient_mei_response": round(gradient_mei, 4),
                      "fraction_of_gradient_mei": round(ev.best_score / gradient_mei, 4),
                      "record": str(out / "evolution")},
        "pictures": [str(out / "mei_lei_pairs.png"), str(out / "evolution_vs_gradient.png"),
                     str(out / "evolution" / "trajectory.png"), str(out / "evolution" / "best.png")],
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The demo's table as plain text."""
    lines = [f"{'unit':>4}  {'kind':<8} {'pole':<5} {'response':>9} {'optimum':>9} {'baseline':>9} "
             f"{'frac':>6} {'corr':>6}"]
    for r in summary["table"]:
        frac = "" if r["fraction_of_optimum"] is None else f"{r['fraction_of_optimum']:.3f}"
        lines.append(f"{r['unit']:>4}  {r['kind']:<8} {r['pole']:<5} {r['response']:>9.3f} {r['optimum_response']:>9.3f} "
                     f"{r['baseline']:>9.3f} {frac:>6} {r['correlation_with_optimum']:>6.3f}")
    e = summary["evolution"]
    lines.append(f"evolution ({e['optimizer']} in {e['generator']}, unit {e['unit']} {e['kind']}, "
                 f"{e['evaluations']} evaluations): best {e['best_response']:.3f} = "
                 f"{100 * e['fraction_of_gradient_mei']:.1f}% of the gradient MEI ({e['gradient_mei_response']:.3f})")
    lines.append("pictures: " + ", ".join(summary["pictures"]))
    return "\n".join(lines)


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2)


if __name__ == "__main__":  # pragma: no cover
    print(format_summary(run_demo("demo_out", overwrite=True)))

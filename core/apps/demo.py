"""The main job on the embedded in-silico lab: what actmax is for, in about 20 CPU-s, no downloads.

Ground-truth model neurons (``scorers/model_neurons.py``; one unit per kind in
:data:`DEMO_KINDS`) stand in for recorded neurons whose optimal stimuli are known. For every
unit the demo

1. synthesises the MEI and LEI by gradient ascent in pixel space and scores each against the
   known optimum (MEI) or floor (LEI), noting where the optimum is not unique;
2. runs a *paired* gradient-free evolution (CMA-ES, one optimizer per space, images scored
   together as a rig would) in weight-free generator spaces of different dimension
   (:data:`SPACES`), once on the clean neuron and once with Poisson spike-count noise,
   compared with the gradient MEI and the optimum (DeePSim/BigGAN join when their weights
   are on this machine);
3. screens natural image patches for the unit's best and worst natural stimuli, so that
   "the MEI beats every natural image" can be seen;
4. writes a summary (``summary.json``, a one-screen table) and ``README.txt`` saying what each
   picture shows and which command makes it for one's own neuron.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from actmax.core.evolve import EvolutionResult, evolve
from actmax.core.records import atomic_write_bytes, atomic_write_json
from actmax.core.registry import generators, parse_spec, scorers
from actmax.core.run_plots import plot_image_rows
from actmax.core.synthesize import DEFAULT_RECIPE, synthesize
from actmax.core.threads import single_threaded
from actmax.core.apps.demo_report import (_fmt, _plot_evolution, _wrap, budget_range_text,  # noqa: F401,E402
                                         format_summary, readme_text, summary_json)

#: One unit of each kind of model neuron (adding a kind to ``scorers/model_neurons.py`` = one line here).
DEMO_KINDS: tuple[str, ...] = ("simple", "complex", "dual")
SIZE = 64
GENERATOR = f"pixel:size={SIZE}"
#: The synthesis recipe and budget `actmax synthesize` uses by default (what users' own runs make).
ASCENT = DEFAULT_RECIPE
#: Weight-free spaces of the paired evolution: 8-d Gabor (contains the optimum) vs 288-d Fourier.
SPACES: tuple[str, ...] = (f"gabor:size={SIZE}", "fourier:size=16")
OPTIMIZER = "cma:popsize=40"
GENERATIONS = 75
#: Replicates per space of each condition's evolution (independent optimizer threads): noisy searches
#: vary a lot from start to start (the table gives the median), clean ones hardly (one keeps the demo short).
REPLICATES = {"clean": 1, "noisy": 2}
#: Poisson spike counts in a 2 s window (e.g. 10 presentations of 200 ms) at the model's rate.
NOISE = "window=2.0"
NATURAL_PATCHES = 1000
#: Pretrained spaces added when their weights are already on this machine (never downloaded):
#: (weight files needed, generator spec, optimizer spec).
OPTIONAL_SPACES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("deepsim-fc6",), f"deepsim:variant=fc6,size={SIZE}", "cholesky_cma:popsize=40"),
    (("biggan-deep-256", "biggan-deep-256-config"), f"biggan:size={SIZE}", "cma:popsize=40"),
)

#: Images each space needs to reach 0.9 of the known optimum (clean response of the reported image),
#: CMA-ES popsize 40 as in the demo, per kind (simple, complex, dual); None = not reached within
#: ``budget`` images (``best``: the fraction reached). Measured with
#: ``OMP_NUM_THREADS=1 python benchmarks/bench_demo_budgets.py --generations 250`` (fourier: 1500).
MEASURED_BUDGETS: dict[str, dict[str, Any]] = {
    "gabor": {"clean": {"simple": 880, "complex": 360, "dual": 840}, "clean_budget": 10000,
              "noisy": {"simple": None, "complex": 680, "dual": None}, "noisy_budget": 10000,
              "noisy_best": {"simple": 0.09, "complex": 0.98, "dual": 0.43}},
    "fourier": {"clean": {"simple": None, "complex": None, "dual": None}, "clean_budget": 60000,
                "clean_best": {"simple": 0.62, "complex": 0.81, "dual": 0.69},
                "noisy": {"simple": None, "complex": None, "dual": None}, "noisy_budget": 10000,
                "noisy_best": {"simple": 0.12, "complex": 0.22, "dual": 0.43}},
}


def budget_note(space: str, kind: str) -> str:
    """What budget makes ``space`` succeed on a ``kind`` cell (measured), or that none measured does."""
    m = MEASURED_BUDGETS.get(space)
    if m is None:
        return f"{space}: budget to success not measured (benchmarks/bench_demo_budgets.py measures it)"
    parts = []
    for cond in ("clean", "noisy"):
        n = m[cond].get(kind)
        if n is not None:
            parts.append(f"{cond} {n} images")
        else:
            best = m.get(f"{cond}_best", {}).get(kind)
            parts.append(f"{cond}: not within {m[f'{cond}_budget']} images" + (f" (best {best:.2f})" if best else ""))
    return f"{space} reaches 0.9 of the optimum: " + "; ".join(parts)


#: Where an optimum or floor is not unique, what the picture should be read against.
NOTES: dict[tuple[str, str], str] = {
    ("simple", "low"): "flat floor: any image with a strongly negative projection on the filter is "
                       "near 0, so the LEI need not look like the negated filter",
    ("complex", "high"): "phase-invariant: every phase of the quadrature pair is optimal "
                         "(compared with the best-matching phase)",
    ("complex", "low"): "floor 0 is reached by any image the two filters do not see (grey included): "
                        "the LEI keeps its random start's noise, which the cell ignores",
    ("dual", "high"): "quadratic feature: +e and -e are equally optimal (sign-invariant)",
    ("dual", "low"): "quadratic suppressive feature: +h and -h are equally optimal (sign-invariant)",
}


def _model(kind: str, index: int) -> str:
    return f"model:kind={kind},n=1,size={SIZE},seed={index}"


def _noisy(spec: str) -> str:
    return f"poisson:base='{spec}',{NOISE}"


def _space_name(spec: str) -> str:
    return parse_spec(spec)[0]


def available_spaces() -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(spec, optimizer) of every space to compare, and the pretrained ones skipped with how to add them."""
    from actmax.core.weights import locate, weight_spec

    used = [(s, OPTIMIZER) for s in SPACES]
    skipped = []
    for names, spec, opt in OPTIONAL_SPACES:
        try:
            missing = [n for n in names if locate(n) is None]
        except Exception as exc:  # noqa: BLE001 - a bad env var pointing at nothing: skip and say why
            missing = [f"{names[0]} ({exc})"]
        if missing:
            w = weight_spec(names[0])
            skipped.append({"space": _space_name(spec), "missing": ", ".join(missing),
                            "how_to_add": f"set {w.env_var}=/path/to/{w.filename} or put it in $ACTMAX_WEIGHTS_DIR "
                                          f"(`actmax weights` lists every way), then run the demo again"})
        else:
            used.append((spec, opt))
    return used, skipped


# -- measurements ----------------------------------------------------------------------------
def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _signed_correlation(model: Any, image: torch.Tensor, reference: torch.Tensor) -> float:
    """Pearson correlation of two images inside the unit's receptive field (whole image if none)."""
    from actmax.core.contracts import to_channels, to_size

    a = to_size(to_channels(image[None].float(), 1), SIZE).flatten()
    b = to_size(to_channels(reference[None].float(), 1), SIZE).flatten()
    mask = getattr(model, "rf_mask", None)
    if mask is not None:
        m = mask[0].flatten().bool()
        a, b = a[m], b[m]
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else 0.0


def _respond(model: Any, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(images.float())[:, 0].double().numpy()


def _ground_truth(model: Any) -> dict[str, Any]:
    opt_hi, opt_lo = model.optimal_stimulus("high", [0])[0], model.optimal_stimulus("low", [0])[0]
    optimum = float(model.optimal_response("high", [0])[0])
    floor = float(model.optimal_response("low", [0])[0])
    flipped = float(_respond(model, (1.0 - opt_hi)[None])[0])  # 0.5 - c: the contrast-reversed optimum
    return {"optimal_image": opt_hi, "floor_image": opt_lo, "optimum": optimum, "floor": floor,
            "baseline": float(model.baseline()[0]),
            "sign_invariant": abs(flipped - optimum) <= 1e-3 * max(abs(optimum), 1e-6),
            "unique": {p: bool(model.optimum_is_unique(0, p)) for p in ("high", "low")}}


def _note(kind: str, pole: str, truth: dict[str, Any]) -> str:
    if (kind, pole) in NOTES:
        return NOTES[(kind, pole)]
    if not truth["unique"][pole]:
        return "optimum not unique (see scorers/model_neurons.py)"
    return "unique up to sign (sign-invariant)" if truth["sign_invariant"] and pole == "high" else "unique"


def _gradient(kind: str, model: Any, truth: dict[str, Any], syn: Any) -> dict[str, Any]:
    mei, lei = syn.image(0, "high"), syn.image(0, "low")
    r_mei, r_lei = _respond(model, torch.stack([mei, lei]))
    span = truth["optimum"] - truth["floor"]
    below = truth["baseline"] - truth["floor"]
    mei_sign = _signed_correlation(model, mei, truth["optimal_image"])
    return {
        "mei": {"response": _r(r_mei), "optimum": _r(truth["optimum"]),
                "fraction_of_optimum": _r(r_mei / truth["optimum"]),
                "correlation_with_optimum": _r(model.similarity_to_optimum(mei[None], [0], "high")[0]),
                "sign_flipped": bool(truth["sign_invariant"] and truth["unique"]["high"] and mei_sign < 0),
                "optimum_unique": truth["unique"]["high"], "note": _note(kind, "high", truth)},
        "lei": {"response": _r(r_lei), "floor": _r(truth["floor"]), "baseline": _r(truth["baseline"]),
                "gap_to_floor": _r((r_lei - truth["floor"]) / span),  # fraction of the unit's range
                "suppression_below_baseline": _r((truth["baseline"] - r_lei) / below) if below > 1e-3 * span else None,
                "correlation_with_optimum": _r(model.similarity_to_optimum(lei[None], [0], "low")[0]),
                "optimum_unique": truth["unique"]["low"], "note": _note(kind, "low", truth)},
    }


def _space_bests(res: EvolutionResult, gens: dict[str, Any], model: Any) -> dict[str, dict[str, Any]]:
    """Per space: the best observed image, its clean response, and each generation's best re-scored clean."""
    from actmax.core.records import load_run

    codes = load_run(res.out_dir).codes
    out = {}
    for space in res.spaces:
        traj = res.trajectory[res.trajectory["space"] == space].sort_values("generation")
        per_gen = codes[f"{space}/best_per_generation"].float()
        with torch.no_grad():
            images = gens[space](per_gen).cpu()
        clean = _respond(model, images)
        pick = int(np.argmax(traj["best"].to_numpy()))  # what the run reports: its best observation
        shown = res.scores[res.scores["space"] == space].groupby("generation").size().sort_index()
        out[space] = {"image": images[pick], "observed": float(traj["best"].to_numpy()[pick]),
                      "clean": float(clean[pick]), "clean_per_generation": clean, "trajectory": traj,
                      "evaluations": shown.cumsum().to_numpy(), "dim": int(gens[space].dim)}
    return out


def _evolutions(kind: str, index: int, model: Any, truth: dict[str, Any], mei_response: float,
                spaces: list[tuple[str, str]], gens: dict[str, Any], out: Path, seed: int,
                n_seeds: dict[str, int], progress: bool | None,
                stage: Callable[[str], None] = lambda _: None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Paired evolutions, clean and noisy; per space the median over replicates (and each replicate).

    The replicates of a condition run as extra threads of one evolution (space 1, space 2, space 1,
    space 2, ...: each thread its own optimizer, start and seed), all scored in one block per
    generation, as one rig session would show them; one record per condition.
    """
    summary: dict[str, Any] = {}
    details: dict[str, Any] = {}
    span = truth["optimum"] - truth["baseline"]
    for condition, scorer in (("clean", _model(kind, index)), ("noisy", _noisy(_model(kind, index)))):
        n = n_seeds[condition]
        stage(f"{kind} cell: paired evolution, {condition} ({n} x {len(spaces)} threads x {GENERATIONS} generations)")
        specs = [s for _ in range(n) for s, _ in spaces]
        res = evolve(specs, scorer, [o for _ in range(n) for _, o in spaces], unit=0, pole="high",
                     generations=GENERATIONS, seed=seed, out_dir=out / "records" / f"evolution_{kind}_{condition}",
                     progress=progress, image_every=0, plots=False, overwrite=True)
        base = {name: _space_name(spec) for name, spec in zip(res.spaces, specs)}
        bests = _space_bests(res, {name: gens[b] for name, b in base.items()}, model)
        details[condition] = {base[name]: bests[name] for name in res.spaces[:len(spaces)]}  # plotted
        per_rep: dict[str, list[dict[str, Any]]] = {}
        for t, name in enumerate(res.spaces):
            b = bests[name]
            corr = _signed_correlation(model, b["image"], truth["optimal_image"])
            b["sign_flipped"] = bool(truth["sign_invariant"] and truth["unique"]["high"] and corr < -0.5)
            per_rep.setdefault(base[name], []).append({
                "replicate": t // len(spaces), "thread": name,
                "evaluations": int((res.scores["space"] == name).sum()),
                "best_observed": _r(b["observed"]), "clean_response": _r(b["clean"]),
                "fraction_of_optimum": _r(b["clean"] / truth["optimum"]), "sign_flipped": b["sign_flipped"]})
        summary[condition] = {}
        for space, runs in per_rep.items():
            clean = np.median([r["clean_response"] for r in runs])
            summary[condition][space] = {
                "dimension": int(gens[space].dim), "evaluations": runs[0]["evaluations"],
                "replicates": len(runs),
                "clean_response": _r(clean),  # median over replicates of the reported image's noise-free response
                "fraction_of_optimum": _r(clean / truth["optimum"]),
                "fraction_of_gradient_mei": _r(clean / mei_response),
                # replicates that ended within 5% (of the baseline-to-optimum span) of the grey baseline
                "stuck_at_baseline": int(sum(abs(r["clean_response"] - truth["baseline"]) < 0.05 * span for r in runs)),
                "sign_flipped": any(r["sign_flipped"] for r in runs),
                "record": str(res.out_dir), "per_replicate": runs}
    return summary, details


def _natural(model: Any, patches: torch.Tensor, k: int = 3) -> tuple[dict[str, Any], list[int], list[int], np.ndarray]:
    resp = _respond(model, patches)
    order = np.argsort(resp)
    top, bottom = order[::-1][:k].tolist(), order[:k].tolist()
    return ({"patches": int(len(resp)), "best": _r(resp[top[0]]), "worst": _r(resp[bottom[0]]),
             "median": _r(np.median(resp))}, top, bottom, resp)


# -- the demo --------------------------------------------------------------------------------
class _Stages:
    """One line per stage, ``[i/n] what (elapsed CPU-s)``, to ``log`` (nothing without one)."""

    def __init__(self, log: Callable[[str], None] | None, n: int) -> None:
        self.log, self.n, self.i = log, n, 0
        self.cpu0 = time.process_time()

    def __call__(self, text: str) -> None:
        self.i += 1
        if self.log is not None:
            self.log(f"demo [{self.i}/{self.n}] {text} (at {time.process_time() - self.cpu0:.0f} CPU-s)")


def run_demo(out: str | Path, *, seed: int = 0, replicates: dict[str, int] | None = None,
             progress: bool | None = None,
             kinds: tuple[str, ...] = DEMO_KINDS, overwrite: bool = False,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo into ``out``; return the summary (also written to ``out/summary.json``).

    ``log`` receives one line per stage (the CLI prints them on stderr when no progress bar is drawn)."""

    with single_threaded():   # tiny 64 px operations: a second torch/BLAS thread only spins (core/threads.py)
        return _run_demo(out, seed=seed, replicates=replicates, progress=progress, kinds=kinds,
                         overwrite=overwrite, log=log)


def _run_demo(out: str | Path, *, seed: int, replicates: dict[str, int] | None, progress: bool | None,
              kinds: tuple[str, ...], overwrite: bool, log: Callable[[str], None] | None) -> dict[str, Any]:
    import actmax.generators  # noqa: F401  (registers the parts)
    import actmax.scorers  # noqa: F401
    from actmax.core.apps.natural_images import sample_patches

    t0 = time.time()
    stage = _Stages(log, n=1 + 3 * len(kinds) + 1)
    replicates = {**REPLICATES, **(replicates or {})}
    out = Path(out)
    _clear_previous_demo(out, overwrite)
    spaces, skipped = available_spaces()
    stage(f"building the spaces ({', '.join(_space_name(sp) for sp, _ in spaces)}) and {NATURAL_PATCHES} natural patches")
    gens = {_space_name(s): generators.create(s).eval() for s, _ in spaces}
    patches = torch.from_numpy(sample_patches(NATURAL_PATCHES, SIZE, seed=seed))
    units, rows_mei, caps_mei, rows_nat, caps_nat = [], [], [], [], []
    for index, kind in enumerate(kinds):
        model = scorers.create(_model(kind, index)).eval()
        truth = _ground_truth(model)
        stage(f"{kind} cell: gradient MEI and LEI ({GENERATOR})")
        syn = synthesize(GENERATOR, _model(kind, index), units=[0], poles=("high", "low"), seeds=(seed,),
                         ascent=ASCENT, out_dir=out / "records" / f"synthesis_{kind}", progress=progress,
                         overwrite=True)
        grad = _gradient(kind, model, truth, syn)
        evo, details = _evolutions(kind, index, model, truth, grad["mei"]["response"], spaces, gens, out,
                                     seed, replicates, progress, stage)
        nat, top, bottom, _ = _natural(model, patches)
        nat["mei_over_best_natural"] = _r(grad["mei"]["response"] / nat["best"]) if nat["best"] > 0 else None
        nat["lei_below_worst_natural"] = bool(grad["lei"]["response"] <= nat["worst"] + 1e-6)
        units.append({"unit": index, "kind": kind, "scorer": _model(kind, index),
                      "noisy_scorer": _noisy(_model(kind, index)), "optimum": _r(truth["optimum"]),
                      "floor": _r(truth["floor"]), "baseline": _r(truth["baseline"]),
                      "sign_invariant": truth["sign_invariant"], **grad, "evolution": evo, "natural": nat,
                      "budget_to_success": {sp: budget_note(sp, kind) for sp in evo["clean"]}})
        # MEI/LEI picture row
        mei, lei = syn.image(0, "high"), syn.image(0, "low")
        r = _respond(model, torch.stack([mei, truth["optimal_image"], lei, truth["floor_image"]]))
        rows_mei.append([mei, truth["optimal_image"], lei, truth["floor_image"]])
        flip = " (−optimum)" if grad["mei"]["sign_flipped"] else ""
        caps_mei.append([f"r={_fmt(r[0])} ({100 * r[0] / truth['optimum']:.0f}%){flip}", f"r={_fmt(r[1])}",
                         f"r={_fmt(r[2])}", f"r={_fmt(r[3])}" + ("" if truth["unique"]["low"] else " (one of many)")])
        # natural row: best natural x3, MEI | LEI, worst natural x3
        nat_imgs = [patches[i] for i in top] + [mei, lei] + [patches[i] for i in bottom]
        rn = _respond(model, torch.stack(nat_imgs))
        rows_nat.append(nat_imgs)
        caps_nat.append([f"r={_fmt(v)}" for v in rn])
        _plot_evolution(kind, truth, grad, mei, details, evo, out / f"evolution_{kind}.png")
    stage("pictures, summary.json and README.txt")
    notes = "\n".join(f"{u['kind']}: MEI {u['mei']['note']}; LEI {u['lei']['note']}" for u in units)
    plot_image_rows(rows_mei, out / "mei_lei.png", row_labels=[f"{u['unit']}:{u['kind']}" for u in units],
                    col_labels=["gradient MEI", "known optimum", "gradient LEI", "known floor (LEI optimum)"],
                    captions=caps_mei, cell=1.7, title="Gradient MEI / LEI vs the known optimum (r = response)",
                    footer=_wrap(notes))
    ratio = [u["natural"]["mei_over_best_natural"] for u in units]
    plot_image_rows(rows_nat, out / "natural_vs_mei.png",
                    row_labels=[f"{u['unit']}:{u['kind']}" + (f"\nMEI = {q:.1f}x best natural" if q else "")
                                for u, q in zip(units, ratio)],
                    col_labels=["best natural", "2nd", "3rd", "gradient MEI", "gradient LEI",
                                "worst natural", "2nd", "3rd"],
                    captions=caps_nat, cell=1.25,
                    title=f"MEI/LEI vs the most and least exciting of {NATURAL_PATCHES} natural patches")
    summary = {
        "what": "actmax demo: ground-truth model neurons with known optima",
        "config": {"kinds": list(kinds), "gradient": {"generator": GENERATOR, "ascent": ASCENT},
                   "evolution": {"spaces": [s for s, _ in spaces], "optimizers": [o for _, o in spaces],
                                 "generations": GENERATIONS, "replicates": replicates,
                                 "noise": f"poisson ({NOISE}; rates in the model's units)"},
                   "natural_patches": NATURAL_PATCHES, "seed": seed},
        "spaces_skipped": skipped,
        "units": units,
        "pictures": {"mei_lei": "mei_lei.png", "natural_vs_mei": "natural_vs_mei.png",
                     **{f"evolution_{k}": f"evolution_{k}.png" for k in kinds}},
        "out": str(out),
    }
    summary["elapsed_s"] = round(time.time() - t0, 1)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_bytes(out / "README.txt", readme_text(summary).encode())
    return summary


def _clear_previous_demo(out: Path, overwrite: bool) -> None:
    """Empty a previous demo's folder (so no stale record survives); refuse any other non-empty folder."""
    import shutil

    if out.exists() and any(out.iterdir()):
        if not (out / "summary.json").exists():
            raise FileExistsError(f"{out} is not empty and holds no earlier demo; choose another --out")
        if not overwrite:
            raise FileExistsError(f"{out} holds an earlier demo; pass overwrite=True to replace it")
        shutil.rmtree(out / "records", ignore_errors=True)
        for f in [*out.glob("*.png"), out / "summary.json", out / "README.txt"]:
            f.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":  # pragma: no cover
    print(format_summary(run_demo("demo_out", overwrite=True)))

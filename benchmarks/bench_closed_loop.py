"""The closed-loop campaign (issue 20, "Must show"): population seeds x training seeds, the adaptive loop
against a natural-only control of the same size, per-kind medians with bootstrap 95 % intervals.

Every cell is one ``closed_loop`` run record under ``OUT/cells/`` (``p<pop>_t<train>_<arm>``): a finished
cell is read back (nothing recomputed), a killed one resumes, so re-running the script continues the
campaign. ``--jobs N`` runs cells in N processes (one torch thread each). For ``cnn`` units it also
synthesises directly on the true unit at the same contrast (cached per population seed).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_closed_loop --out bench_cl --jobs 2            # the campaign
    OMP_NUM_THREADS=1 python -m benchmarks.bench_closed_loop --out /tmp/cl --tiny                # a check, ~1 CPU-min

Writes ``OUT/bench_closed_loop.md`` (the tables) and ``OUT/bench_closed_loop.json``.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

#: CPU seconds of one default cell (model:kind=all,n=12,size=32, 3 rounds after round 0), measured (README)
CELL_CPU_S = 460.0
KINDS = ("simple", "complex", "dual", "endstop", "colour", "cnn")


def _pairs(items: list[str]) -> dict:
    """``FIELD=VALUE`` options as a dict, each value a Python literal."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: expected FIELD=VALUE, got {item!r}")
        out[key] = ast.literal_eval(value)
    return out


def tiny_config():
    from actmax.core.apps.closed_loop_run import LoopConfig
    return LoopConfig(neurons="model:kind=all,n=6,size=16,seed=0", rounds=1, n_natural=200, n_mapping=40, n_test=20,
                      repeats=3, architecture={"hidden_channels": 4, "layers": 1, "input_kernel": 5},
                      train={"max_epochs": 3, "lr": 0.01, "batch_size": 32}, retrain_epochs=2,
                      ascent="ascent:method='sgd',normalize=True,lr=0.01,jitter=0,precondition=1.0,steps=8",
                      synthesis_seeds=(0, 1), gabor_probes=2)


def cell_config(base, population: str, pop_seed: int, train_seed: int, arm: str):
    return replace(base, neurons=f"{population},seed={pop_seed}", seed=pop_seed, train_seed=train_seed,
                   natural_only=(arm == "natural"), rf_start="true" if arm == "true_rf" else "mapped")


def run_cell(args: tuple) -> dict:
    """One cell (in a worker process): resume a record that exists, else start it."""
    import torch

    from actmax.core.apps.closed_loop_run import LoopConfig, closed_loop
    from actmax.core.runs import resume

    torch.set_num_threads(1)
    cfg_dict, out = args
    out = Path(out)
    t0 = time.process_time()
    if (out / "manifest.json").exists():
        result = resume(out, progress=False)
    else:
        result = closed_loop(LoopConfig(**cfg_dict), out_dir=out, progress=False)
    return {"out": str(out), "cpu_s": round(time.process_time() - t0, 1), "result": result}


def direct_synthesis(base, population: str, pop_seed: int, cache: Path) -> dict[int, float]:
    """Per cnn unit, the response direct synthesis on the true unit reaches at the loop's contrast."""
    path = cache / f"direct_p{pop_seed}.json"
    if path.exists():
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    from actmax.core.apps.closed_loop import synthesis_generator
    from actmax.core.registry import scorers
    from actmax.core.synthesize import synthesize
    from actmax.core.transforms import limit_input

    neurons = scorers.create(f"{population},seed={pop_seed}").eval()
    units = [u for u, k in enumerate(neurons.kinds) if k == "cnn"]
    out: dict[int, float] = {}
    if units:
        ascent = base.ascent if "norm=" in base.ascent else f"{base.ascent},norm={base.norm}"
        syn = synthesize(synthesis_generator(base, int(neurons.size), int(neurons.channels)), neurons, units=units,
                         poles=("high",), seeds=base.synthesis_seeds, ascent=ascent, progress=False)
        import torch
        with torch.no_grad():
            resp = neurons(limit_input(syn.images.clamp(0, 1), norm=base.norm).clamp(0, 1))
        for i, t in enumerate(syn.targets):
            out[t.unit] = max(out.get(t.unit, -np.inf), float(resp[i, t.unit]))
    path.write_text(json.dumps(out))
    return out


def _median_ci(values: list[float]) -> str:
    from actmax.core.apps.closed_loop import bootstrap_median
    med, ci = bootstrap_median(np.array(values, float))
    return "–" if med is None else f"{med:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _rows_at(result: dict, r: int, cell_dir: Path) -> list[dict]:
    """The per-neuron rows of round ``r`` (a cell that stopped early keeps its last round)."""
    last = min(r, int(result["round"]))
    return json.loads((cell_dir / f"round_{last}" / "round.json").read_text())["neurons"]


def tables(cells: list[dict], rounds: int, direct: dict[int, dict[int, float]]) -> tuple[str, dict]:
    cols = {"MEI / optimum": "mei_fraction_of_optimum", "MEI / best RF Gabor": "mei_over_best_gabor",
            "LEI to floor": "lei_to_floor", "readout error (px)": "readout_error_px"}
    lines, data, direct_ratio = [], {}, {}
    titles = {"loop": "adaptive loop", "natural": "natural-only control",
              "true_rf": "adaptive loop, readouts started at the true RF"}
    for arm in ("loop", "natural", "true_rf"):
        mine = [c for c in cells if c["arm"] == arm]
        if not mine:
            continue
        lines += [f"### {titles[arm]} ({len(mine)} cells)", ""]
        head = "| round | kind | n | " + " | ".join(cols) + " | LEI <= grey | readout <= 2 px | cnn MEI / direct |"
        lines += [head, "|" + "---|" * (len(cols) + 6)]
        for r in range(rounds + 1):
            for kind in KINDS:
                rows, ratio = [], []
                for c in mine:
                    for row in _rows_at(c["result"], r, Path(c["out"])):
                        if row["kind"] == kind:
                            rows.append(row)
                            d = direct.get(c["pop_seed"], {}).get(row["unit"])
                            if d and row["mei_response"] is not None:
                                ratio.append(row["mei_response"] / d)
                if not rows:
                    continue
                vals = {name: [np.nan if x.get(k) is None else x[k] for x in rows] for name, k in cols.items()}
                grey = [x["lei_below_grey"] for x in rows if x["lei_below_grey"] is not None]
                blank = [bool(x.get("lei_is_blank")) for x in rows]
                syn_grey = [x["lei_synthesized_below_grey"] for x in rows
                            if x.get("lei_synthesized_below_grey") is not None]
                within = [x["readout_within_2px"] for x in rows if x.get("readout_within_2px") is not None]
                data[f"{arm}/{r}/{kind}"] = {**vals, "LEI <= grey": grey, "readout_within_2px": within,
                                             "LEI = blank": blank, "synthesised LEI <= grey": syn_grey}
                if arm == "loop" and r == rounds:
                    direct_ratio[kind] = ratio
                lines.append(f"| {r} | {kind} | {len(rows)} | " + " | ".join(_median_ci(v) for v in vals.values())
                             + f" | {np.mean(grey):.2f} | {np.mean(within) if within else float('nan'):.2f} | "
                             + (_median_ci(ratio) if ratio else "–") + " |")
        lines.append("")
    summary = readme_table(data, rounds, direct_ratio)
    return "## Summary (the README's table)\n\n" + summary + "\n" + "\n".join(lines), data


def _lei_blank(d: dict) -> str:
    """How many LEIs are the blank, and how many synthesised LEIs were at or below grey themselves."""
    blank, syn = d.get("LEI = blank", []), d.get("synthesised LEI <= grey", [])
    if not syn:
        return "–"
    return f"{np.mean(blank):.2f} ({np.mean(syn):.2f})"


def readme_table(data: dict, rounds: int, direct_ratio: dict[str, list[float]]) -> str:
    """The README's one-row-per-kind summary: MEI / optimum per round of the loop against the natural-only
    control's last round, the final round's controls, and the readouts of the known-RF arm."""
    head = (["kind", "n"] + [f"MEI / optimum, round {r}" if r == 0 else f"round {r}" for r in range(rounds + 1)]
            + [f"natural-only control, round {rounds}", "MEI / best RF Gabor", "LEI to floor", "LEI <= grey",
               "LEI = blank (synthesised LEI <= grey)",
               "readout error (px)", "readout <= 2 px", "true-RF start: readout <= 2 px",
               "cnn MEI / direct on the unit"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in KINDS:
        last = data.get(f"loop/{rounds}/{kind}")
        if last is None:
            continue
        cells = [str(len(last["MEI / optimum"]))]
        cells += [_median_ci(data[f"loop/{r}/{kind}"]["MEI / optimum"]) for r in range(rounds + 1)]
        nat = data.get(f"natural/{rounds}/{kind}")
        cells.append(_median_ci(nat["MEI / optimum"]) if nat else "–")
        cells += [_median_ci(last["MEI / best RF Gabor"]), _median_ci(last["LEI to floor"]),
                  f"{np.mean(last['LEI <= grey']):.2f}", _lei_blank(last), _median_ci(last["readout error (px)"]),
                  f"{np.mean(last['readout_within_2px']):.2f}"]
        true = data.get(f"true_rf/{rounds}/{kind}")
        cells.append(f"{np.mean(true['readout_within_2px']):.2f} (n = {len(true['readout_within_2px'])})"
                     if true else "–")
        cells.append(_median_ci(direct_ratio[kind]) if direct_ratio.get(kind) else "–")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--population", default="model:kind=all,n=12,size=32")
    ap.add_argument("--pop-seeds", default="0,1,2")
    ap.add_argument("--train-seeds", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=None, help="rounds after round 0 (default: the loop's default)")
    ap.add_argument("--no-control", action="store_true", help="skip the natural-only control arm")
    ap.add_argument("--control-train-seeds", default=None,
                    help="training seeds of the natural-only control arm (default: every training seed)")
    ap.add_argument("--true-rf-train-seeds", default="0",
                    help="training seeds of the arm whose readouts start at the true RF ('' for none)")
    ap.add_argument("--jobs", type=int, default=1, help="cells run in this many processes")
    ap.add_argument("--tiny", action="store_true", help="a tiny configuration to check the script (~1 CPU-min)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a LoopConfig field for every cell, as a Python literal (e.g. refine_probes=12)")
    ap.add_argument("--arch", action="append", default=[], metavar="FIELD=VALUE",
                    help="a twin architecture field for every cell (e.g. hidden_channels=32)")
    args = ap.parse_args(argv)

    from actmax.core.apps.closed_loop_run import LoopConfig
    base = tiny_config() if args.tiny else LoopConfig()
    base = replace(base, rounds=1 if args.tiny else (args.rounds or base.rounds))
    overrides = _pairs(args.set)
    if args.arch:
        overrides["architecture"] = {**base.architecture, **_pairs(args.arch)}
    base = replace(base, **overrides)
    population = base.neurons.rsplit(",seed=", 1)[0] if args.tiny else args.population
    pops = [int(s) for s in args.pop_seeds.split(",")]
    trains = [int(s) for s in args.train_seeds.split(",")]
    control = trains if args.control_train_seeds is None else [int(s) for s in args.control_train_seeds.split(",")
                                                                if s.strip()]
    (args.out / "cells").mkdir(parents=True, exist_ok=True)
    todo = []
    true_rf = [int(s) for s in args.true_rf_train_seeds.split(",") if s.strip()]
    for p in pops:
        for t in trains:
            arms = ["loop"] + (["natural"] if t in control and not args.no_control else []) + \
                   (["true_rf"] if t in true_rf else [])
            for arm in arms:
                cfg = cell_config(base, population, p, t, arm)
                todo.append(({**asdict(cfg)}, str(args.out / "cells" / f"p{p}_t{t}_{arm}"), p, t, arm))
    done = sum((Path(o) / "closed_loop.json").exists() for _, o, *_ in todo)
    per_cell = CELL_CPU_S * (1 if not args.tiny else 0.02) * (base.rounds + 1) / 4
    print(f"{len(todo)} cells ({done} finished already); expected CPU (default cells) ~{per_cell * (len(todo) - done) / 60:.0f} "
          f"CPU-min (~{per_cell / 60:.1f} per cell), wall ~{per_cell * (len(todo) - done) / 60 / max(args.jobs, 1):.0f} "
          f"min with --jobs {args.jobs}", file=sys.stderr)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = [(cfg, out) for cfg, out, *_ in todo]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_cell, work))
    else:
        results = [run_cell(w) for w in work]
    cells = [{**res, "pop_seed": p, "train_seed": t, "arm": arm} for res, (_, _, p, t, arm) in zip(results, todo)]
    direct = {p: direct_synthesis(base, population, p, args.out) for p in pops}
    text, data = tables(cells, base.rounds, direct)
    cpu = [c["cpu_s"] for c in cells]
    head = (f"# Closed-loop campaign\n\n{population}, population seeds {pops} x training seeds {trains}, "
            f"{base.rounds} rounds after round 0{', with ' + ' '.join(args.set + args.arch) if args.set or args.arch else ''}; medians over every neuron of a kind with bootstrap 95 % intervals. "
            f"CPU this invocation: {sum(cpu):.0f} s over {len(cells)} cells.\n")
    (args.out / "bench_closed_loop.md").write_text(head + "\n" + text)
    (args.out / "bench_closed_loop.json").write_text(json.dumps({"tables": data, "cpu_s": cpu,
                                                                 "direct_cnn": direct}, indent=1))
    print(head + "\n" + text)


if __name__ == "__main__":
    main()

"""``actmax twin ...``: train and evaluate digital twins, run the in-silico closed loop.

Thin typer commands; the work happens in :mod:`scorers.twin.train` and :mod:`actmax.core.apps.closed_loop`
(imported inside the commands so ``actmax --help`` stays fast).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from actmax.core.cli.options import progress_option
from actmax.core.errors import InputError

twin_app = typer.Typer(no_args_is_help=True,
                       help="Digital twins: train on recordings, evaluate, in-silico closed loop.")


def _architecture(image_size: Optional[int], hidden_channels: int, layers: int, input_kernel: int,
                  hidden_kernel: int, gauss_type: str) -> dict:
    arch = {"hidden_channels": hidden_channels, "layers": layers, "input_kernel": input_kernel,
            "hidden_kernel": hidden_kernel, "gauss_type": gauss_type}
    if image_size is not None:
        arch["image_size"] = image_size
    return arch


@twin_app.command("train")
def twin_train_cmd(
    images: Optional[Path] = typer.Option(None, "--images", help="images: .npy/.npz (N,[C,]H,W[,C]) or .parquet"),
    responses: Optional[Path] = typer.Option(None, "--responses",
                                             help="responses: (trials,) images x neurons as .npy/.npz/.parquet"),
    out: Path = typer.Option(..., "--out", help="twin folder (twin.json + member_*.safetensors + report)"),
    eye: Optional[Path] = typer.Option(None, "--eye", help="eye position per trial: .npy (trials, images, 2), x, y in "
                                                           "stimulus pixels from the centre, NaN where no trial; "
                                                           "adds a shifter"),
    behavior: Optional[Path] = typer.Option(None, "--behavior", help="behaviour per trial: .npy (trials, images, 3): "
                                                                     "pupil dilation, its derivative, treadmill "
                                                                     "speed, NaN where no trial; adds a modulator"),
    sensorium: Optional[Path] = typer.Option(None, "--sensorium", help="a sensorium-style folder (data/, meta/) "
                                                                       "instead of --images/--responses; its "
                                                                       "pupil_center and behavior are used, its "
                                                                       "tiers give the split"),
    members: int = typer.Option(1, help="ensemble members (different seeds, averaged)"),
    epochs: int = typer.Option(80, help="maximum epochs per member"),
    batch_size: int = typer.Option(64, help="batch size"),
    lr: float = typer.Option(5e-3, help="Adam learning rate"),
    patience: int = typer.Option(5, help="epochs without validation gain before the learning rate decays"),
    image_size: Optional[int] = typer.Option(None, help="twin input size (default: min(image size, 32))"),
    hidden_channels: int = typer.Option(16, help="channels per core layer"),
    layers: int = typer.Option(3, help="core layers"),
    input_kernel: int = typer.Option(9, help="first conv kernel size"),
    hidden_kernel: int = typer.Option(5, help="other conv kernel sizes"),
    gauss_type: str = typer.Option("isotropic", help="readout sigma: isotropic, uncorrelated or full"),
    test: str = typer.Option("auto", help="test images: auto, repeated (the oracle set) or random"),
    min_oracle: Optional[float] = typer.Option(None, help="keep only neurons with an oracle correlation >= this"),
    seed: int = typer.Option(0, help="random seed"),
    device: str = typer.Option("cpu", help="torch device"),
    init_positions: str = typer.Option("data", help="readout position start: data (estimate), centre or random"),
    border_guard: float = typer.Option(0.8, help="data estimates beyond this (grid units, 1 = border) start "
                                                 "at the centre"),
    position_lr_scale: float = typer.Option(0.1, help="learning-rate factor of readout positions and sigma"),
    position_warmup: Optional[int] = typer.Option(None, help="epochs after which positions learn at the full "
                                                             "rate (default: never)"),
    progress: bool = progress_option(),
    as_json: bool = typer.Option(False, "--json", help="print the report summary as JSON"),
) -> None:
    """Train a twin (conv core + Gaussian readout, Poisson loss, early stopping) on recordings."""
    from actmax.scorers.twin.train import TrainOptions, train_from_files, train_from_sensorium

    if sensorium is not None and any(v is not None for v in (images, responses, eye, behavior)):
        raise InputError("--sensorium reads images, responses, eye position and behaviour from the folder; "
                         "drop --images/--responses/--eye/--behavior")
    if sensorium is None and (images is None or responses is None):
        raise InputError("give --images and --responses (or --sensorium FOLDER)")

    opts = TrainOptions(max_epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, members=members,
                        test_images=test, min_oracle=min_oracle, seed=seed, device=device,
                        init_positions=init_positions, border_guard=border_guard,
                        position_lr_scale=position_lr_scale, position_warmup=position_warmup)
    arch = _architecture(image_size, hidden_channels, layers, input_kernel, hidden_kernel, gauss_type)
    if sensorium is not None:
        res = train_from_sensorium(sensorium, out, options=opts, progress=progress, architecture=arch)
    else:
        res = train_from_files(images, responses, out, options=opts, progress=progress, architecture=arch,
                               eye_path=eye, behavior_path=behavior)
    _print_report(res.report, out, as_json)


def _print_report(report: dict, out: Optional[Path], as_json: bool) -> None:
    keys = ("n_images", "n_neurons", "split_sizes", "median_test_correlation", "mean_test_correlation",
            "median_single_trial_test_correlation", "median_oracle")
    summary = {k: report.get(k) for k in keys}
    readout = report.get("readout")
    if as_json:
        extra = {"readout": readout} if readout else {}
        if report.get("state"):
            extra["state"] = report["state"]
        typer.echo(json.dumps({**summary, "test_correlation": report["test_correlation"],
                               "single_trial_test_correlation": report["single_trial_test_correlation"],
                               "oracle_correlation": report["oracle_correlation"], **extra}, indent=2))
        return
    if readout:
        typer.echo("neuron  x_px   y_px   sigma  gradRF_x gradRF_y  dist")
        for row in readout["neurons"]:
            typer.echo(f"{row['neuron']:>6} {row['x_px']:6.1f} {row['y_px']:6.1f} {row['sigma_px']:6.2f} "
                       f"{row['grad_rf_x_px']:8.1f} {row['grad_rf_y_px']:8.1f} {row['distance_px']:5.1f}")
        for w in readout["warnings"]:
            typer.echo(f"warning: {w}", err=True)
    med, oracle = summary["median_test_correlation"], summary["median_oracle"]
    single = summary["median_single_trial_test_correlation"]
    typer.echo(f"{summary['n_neurons']} neurons, {summary['n_images']} images {summary['split_sizes']}: "
               f"median test correlation {med if med is None else round(med, 3)}, "
               f"single-trial {single if single is None else round(single, 3)}, "
               f"median oracle {oracle if oracle is None else round(oracle, 3)}")
    if out is not None:
        typer.echo(f"written to {out}")


@twin_app.command("eval")
def twin_eval_cmd(
    twin: Path = typer.Argument(..., help="twin folder"),
    images: Path = typer.Option(..., "--images", help="images file"),
    responses: Path = typer.Option(..., "--responses", help="responses file"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for report.json / report.png"),
    eye: Optional[Path] = typer.Option(None, "--eye", help="eye position per trial (.npy, trials x images x 2)"),
    behavior: Optional[Path] = typer.Option(None, "--behavior", help="behaviour per trial (.npy, trials x images x 3)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Correlation of a saved twin with recorded responses (and the recordings' oracle)."""
    from actmax.scorers.twin.train import evaluate_saved_twin

    _print_report(evaluate_saved_twin(twin, images, responses, out_dir=out, eye_path=eye, behavior_path=behavior),
                  out, as_json)


@twin_app.command("closed-loop")
def twin_closed_loop_cmd(
    out: Path = typer.Option(..., "--out", help="run folder (one record per round inside: round_0, round_1, ...)"),
    neurons: str = typer.Option("model:kind=all,n=12,size=32,seed=0", help="the recorded population: any scorer "
                                "spec (model neurons, callable:fn=module:function, path=..., a plugin, rig:...)"),
    rounds: int = typer.Option(3, help="rounds after round 0 (>= 1); each shows the twin's MEIs/LEIs and probes, "
                                       "retrains, and the loop stops early when the measured MEI stops improving"),
    natural: int = typer.Option(1200, help="round 0: natural training patches (one trial each)"),
    mapping: int = typer.Option(300, help="round 0: RF-mapping stimuli (one trial each)"),
    n_test: int = typer.Option(100, help="round 0: natural test patches (repeated: the oracle set)"),
    repeats: int = typer.Option(5, help="trials per test patch and per shown MEI/LEI/probe"),
    window: float = typer.Option(30.0, help="counting window: a simulated trial is Poisson(rate * window)"),
    norm: float = typer.Option(3.0, help="L2 contrast of every stimulus (natural, probes, MEIs/LEIs)"),
    aperture: float = typer.Option(0.35, help="natural patches: Gaussian aperture sigma / size (0: full field)"),
    size: Optional[int] = typer.Option(None, help="image size for a scorer that does not say its own"),
    members: int = typer.Option(2, help="twin ensemble members (their disagreement guides probes)"),
    hidden_channels: int = typer.Option(16, help="channels per twin core layer (32: better dual/end-stopped MEIs "
                                                 "for ~2.7x the CPU, README)"),
    epochs: int = typer.Option(25, help="twin epochs in round 0"),
    retrain_epochs: int = typer.Option(12, help="twin epochs in later rounds (warm start)"),
    steps: int = typer.Option(128, help="synthesis steps (of the default recipe)"),
    seeds: int = typer.Option(3, help="synthesis seeds per neuron and pole"),
    probes: int = typer.Option(8, help="RF-centred Gabor probes per neuron and round (around the twin's best Gabor)"),
    tuning: bool = typer.Option(True, "--tuning/--no-tuning", help="rounds >= 1 also show each neuron an RF-centred "
                                "orientation x phase (x colour) tuning block"),
    rf_update: bool = typer.Option(True, "--rf-update/--no-rf-update", help="rounds >= 1 re-estimate every RF from "
                                   "all data and restart readouts more than 2 px off it"),
    refine: int = typer.Option(0, help="rounds >= 2: jittered copies per neuron of the Gabor that drove it most "
                               "as measured so far (0: off)"),
    surround: int = typer.Option(0, help="rounds >= 1: natural patches per neuron with a hole at its RF (contrast "
                                 "only in the surround; 0: off)"),
    retrain_position_warmup: Optional[int] = typer.Option(None, help="epochs of slow readout positions at the start "
                                                          "of each warm-started fit (default: slow throughout; "
                                                          "0: full rate from the start; README)"),
    position_grid: int = typer.Option(0, help="round 1: neurons without a linear or excitatory RF map see their "
                                      "best tuning Gabor on an N x N grid around the RF, and are re-centred "
                                      "where it peaks (0: off; odd >= 3; README)"),
    length_tuning: bool = typer.Option(False, "--length-tuning/--no-length-tuning", help="rounds >= 2 also show "
                                       "each neuron its best measured Gabor lengthened along its bars (4 lengths "
                                       "x 2 phases: a length-tuning curve, which finds end-stopping; README)"),
    blank_lei: bool = typer.Option(True, "--blank-lei/--no-blank-lei", help="every round also shows the blank "
                                   "(grey), a candidate LEI: a neuron whose blank measures below every synthesised "
                                   "LEI gets the blank as its LEI (README)"),
    rf_start: str = typer.Option("mapped", help="the RF readouts start at and probes centre on: 'mapped' "
                                 "(estimated) or 'true' (model neurons only: the check that a readout started "
                                 "there stays)"),
    natural_only: bool = typer.Option(False, "--natural-only", help="the control: later rounds add as many new "
                                                                    "natural patches instead of the loop's stimuli"),
    seed: int = typer.Option(0, help="seed of stimuli and trial noise"),
    train_seed: int = typer.Option(0, help="seed of the twin's training"),
    ascent: Optional[str] = typer.Option(None, help="full synthesis spec (overrides --steps)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a run record already in --out"),
    progress: bool = progress_option(),
    as_json: bool = typer.Option(False, "--json", help="print the final round as JSON (per neuron and per kind)"),
) -> None:
    """Closed loop in rounds: record, fit a twin, synthesise MEIs/LEIs, show them, repeat (resume: `actmax resume DIR`)."""
    from actmax.core.apps.closed_loop_run import LoopConfig, closed_loop
    from actmax.core.synthesize import DEFAULT_RECIPE

    cfg = LoopConfig(neurons=neurons, rounds=rounds, n_natural=natural, n_mapping=mapping, n_test=n_test,
                     repeats=repeats, window=window, norm=norm, aperture=aperture or None, size=size, seed=seed,
                     train_seed=train_seed, members=members,
                     architecture={} if hidden_channels == 16 else {"hidden_channels": hidden_channels},
                     train={"max_epochs": epochs, "lr": 0.01, "position_warmup": 10}, retrain_epochs=retrain_epochs,
                     ascent=ascent or f"{DEFAULT_RECIPE},steps={steps}", synthesis_seeds=tuple(range(seeds)),
                     gabor_probes=probes, natural_only=natural_only, tuning=tuning, rf_update=rf_update,
                     rf_start=rf_start, refine_probes=refine, surround_probes=surround,
                     retrain_position_warmup=retrain_position_warmup, blank_lei=blank_lei,
                     position_grid=position_grid, length_tuning=length_tuning)
    print_closed_loop(closed_loop(cfg, out_dir=out, overwrite=overwrite, progress=progress), as_json)


def print_closed_loop(result: dict, as_json: bool) -> None:
    """The final round: JSON (per neuron and per kind) or the per-kind table with one line per round."""
    from actmax.core.apps.closed_loop_rounds import format_kinds

    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("round", "rounds", "stopped_early", "measured_mei_gain",
                                                      "neurons", "per_kind", "twin", "out")}, indent=2))
        return
    for r in result["rounds"]:
        meds = ", ".join(f"{k['kind']} {k['median_mei_fraction_of_optimum']}" for k in r["per_kind"])
        typer.echo(f"round {r['round']}: {r['images_recorded']} images, twin test r "
                   f"{r['twin_median_test_correlation']:.3f}; MEI/optimum {meds}")
    stop = " (stopped early: the measured MEI stopped improving)" if result["stopped_early"] else ""
    typer.echo(f"final round {result['round']}{stop}; per kind (medians over every neuron, bootstrap 95 % CI):")
    typer.echo(format_kinds(result["per_kind"]))
    typer.echo(f"written to {result['out']}")

"""The closed loop as a resumable run kind (``closed_loop``) with rounds.

A round is four steps, each one checkpoint: **record** (round 0: natural patches, the RF-mapping
block and the repeated natural test set; later rounds: per neuron an RF-centred tuning block
(orientations x phases, x colour directions on RGB), RF-centred Gabor probes around the twin's best
Gabor and the MEIs/LEIs moved along the ensemble's disagreement, all centred on the RF re-estimated
from everything recorded so far), **fit** (the twin on everything recorded so far; later rounds start
from the previous twin: warm start, with readouts far from the updated RF re-seated), **synthesize**
(MEIs and LEIs of every neuron on the twin, several seeds) and **show** (the MEIs/LEIs shown with
repeats and recorded: that recording joins the data, picks each neuron's MEI/LEI by its measured
response, and gives the round's verdict against the controls). The loop stops early when the
measured MEI stops improving (median over neurons of this round's / the last round's, below
``1 + min_gain``).

Layout of the run folder ``DIR``: ``manifest.json``/``checkpoint.pt`` (the run), one folder per
round ``round_<r>/`` (``recorded.safetensors``, ``twin/``, ``synthesis.safetensors``,
``shown.safetensors``, ``round.json``, ``stimuli.safetensors`` with ``mei``/``lei``, and its own
``manifest.json`` with every file's sha256), and at the end ``closed_loop.json`` (the final round)
and ``stimuli.safetensors`` (its ``mei`` and ``lei``, one per neuron in unit order): what
:func:`actmax.load_run` returns.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from actmax.core import files as fileio
from actmax.core.apps import closed_loop_design as design
from actmax.core.apps.closed_loop import _readout_errors
from actmax.core.apps.closed_loop_config import LoopConfig
from actmax.core.apps.closed_loop_design import (  # noqa: F401  (the block codes, re-exported)
    CONTROL, DISAGREE, GABOR, LENGTH, MAPPING, NATURAL, POSITION, REFINE, SHOWN, SURROUND, TEST, TUNING)
from actmax.core.apps.closed_loop_rf import RESEAT_PX, ReceptiveFields  # noqa: F401
from actmax.core.apps.closed_loop_rounds import format_kinds, kind_rows, measured_gain, neuron_rows
from actmax.core.errors import InputError, RecordError
from actmax.core.registry import scorers, spec_text
from actmax.core.runs.kind import BaseRun

PHASES = ("record", "fit", "synthesize", "show")


def _save_tensors(path: Path, tensors: Mapping[str, Any]) -> None:
    from safetensors.torch import save
    data = {k: (torch.as_tensor(v).contiguous()) for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write_bytes(path, save(data))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    if not path.exists():
        raise RecordError(f"{path} is missing (the checkpoint vouched for it)")
    return load_file(str(path))


class ClosedLoopRun(ReceptiveFields, BaseRun):
    """The ``closed_loop`` run kind (see the module docstring)."""

    kind = "closed_loop"
    progress_unit = "phase"

    def __init__(self, config: LoopConfig, path: Path | None = None) -> None:
        self.cfg, self.path = config, None if path is None else Path(path)
        self.neurons = scorers.create(config.neurons).eval()
        if not hasattr(self.neurons, "units") or not callable(self.neurons):
            raise InputError(f"closed loop: --neurons {config.neurons!r} is not a scorer")
        self.units = int(self.neurons.units)
        self.size = int(getattr(self.neurons, "size", None) or config.size or 64)
        self.channels = int(getattr(self.neurons, "channels", None) or 1)
        self.pos, self.stopped, self.gains = 0, False, []
        self.cpu: list[float] = []      # CPU seconds of every step (this process's; a resumed step counts anew)
        self.mem: dict[tuple[int, str], Any] = {}

    # -- files of a round ----------------------------------------------------------------------
    def _dir(self, r: int) -> Path:
        if self.path is None:
            raise InputError("the closed loop needs an --out folder (every round is recorded)")
        return self.path / f"round_{r}"

    def _get(self, r: int, what: str) -> Any:
        key = (r, what)
        if key not in self.mem:
            d = self._dir(r)
            if what in ("recorded", "shown", "synthesis"):
                self.mem[key] = {k: v for k, v in _load_tensors(d / f"{what}.safetensors").items()}
            elif what == "twin":
                from actmax.scorers.twin.model import load_twin
                self.mem[key] = load_twin(d / "twin")
            elif what in ("round", "twin_report", "controls"):
                self.mem[key] = json.loads((d / f"{what}.json").read_text())
        return self.mem[key]

    def _put(self, r: int, what: str, value: Any) -> None:
        if what in ("recorded", "shown", "synthesis"):   # as they read back from their file
            value = {k: torch.as_tensor(v) for k, v in value.items()}
        self.mem[(r, what)] = value
        if self.path is None:
            return
        d = self._dir(r)
        d.mkdir(parents=True, exist_ok=True)
        if what in ("recorded", "shown", "synthesis"):
            _save_tensors(d / f"{what}.safetensors", value)
        elif what == "twin":
            from actmax.scorers.twin.model import save_twin
            save_twin(d / "twin", value)
        else:
            fileio.atomic_write_json(d / f"{what}.json", value)

    # -- the steps ------------------------------------------------------------------------------
    def step(self) -> int:
        import time
        r, phase = divmod(self.pos, len(PHASES))
        t0 = time.process_time()
        getattr(self, f"_{PHASES[phase]}")(r)
        self.cpu.append(round(time.process_time() - t0, 2))
        self.pos += 1
        if phase == len(PHASES) - 1 and r >= 1:
            gain = measured_gain(self._get(r - 1, "round")["neurons"], self._get(r, "round")["neurons"])
            self.gains.append(gain)
            if gain is not None and gain < 1 + self.cfg.min_gain and self.pos < self.total:
                self.stopped = True
        return 1

    def _noise_seed(self, r: int, phase: int) -> int:
        return self.cfg.seed * 100_003 + 97 * r + phase + 1

    def _record(self, r: int) -> None:
        cfg = self.cfg
        if r == 0:
            stim, codes = design.round0_stimuli(cfg, self.size, self.channels)
            trials = np.where(codes == TEST, cfg.repeats, 1)
        elif cfg.natural_only:
            n = self._probe_count(r)
            from actmax.core.apps.closed_loop import natural_stimuli
            stim = natural_stimuli(n, self.size, seed=cfg.seed + 1000 * r, aperture=cfg.aperture, norm=cfg.norm,
                                   channels=self.channels)
            codes, trials = np.full(n, CONTROL), np.full(n, cfg.repeats)
        else:
            stim, codes, params = self._probes(r)
            trials = np.full(len(stim), cfg.repeats)
        rates, counts = design.record_block(self.neurons, stim, trials, window=cfg.window, seed=self._noise_seed(r, 0))
        rec = {"stimuli": stim, "counts": counts, "rates": rates, "block": codes}
        if r >= 1 and not cfg.natural_only:
            rec["gabor_params"] = torch.as_tensor(params)
            if r == 1 and cfg.position_grid:
                rec = self._record_positions(rec)
        if r >= 1:
            rec["rf_xy"] = torch.as_tensor(self._rf(r))
        if r == 0:
            test = codes == TEST
            self._check_reliable(counts[:, test])
            fit = ~test
            rec["rf_xy"] = design.estimate_rf(stim[torch.as_tensor(fit)], np.nanmean(counts[:, fit], 0) / cfg.window)
        self._put(r, "recorded", rec)

    def _probe_count(self, r: int) -> int:
        """Images the loop adds in round ``r`` (probes and shown MEIs/LEIs): what the natural-only control adds.
        The refinement block starts in round 2 (round 1 is the first to show Gabors); the position block is
        round 1's, for the neurons round 0 could not map."""
        tuning = design.TUNING_THETAS * design.TUNING_PHASES * (3 if self.channels == 3 else 1) if self.cfg.tuning else 0
        refine = self.cfg.refine_probes if r >= 2 else 0
        length = 2 * len(design.LENGTH_ASPECTS) if r >= 2 and self.cfg.length_tuning else 0
        position = (2 * self.cfg.position_grid ** 2 * int(self._unmapped().sum())
                    if r == 1 and self.cfg.position_grid else 0)
        return self.units * (self.cfg.gabor_probes + tuning + refine + length + self.cfg.surround_probes + 4
                             + 2 * len(self.cfg.synthesis_seeds)) + position

    def _check_reliable(self, test_counts: np.ndarray) -> None:
        from actmax.scorers.twin.selection import oracle_correlation
        oracle = oracle_correlation(test_counts)
        if not np.isfinite(oracle).any() or np.nanmax(oracle) < self.cfg.min_oracle:
            best = "n/a (no neuron varies)" if not np.isfinite(oracle).any() else f"{np.nanmax(oracle):.3f}"
            raise InputError(f"closed loop: no reliable neuron in {self.cfg.neurons!r}: the best oracle correlation "
                             f"of the repeated test patches is {best} (< {self.cfg.min_oracle}); nothing to fit a "
                             "twin to (more repeats, a longer --window or other neurons)")

    def _probes(self, r: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Round ``r``'s probe blocks: the twin's best Gabors, disagreement probes, the tuning block, the
        refinement around each neuron's best measured Gabor and the surround block; returns images, block
        codes and Gabor parameters (:func:`design.encode_params`; NaN rows for images that are not Gabors)."""
        from actmax.scorers.twin.model import TwinScorer
        cfg = self.cfg
        twin = self._get(r - 1, "twin")
        scorer = TwinScorer(twin)
        rf = self._rf(r)
        gab_p, _ = design.gabor_probe_params(scorer, rf, per_neuron=cfg.gabor_probes, size=self.size,
                                             channels=self.channels, norm=cfg.norm, seed=self._noise_seed(r, 5))
        syn = self._get(r - 1, "synthesis")
        pred, owner, pole = syn["predicted"].double().numpy(), syn["unit"].numpy(), syn["pole"].numpy()
        pick = []
        for u in range(self.units):      # the twin's best MEI and LEI of each neuron
            for p, best in ((1, np.argmax), (0, np.argmin)):
                idx = np.flatnonzero((owner == u) & (pole == p))
                pick.append(int(idx[best(pred[idx])]))
        pick_t = torch.as_tensor(pick)
        dis = design.disagreement_probes(twin, syn["images"][pick_t], owner[pick], step=cfg.disagreement_step,
                                         norm=cfg.norm)
        blocks = [(gab_p, GABOR), (dis, DISAGREE)]
        if cfg.tuning:
            blocks.append((design.tuning_params(rf, size=self.size, channels=self.channels,
                                                seed=self._noise_seed(r, 6))[0], TUNING))
        if (cfg.refine_probes or cfg.length_tuning) and r >= 2:
            params, rates = design.measured_gabors([self._get(k, "recorded") for k in range(1, r)], self.units)
            if cfg.refine_probes:
                blocks.append((design.refine_params(params, rates, per_neuron=cfg.refine_probes, size=self.size,
                                                    channels=self.channels, seed=self._noise_seed(r, 7))[0], REFINE))
            if cfg.length_tuning:
                blocks.append((design.length_params(params, rates, channels=self.channels)[0], LENGTH))
        if cfg.surround_probes:
            blocks.append((design.surround_probes(rf, per_neuron=cfg.surround_probes, size=self.size,
                                                  channels=self.channels, norm=cfg.norm, aperture=cfg.aperture,
                                                  seed=cfg.seed + 1000 * r + 500), SURROUND))
        images, codes, rows = [], [], []
        for b, code in blocks:
            is_params = isinstance(b, list)
            img = design.render_params(b, self.size, self.channels, cfg.norm) if is_params else b
            images.append(img)
            codes.append(np.full(len(img), code))
            rows.append(design.encode_params(b) if is_params else design.encode_params([], len(img)))
        return torch.cat(images), np.concatenate(codes), np.concatenate(rows)

    def _data(self, r: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Everything recorded before the fit of round ``r``: stimuli, counts (trials, images, units), blocks."""
        parts = []
        for k in range(r + 1):
            parts.append(self._get(k, "recorded"))
            if k < r and not self.cfg.natural_only:
                parts.append(self._get(k, "shown"))
        t_max = max(p["counts"].shape[0] for p in parts)
        counts = []
        for p in parts:
            c = p["counts"].double().numpy()
            pad = np.full((t_max - c.shape[0], *c.shape[1:]), np.nan)
            counts.append(np.concatenate([c, pad]))
        return (torch.cat([p["stimuli"] for p in parts]), np.concatenate(counts, axis=1),
                np.concatenate([p["block"].numpy() for p in parts]))

    def _fit(self, r: int) -> None:
        from actmax.scorers.twin.train import TrainOptions, train_twin
        cfg = self.cfg
        stim, counts, blocks = self._data(r)
        test = np.flatnonzero(blocks == TEST)
        rest = np.flatnonzero(blocks != TEST)
        split = {"test": test, "val": rest[rest % 10 == 9], "train": rest[rest % 10 != 9]}
        opts = {"test_images": "repeated", **cfg.train, "members": cfg.members, "seed": cfg.train_seed + 7 * r}
        if r >= 1:
            opts.update(max_epochs=cfg.retrain_epochs, position_warmup=cfg.retrain_position_warmup)
        opts = self._readout_start(opts, r)
        trained = train_twin(stim.numpy(), counts, neuron_ids=self.neurons.unit_names, architecture=cfg.architecture,
                             options=TrainOptions(**opts), split=split,
                             warm_start=self._get(r - 1, "twin") if r >= 1 else None)
        rep = trained.report
        self._put(r, "twin", trained.ensemble)
        self._put(r, "twin_report", {k: rep.get(k) for k in ("median_test_correlation", "test_correlation",
                                                                "oracle_correlation", "split_sizes", "train_seconds",
                                                                "readout")})

    def _synthesize(self, r: int) -> None:
        from actmax.core.apps.closed_loop import synthesis_generator
        from actmax.core.synthesize import synthesize
        from actmax.core.transforms import limit_input
        from actmax.scorers.twin.model import TwinScorer
        cfg = self.cfg
        ascent = cfg.ascent if "norm=" in cfg.ascent else f"{cfg.ascent},norm={cfg.norm}"
        scorer = TwinScorer(self._get(r, "twin"))
        syn = synthesize(synthesis_generator(cfg, self.size, self.channels), scorer, units=list(range(self.units)),
                         poles=("high", "low"), seeds=cfg.synthesis_seeds, ascent=ascent, progress=False)
        images = limit_input(syn.images.clamp(0, 1), norm=cfg.norm).clamp(0, 1)
        with torch.no_grad():
            pred = scorer(images)
        unit = torch.tensor([t.unit for t in syn.targets])
        self._put(r, "synthesis", {"images": images.float(), "unit": unit,
                                   "pole": torch.tensor([1 if t.pole == "high" else 0 for t in syn.targets]),
                                   "seed": torch.tensor([t.seed for t in syn.targets]),
                                   "predicted": pred.gather(1, unit[:, None])[:, 0].double()})

    def _show(self, r: int) -> None:
        cfg = self.cfg
        syn = self._get(r, "synthesis")
        images, owner, pole = syn["images"], syn["unit"].numpy(), syn["pole"].numpy()
        rates, counts = design.record_block(self.neurons, images, np.full(len(images), cfg.repeats),
                                            window=cfg.window, seed=self._noise_seed(r, 3))
        shown = {"stimuli": images, "counts": counts, "rates": rates, "block": np.full(len(images), SHOWN)}
        if cfg.blank_lei:        # the blank, a candidate LEI: its own trials, kept out of the twin's data
            shown["blank_rates"], shown["blank_counts"] = design.record_block(
                self.neurons, torch.full_like(images[:1], 0.5), np.array([cfg.repeats]), window=cfg.window,
                seed=self._noise_seed(r, 4))
        self._put(r, "shown", shown)
        shown = self._get(r, "shown")
        rows_idx = np.arange(len(images))
        truth = rates[rows_idx, owner]
        measured = np.nanmean(counts, 0)[rows_idx, owner] / (1.0 if design.is_rig(self.neurons) else cfg.window)
        ctrl = self._controls()
        rep = self._get(r, "twin_report")
        twin = self._get(r, "twin")
        err = _readout_errors(self.neurons, rep["readout"], self.size / twin.config.image_size, self.units)
        rf, _ = self._seat_rf(r)
        oracle = np.array([np.nan if v is None else v for v in rep["oracle_correlation"]], float)
        per = 1.0 if design.is_rig(self.neurons) else cfg.window     # the twin predicts counts per window
        rows = neuron_rows(neurons=self.neurons, images=images, owner=owner, pole=pole, truth=truth, measured=measured,
                           predicted=syn["predicted"].double().numpy() / per, ctrl=ctrl, oracle=oracle,
                           test_corr=rep["test_correlation"], readout_err=err, rf_estimate=rf,
                           blank=self._blank(shown, per) if cfg.blank_lei else None)
        kinds = kind_rows(rows, reliable_oracle=cfg.reliable_oracle)
        mei_i = torch.as_tensor([row["mei_index"] for row in rows])
        lei_i = torch.as_tensor([row["lei_index"] for row in rows])
        summary = {"round": r, "neurons": rows, "per_kind": kinds,
                   "twin": {k: rep[k] for k in ("median_test_correlation", "split_sizes", "train_seconds")},
                   "images_recorded": int(self._data(r)[0].shape[0]) + len(images)}
        self._put(r, "round", summary)
        if self.path is not None:
            with_blank = torch.cat([images, torch.full_like(images[:1], 0.5)])   # lei_index len(images): the blank
            _save_tensors(self._dir(r) / "stimuli.safetensors", {"mei": images[mei_i], "lei": with_blank[lei_i]})
            self._seal_round(r)

    @staticmethod
    def _blank(shown: Mapping[str, torch.Tensor], per: float) -> tuple[np.ndarray, np.ndarray]:
        """Per unit, the blank's noise-free response (NaN for a rig) and its measured trial mean (rates)."""
        with np.errstate(all="ignore"):
            measured = np.nanmean(shown["blank_counts"].double().numpy(), 0)[0] / per
        return shown["blank_rates"].double().numpy()[0], measured

    def _controls(self) -> dict[str, np.ndarray]:
        """The controls (computed once, in round 0, on the noise-free responses of a simulated population)."""
        if (0, "controls") not in self.mem and not (self.path is not None and (self._dir(0) / "controls.json").exists()):
            rec = self._get(0, "recorded")
            nat = torch.as_tensor(rec["block"].numpy() != MAPPING)
            rates = rec["rates"].double().numpy()[nat.numpy()]
            if not np.isfinite(rates).any():        # a rig: the measured trial means
                rates = np.nanmean(rec["counts"].double().numpy()[:, nat.numpy()], 0)
            true_rf = getattr(self.neurons, "receptive_fields", None)
            rf = np.array([p[:2] for p in true_rf]) if true_rf is not None else rec["rf_xy"].double().numpy()
            c = design.controls(self.neurons, rf, rec["stimuli"][nat], rates, norm=self.cfg.norm,
                                aperture=self.cfg.aperture, seed=self.cfg.seed)
            self._put(0, "controls", {k: (np.asarray(v, float).tolist() if k != "gabor_params" else v)
                                      for k, v in c.items()})
        return {k: (np.asarray(v, float) if k != "gabor_params" else v) for k, v in self._get(0, "controls").items()}

    def _seal_round(self, r: int) -> None:
        """The round's own record: a manifest with the sha256 of every file in its folder."""
        from actmax.core.records import RunRecord, now
        rec = RunRecord(self._dir(r))
        rec.write_manifest({"kind": "closed_loop_round", "round": r, "status": "finished", "finished": now(),
                            "spec": {"scorer": spec_text(self.cfg.neurons), "round": r},
                            "files": rec.file_digests()})

    # -- the run-kind protocol ------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], path: Path, **live: Any) -> "ClosedLoopRun":
        return cls(LoopConfig.from_dict({**spec["config"], "neurons": spec["scorer"]}), path)

    def record_spec(self) -> dict[str, Any]:
        cfg = {k: v for k, v in asdict(self.cfg).items() if k != "neurons"}
        return {"scorer": spec_text(self.cfg.neurons), "config": json.loads(json.dumps(cfg)), "seed": self.cfg.seed}

    @property
    def position(self) -> int:
        return self.pos

    @property
    def total(self) -> int:
        return self.pos if self.stopped else len(PHASES) * (self.cfg.rounds + 1)

    def on_record(self, rec: Any) -> None:
        import shutil
        self.path = rec.path
        for old in rec.path.glob("round_*"):        # a replaced run's rounds (--overwrite)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
        (rec.path / "closed_loop.json").unlink(missing_ok=True)

    def on_resumed(self, rec: Any, from_checkpoint: bool) -> None:
        self.path = rec.path

    def commit(self, rec: Any) -> bool:
        return True

    def claims(self) -> list[str]:
        if self.path is None:
            return []
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.glob("round_*/**/*")
                      if p.is_file() and not p.name.startswith("."))

    def state(self) -> dict[str, Any]:
        return {"position": self.pos, "stopped": self.stopped, "cpu": [float(c) for c in self.cpu],
                "gains": [(-1.0 if g is None else float(g)) for g in self.gains]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            self.pos, self.stopped = int(state["position"]), bool(state["stopped"])
            self.gains = [None if g < 0 else g for g in state.get("gains", [])]
            self.cpu = [float(c) for c in state.get("cpu", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"checkpoint state does not fit a closed loop ({exc})") from None
        self.mem.clear()

    def final_round(self) -> int:
        return (self.pos - 1) // len(PHASES)

    def result(self, rec: Any, elapsed: float) -> dict[str, Any]:
        last = self.final_round()
        rounds = [self._get(k, "round") for k in range(last + 1)]
        final = dict(rounds[-1])
        n = len(PHASES)
        final["rounds"] = [{"round": s["round"], "per_kind": s["per_kind"], "images_recorded": s["images_recorded"],
                            "twin_median_test_correlation": s["twin"]["median_test_correlation"],
                            "cpu_s": dict(zip(PHASES, self.cpu[n * s["round"]:n * s["round"] + n]))} for s in rounds]
        final["measured_mei_gain"] = self.gains
        final["stopped_early"] = self.stopped
        final["config"] = {"neurons": self.cfg.neurons, **self.record_spec()["config"]}
        final["elapsed_s"] = round(elapsed, 1)
        final["out"] = None if self.path is None else str(self.path)
        return final

    def write_final(self, rec: Any, result: dict[str, Any]) -> None:
        last = result["round"]
        fileio.atomic_write_json(rec.path / "closed_loop.json", result)
        stim = _load_tensors(self._dir(last) / "stimuli.safetensors")
        rec.write_stimuli({"mei": stim["mei"], "lei": stim["lei"]}, metadata={"round": str(last)})

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"rounds_done": result["round"], "stopped_early": result["stopped_early"]}

    def description(self) -> str:
        return f"closed loop, {self.cfg.rounds} rounds"

    def postfix(self) -> str | None:
        r, phase = divmod(self.pos, len(PHASES))
        return f"round {r} {PHASES[phase] if phase < len(PHASES) else ''}".strip()

    def parts(self) -> list[Any]:
        return [self.neurons]

    @classmethod
    def stored_result(cls, rec: Any, manifest: Mapping[str, Any], state: Mapping[str, Any],
                      meta: Mapping[str, Any]) -> dict[str, Any]:
        return json.loads(rec.check_file("closed_loop.json").read_text())

    @classmethod
    def read_stimuli(cls, rec: Any) -> list[tuple[str, Any]]:
        s = rec.stimuli()
        return [(f"unit{u:04d}_{pole}", s[pole][u]) for pole in ("mei", "lei") for u in range(len(s[pole]))]


def closed_loop(config: LoopConfig, *, out_dir: str | Path, overwrite: bool = False,
                progress: bool | None = None) -> dict[str, Any]:
    """Run the closed loop with rounds into ``out_dir`` (resume a killed one with :func:`actmax.core.runs.resume`)."""
    from actmax.core.runs.driver import execute
    return execute(lambda: ClosedLoopRun(config), out_dir=out_dir, overwrite=overwrite, progress=progress)


__all__ = ["LoopConfig", "ClosedLoopRun", "closed_loop", "format_kinds"]

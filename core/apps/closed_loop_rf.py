"""Where the closed loop puts each neuron's receptive field, round by round (a mixin of
:class:`actmax.core.apps.closed_loop_run.ClosedLoopRun`).

* Round 0: the RF-mapping block's correlation maps (:func:`closed_loop_design.estimate_rf`); the
  readouts start there.
* Rounds >= 1 (``rf_update``): re-estimated from everything recorded before the round, the tuning and
  Gabor probes centred there; a warm-started readout more than RESEAT_PX from it is re-seated.
* The position block (``position_grid``, round 1): neurons whose round-0 maps found no linear or
  excitatory field (a dual-feature cell, whose pixel energy suppresses on average) see their best tuning
  Gabor moved over a grid around the estimate; where the response profile is significant its peak
  replaces the maps' estimate from round 1's fit on (the maps, even with the tuning data, place dual
  cells 1.5-2 px off where the block places them within 0.2 px). A readout more than
  POSITION_RESEAT_PX from the block's centre is re-seated there.
* ``rf_start='true'`` (model neurons only): the true RF throughout, the known-RF arm of a benchmark.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actmax.core.apps import closed_loop_design as design
from actmax.core.apps.closed_loop_design import POSITION, TEST
from actmax.core.errors import InputError

#: a warm-started readout farther than this (px) from its neuron's updated RF estimate restarts there
RESEAT_PX = 2.0
#: ... and this far (px) from a centre the position block measured: a response profile on a grid locates
#: a cell to a fraction of a pixel, where the maps' estimates of other cells are good to about a pixel
POSITION_RESEAT_PX = 0.5


class ReceptiveFields:
    """The RF half of a closed-loop run: needs ``cfg``, ``path``, ``mem``, ``_get``, ``_dir``, ``_noise_seed``,
    ``neurons``, ``units``, ``size`` and ``channels`` from the run."""

    cfg: Any
    mem: dict[tuple[int, str], Any]
    neurons: Any
    units: int
    size: int
    channels: int
    _get: Any                       # the run's reader of a round's records
    _noise_seed: Any                # the run's seed of a block's trial noise
    _dir: Any                       # the run's folder of a round
    path: Any

    def _record_positions(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Round 1's position block, recorded right after the round's tuning block (as a lab maps position with
        the orientation it has just measured): for every neuron without a significant round-0 map, its best
        Gabor of this round on a grid around its RF estimate. Appended to ``rec``; owners in ``position_owner``."""
        cfg = self.cfg
        with np.errstate(all="ignore"):
            measured = np.nanmean(rec["counts"], 0)          # record_block's arrays, not yet stored
        params = np.asarray(rec["gabor_params"], float)
        best = {u: g for u in np.flatnonzero(self._unmapped())
                if (g := design.best_measured_gabor(params, measured, int(u), self.channels)) is not None}
        pos_p, owner = design.position_params(best, self._rf(1), grid=cfg.position_grid, size=self.size)
        if not pos_p:
            return {**rec, "position_owner": torch.zeros(0, dtype=torch.long)}
        img = design.render_params(pos_p, self.size, self.channels, cfg.norm)
        rates, counts = design.record_block(self.neurons, img, np.full(len(img), cfg.repeats), window=cfg.window,
                                            seed=self._noise_seed(1, 8))
        return {"stimuli": torch.cat([rec["stimuli"], img]), "counts": np.concatenate([rec["counts"], counts], axis=1),
                "rates": np.concatenate([rec["rates"], rates]),
                "block": np.concatenate([rec["block"], np.full(len(img), POSITION)]),
                "gabor_params": torch.cat([torch.as_tensor(params), torch.as_tensor(design.encode_params(pos_p))]),
                "position_owner": torch.as_tensor(owner)}

    def _unmapped(self) -> np.ndarray:
        """Per neuron, True where round 0's maps found no significant linear or excitatory field (both arms
        agree: round 0 is the same in the loop and in its natural-only control)."""
        if (0, "unmapped") not in self.mem:
            rec = self._get(0, "recorded")
            fit = rec["block"].numpy() != TEST
            with np.errstate(all="ignore"):
                resp = np.nanmean(rec["counts"].double().numpy()[:, fit], 0) / self.cfg.window
            self.mem[(0, "unmapped")] = ~design.estimate_rf(rec["stimuli"][torch.as_tensor(fit)], resp,
                                                            return_found=True)[1]
        return self.mem[(0, "unmapped")]

    def _position_rf(self, upto: int) -> np.ndarray:
        """Per neuron, the RF centre round 1's position block points to where it was recorded by round
        ``upto`` and its profile is significant (:func:`design.position_centres`), else NaN."""
        out = np.full((self.units, 2), np.nan)
        if not self.cfg.position_grid or upto < 1 or self.cfg.natural_only or self.cfg.rf_start == "true":
            return out
        rec = self._get(1, "recorded")
        if "position_owner" not in rec or not len(rec["position_owner"]):
            return out
        pos = rec["block"].numpy() == POSITION
        return design.position_centres(rec["gabor_params"].double().numpy()[pos], rec["counts"].double().numpy()[:, pos],
                                       rec["position_owner"].numpy(), self.units)

    def _seat_rf(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """The RF round ``r``'s fit re-seats readouts to and its summary reports, and per neuron whether it is
        the position block's centre: :meth:`_rf`, with the block's centre where round 1 recorded a significant
        one (in round 1 the block is recorded after the round's probes were centred)."""
        rf = np.array(self._rf(r), float)
        pos = self._position_rf(r)
        ok = np.isfinite(pos).all(1)
        rf[ok] = pos[ok]
        return rf, ok

    def _rf(self, r: int) -> np.ndarray:
        """The RF estimates (units, 2) round ``r`` centres its probes on: round 0's, or with ``rf_update``
        re-estimated from everything recorded before round ``r`` (all blocks and shown MEIs/LEIs, trial means).
        With ``rf_start='true'`` (the known-RF arm of a benchmark) every round uses the true RF."""
        key = (r, "rf")
        if key not in self.mem:
            if self.cfg.rf_start == "true":
                self.mem[key] = np.asarray(self._true_rf(), float)
            elif r == 0 or not self.cfg.rf_update:
                self.mem[key] = self._get(0, "recorded")["rf_xy"].double().numpy()
            elif "rf_xy" in self.mem.get((r, "recorded"), {}) or (
                    self.path is not None and (self._dir(r) / "recorded.safetensors").exists()):
                self.mem[key] = self._get(r, "recorded")["rf_xy"].double().numpy()
            else:
                parts = [self._get(k, what) for k in range(r) for what in ("recorded", "shown")
                         if not (what == "shown" and self.cfg.natural_only)]
                stim = torch.cat([p["stimuli"] for p in parts])
                with np.errstate(all="ignore"):
                    resp = np.concatenate([np.nanmean(p["counts"].double().numpy(), 0) for p in parts])
                rf = design.estimate_rf(stim, resp)
                pos = self._position_rf(r - 1)          # the position block's centre, where it was significant
                ok = np.isfinite(pos).all(1)
                rf[ok] = pos[ok]
                self.mem[key] = rf
        return self.mem[key]

    def _readout_start(self, opts: dict[str, Any], r: int) -> dict[str, Any]:
        """Round 0's readouts start at the RF estimate where the twin trainer takes one (``initial_positions``,
        pixel centres (x, y)); later rounds start from the previous twin, except readouts that sit more than
        RESEAT_PX from their neuron's updated RF estimate (``rf_update``): those restart there."""
        from actmax.scorers.twin.train import TrainOptions
        if "initial_positions" in TrainOptions.__dataclass_fields__ and r == 0:
            if self.cfg.rf_start == "true":
                opts["initial_positions"] = self._true_rf()
            else:
                opts["initial_positions"] = self._get(0, "recorded")["rf_xy"].double().numpy().tolist()
        elif "initial_positions" in TrainOptions.__dataclass_fields__ and self.cfg.rf_update:
            moved = self._readouts_off_rf(r)
            if np.isfinite(moved).any():
                opts["initial_positions"] = moved.tolist()
        return opts

    def _true_rf(self) -> list[list[float]]:
        """The neurons' true RF centres (x, y) in pixels, for ``rf_start='true'``; model neurons know them."""
        true_rf = getattr(self.neurons, "receptive_fields", None)
        if true_rf is None:
            raise InputError(f"closed loop: rf_start='true' needs neurons that know their receptive fields "
                             f"(model neurons); {self.cfg.neurons!r} does not")
        return [[float(p[0]), float(p[1])] for p in true_rf]

    def _readouts_off_rf(self, r: int) -> np.ndarray:
        """Per neuron, the updated RF estimate where the previous twin's readout sits more than RESEAT_PX
        (POSITION_RESEAT_PX from a position-block centre) from it (that readout is re-seated there before the
        warm-started fit), else NaN (kept)."""
        prev = self._get(r - 1, "twin_report")["readout"]["neurons"]
        scale = self.size / self._get(r - 1, "twin").config.image_size
        rf, by_position = self._seat_rf(r)
        out = np.full((self.units, 2), np.nan)
        for u, row in enumerate(prev[:self.units]):
            x, y = (row["x_px"] + 0.5) * scale, (row["y_px"] + 0.5) * scale
            limit = POSITION_RESEAT_PX if by_position[u] else RESEAT_PX
            if np.isfinite(rf[u]).all() and np.hypot(x - rf[u][0], y - rf[u][1]) > limit:
                out[u] = rf[u]
        return out

"""The synthesize run kind: batched gradient ascent of many units x poles x seeds.

Every target (unit, pole, seed) is one element of a single batch of codes: one forward and
one backward pass through generator and scorer serve all of them, each element ascending
its own unit's response (``high``) or its negation (``low``). The driver
(:mod:`actmax.core.runs.driver`) checkpoints every ``checkpoint_every`` steps.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.contracts import ContractError, Target, check_count, check_device, make_targets, shape_checks_only
from actmax.core.errors import InputError, RecordError
from actmax.core.records import RunRecord, save_image, save_montage, state_field
from actmax.core import files as fileio
from actmax.core.registry import generators, optimizers, scorers, spec_text
from actmax.core.runs.kind import BaseRun
from actmax.core.colour import colour_tuning
from actmax.core.synthesize import (DEFAULT_LUMINANCE, SynthesisResult, best_per_target, budget_from_scorer,
                                    default_budget, split_recipe)
from actmax.core.transforms import SynthesisTransforms, rms_contrast


def _check_gradient_optimizer(opt_spec: Any) -> None:
    """A gradient-free optimizer named as the recipe is one clear error before it is built (it would
    otherwise fail on a missing ``dim``, which only evolution supplies)."""
    from actmax.core.synthesize import DEFAULT_RECIPE

    name = opt_spec.get("name") if isinstance(opt_spec, Mapping) else None
    if not isinstance(name, str):
        return
    if not getattr(optimizers.entry(name).factory, "gradient_based", False):   # the class, before it is built
        raise InputError(f"synthesis needs a gradient optimizer (`ascent`, e.g. {DEFAULT_RECIPE!r}); "
                         f"{name!r} is gradient-free: run it with `actmax evolve`")


class SynthesizeRun(BaseRun):
    """The synthesize run kind: every target (unit, pole, seed) one element of one batch, one step at a time."""

    kind = "synthesize"
    progress_unit = "step"

    def __init__(self, generator: Any, scorer: Any, *, units: Sequence[int] | None, poles: Sequence[str],
                 seeds: Sequence[int], ascent: Any, device: str | None, amp: bool = False,
                 transforms: Mapping[str, Any] | None = None, checkpoint_every: int = 25) -> None:
        self.specs = {"generator": generator, "scorer": scorer, "ascent": ascent, "device": device,
                      "poles": list(poles), "seeds": [int(s) for s in seeds], "transforms": transforms}
        self.checkpoint_every = int(checkpoint_every)
        self.device = check_device(device)
        for u in (units if units is not None else []):
            check_count(u, "unit", 0)
        if not len(seeds):
            raise InputError("synthesize needs at least one seed (seeds is empty)")
        if units is not None and not len(units):
            raise InputError("synthesize: units is empty; give unit indices (units=None: every unit)")
        for s in seeds:
            check_count(s, "seed", 0)
        self.amp = bool(amp)
        self.gen = generators.create(generator).to(self.device).eval()
        self.scorer = scorers.create(scorer).to(self.device).eval()
        if not self.scorer.differentiable:
            why = getattr(self.scorer, "not_differentiable_why", "")   # a wrapped module says why
            raise InputError(f"scorer {getattr(self.scorer, 'fn_name', type(self.scorer).__name__)} is not "
                             f"differentiable{': ' + why if why else ''}; use `actmax evolve` (gradient-free) for it")
        units = list(range(self.scorer.units)) if units is None else [self.scorer.check_unit(u) for u in units]
        if not units:
            raise InputError("synthesize needs at least one unit")
        self.units, self.targets = units, make_targets(units, poles, seeds)
        self.per_unit = len(poles) * len(seeds)
        opt_spec, options = split_recipe(ascent)
        options.update(dict(transforms or {}))
        _check_gradient_optimizer(opt_spec)
        self.ascent = optimizers.create(opt_spec, seed=int(seeds[0]) if len(seeds) else 0)
        if not self.ascent.gradient_based:
            raise InputError("synthesize needs the gradient optimizer (`ascent`); "
                             "gradient-free optimizers run with `actmax evolve`")
        self.budget_source = "recipe"
        switched_off = any(k in options and options[k] is None for k in ("norm", "contrast"))
        if switched_off:
            self.budget_source = "recipe (switched off)"
        elif options.get("norm") is None and options.get("contrast") is None:
            scorer_budget = budget_from_scorer(self.scorer)
            options.update(scorer_budget)
            self.budget_source = "scorer"
            if not scorer_budget:
                scorer_budget = default_budget(self.scorer)
                options.update(scorer_budget)
                self.budget_source = "default"
                print(f"warning: scorer {type(self.scorer).__name__} has no contrast budget (input_contrast); "
                      f"using the default: RMS contrast {scorer_budget['contrast']} at {scorer_budget['contrast_size']} px "
                      "(median of natural image patches); give contrast=... in the recipe to choose another",
                      file=sys.stderr)
        self.luminance_source = "recipe" if "luminance" in options else "default"
        options.setdefault("luminance", DEFAULT_LUMINANCE)
        self.colour_source = "recipe" if options.get("colour") is not None else "default"
        if options.get("colour") is None:
            options["colour"] = "auto"
        self.transforms = SynthesisTransforms.from_options(options)
        if not self.transforms.luminance.startswith("pin:"):      # an explicit pin:<m> wins
            stated = getattr(self.scorer, "input_mean", None)     # the scorer's stated mean (e.g. its data's)
            if stated is not None:
                self.transforms.luminance_centre = float(stated)
                self.luminance_source += " (centre: scorer)"
        self.colour_units = self._decide_colour(units)
        if self.colour_units is not None:
            grey = {u for u, d in self.colour_units.items() if d["grey"]}
            self.transforms.grey_targets = torch.tensor([t.unit in grey for t in self.targets], device=self.device)
        self.code_shape = self.gen.code_shape
        # the transforms' random stream (jitter, noise), seeded like the optimiser
        seed = self.ascent.seed if self.ascent.seed is not None else (seeds[0] if len(seeds) else 0)
        self.rng = torch.Generator().manual_seed(int(seed))
        params = list(self.gen.parameters()) + list(self.scorer.parameters())
        self.grad_flags = [(p, p.requires_grad) for p in params]   # restored by restore_grad_flags()
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            init = torch.cat([self.gen.init_codes(1, seed=t.seed) for t in self.targets])
        self.ascent.start(init.to(self.device))
        self.unit_index = torch.tensor([t.unit for t in self.targets], device=self.device)
        self.sign = torch.tensor([t.sign for t in self.targets], device=self.device)
        self.rows: list[torch.Tensor] = []  # per-step responses, kept on the device (no per-step sync)
        #: ``rows`` holds steps ``_rows_from..``; with a record the earlier ones live in its append-only parts
        self._rows_from = 0
        self._parts: Any = None

    def _decide_colour(self, units: list[int]) -> dict[int, dict[str, Any]] | None:
        """Per unit, whether it is synthesised in grey (RGB generators only; ``colour`` in the recipe).

        ``auto`` measures it from the scorer (:func:`actmax.core.colour.colour_tuning`), ``grey``
        makes every unit grey, ``rgb`` none; None for a grey generator (nothing to decide).
        """
        if int(getattr(self.gen, "channels", 1) or 1) != 3:
            return None
        mode = self.transforms.colour
        if mode == "auto":
            return colour_tuning(self.scorer, units, size=int(self.gen.image_size))
        return {u: {"chromatic_share": None, "colour_direction": None, "grey": mode == "grey"} for u in units}

    def objective(self, codes: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            images = self.transforms.input(self.gen(codes), self.rng, train=True)
            responses = self.scorer(images.float() if not self.amp else images)
        return self.sign * responses.float().gather(1, self.unit_index[:, None])[:, 0]

    def _ascend_once(self) -> torch.Tensor:
        """One recipe step: transformed forward pass, gradient, gradient transforms, optimiser step."""
        codes = self.ascent.codes
        values = self.objective(codes)
        (grad,) = torch.autograd.grad(values.sum(), codes)
        grad = self.transforms.gradient(grad, self.code_shape, self.ascent.step_index, self.ascent.steps)
        self.ascent.ascend(grad)
        return values.detach()

    def step(self) -> int:
        if self.ascent.step_index == 0:
            values = self._ascend_once()  # first step: full input checks
        else:
            with shape_checks_only():
                values = self._ascend_once()
        self.rows.append(values * self.sign)
        return 1

    def _rows_array(self) -> np.ndarray:
        return torch.stack(self.rows).cpu().numpy() if self.rows else np.zeros((0, len(self.targets)))

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            images = self.transforms.input(self.gen(self.ascent.codes), None, train=False)
            resp = self.scorer(images).gather(1, self.unit_index[:, None])[:, 0]
        return images.cpu(), resp.cpu()

    def recipe(self) -> dict[str, Any]:
        """What the loop applied (for the manifest): optimiser, transforms, contrast budget."""
        opt = {k: getattr(self.ascent, k) for k in ("steps", "lr", "method", "schedule", "normalize", "decay")
               if hasattr(self.ascent, k)}
        out = {"optimizer": opt, "transforms": self.transforms.options(),
               "contrast_budget": {**self.transforms.budget(), "source": self.budget_source},
               "luminance": {**self.transforms.luminance_budget(), "source": self.luminance_source},
               "colour": self._colour_manifest()}
        if isinstance(self.scorer.state, dict):       # a twin's eye position / behaviour (issue 24)
            out["scorer_state"] = self.scorer.state
        return out

    def _in_parts(self) -> bool:
        return self._parts is not None and self._parts.active

    def _absorb(self) -> None:
        """Read the steps held in the record's parts back into memory (once, at the end)."""
        if self._rows_from == 0:
            return
        old = [part["rows"] for part in self._parts.read()]
        rows = torch.cat(old) if old else torch.zeros((0, len(self.targets)))
        if rows.ndim != 2 or rows.shape != (self._rows_from, len(self.targets)):
            raise RecordError(f"{self._parts.dir}: the parts do not hold steps 0..{self._rows_from - 1}")
        self.rows = list(rows.to(self.device, torch.float32)) + self.rows
        self._rows_from = 0

    def _colour_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.transforms.colour, "source": self.colour_source}
        if self.colour_units is None:
            return {**out, "applies": False, "why": "the generator renders grey images"}
        return {**out, "applies": True, "grey_units": [u for u, d in self.colour_units.items() if d["grey"]],
                "units": {str(u): d for u, d in self.colour_units.items()}}

    def target_colour(self) -> list[str]:
        """Per target: ``grey`` (synthesised in grey), ``rgb``, or ``-`` for a grey generator."""
        if self.colour_units is None:
            return ["-"] * len(self.targets)
        return ["grey" if self.colour_units[t.unit]["grey"] else "rgb" for t in self.targets]

    def table(self) -> pd.DataFrame:
        self._absorb()
        n_steps, n_t = len(self.rows), len(self.targets)
        arr = self._rows_array()
        return pd.DataFrame({
            "step": np.repeat(np.arange(n_steps), n_t), "index": np.tile(np.arange(n_t), n_steps),
            "unit": np.tile([t.unit for t in self.targets], n_steps),
            "pole": np.tile([t.pole for t in self.targets], n_steps),
            "seed": np.tile([t.seed for t in self.targets], n_steps),
            "score": arr.reshape(-1)})

    def restore_grad_flags(self) -> None:
        """Give the modules passed in their ``requires_grad`` flags back (frozen only during the run)."""
        for p, flag in self.grad_flags:
            p.requires_grad_(flag)

    def state(self) -> dict[str, Any]:
        """Bounded while the responses live in the record's parts; inline otherwise (the final checkpoint)."""
        state = {"ascent": self.ascent.state_dict(), "rng": self.rng.get_state(),
                 "image_constraints": {"luminance": self.transforms.luminance, "colour": self.transforms.colour}}
        if self._in_parts():
            if self._rows_from != self.ascent.step_index:
                raise RecordError("internal: checkpoint before the step's part was written")
            return {**state, "rows_in": "parts"}
        self._absorb()
        return {**state, "rows": torch.from_numpy(self._rows_array())}

    def _keep_writers_constraints(self, saved: Any) -> None:
        """A checkpoint written before the luminance pin and grey synthesis (no ``image_constraints``)
        resumes as it was written: mean luminance free, every unit in RGB; a newer one must agree."""
        if saved is None:
            self.transforms.luminance, self.luminance_source = "free", "record (written before luminance pinning)"
            self.transforms.grey_targets = None
            if self.colour_units is not None:
                self.colour_units = {u: {**d, "grey": False} for u, d in self.colour_units.items()}
            self.colour_source = "record (written before grey synthesis)"
            return
        mine = {"luminance": self.transforms.luminance, "colour": self.transforms.colour}
        if dict(saved) != mine:
            raise RecordError(f"checkpoint's image constraints {dict(saved)} differ from the run's {mine}")

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's state; anything that does not fit this run is one RecordError."""
        try:
            self.ascent.load_state_dict(state_field(state, "ascent"))
            self._keep_writers_constraints(state.get("image_constraints"))
            rng = state.get("rng", state["ascent"].get("rng"))  # older checkpoints kept it in the optimiser
            if rng is not None:
                self.rng.set_state(rng)
            if "rows" not in state and state.get("rows_in") == "parts":   # the responses stay in the parts
                if self.ascent.step_index < 1:
                    raise RecordError("checkpoint is inconsistent: rows in parts, but no step done")
                self.rows, self._rows_from = [], self.ascent.step_index
                return
            rows = state_field(state, "rows").to(self.device, torch.float32)
        except RecordError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as exc:
            raise RecordError(f"checkpoint state does not fit this synthesis ({type(exc).__name__}: {exc})") from exc
        n_steps = self.ascent.step_index
        if rows.numel() and (rows.ndim != 2 or rows.shape[1] != len(self.targets)):
            raise RecordError(f"checkpoint rows have shape {tuple(rows.shape)}, expected (steps, {len(self.targets)})")
        if (rows.shape[0] if rows.numel() else 0) != n_steps:
            raise RecordError(f"checkpoint is inconsistent: {rows.shape[0] if rows.numel() else 0} rows for "
                              f"{n_steps} steps")
        self.rows = list(rows) if rows.numel() else []
        self._rows_from = 0

    # -- the run-kind protocol --------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], path: Path, **live: Any) -> "SynthesizeRun":
        return cls(spec["generator"], spec["scorer"], units=spec["units"], poles=spec["poles"], seeds=spec["seeds"],
                   ascent=spec["ascent"], device=spec.get("device"), amp=spec.get("amp", False),
                   transforms=spec.get("transforms"), checkpoint_every=spec.get("checkpoint_every", 25))

    def record_spec(self) -> dict[str, Any]:
        s = self.specs
        spec = {"generator": spec_text(s["generator"]), "scorer": spec_text(s["scorer"]), "ascent": spec_text(s["ascent"]),
                "units": self.units, "poles": s["poles"], "seeds": s["seeds"], "device": s["device"], "amp": self.amp,
                "checkpoint_every": self.checkpoint_every}
        if s["transforms"]:
            spec["transforms"] = dict(s["transforms"])
        return spec

    @property
    def position(self) -> int:
        return self.ascent.step_index

    @property
    def total(self) -> int:
        return self.ascent.steps

    def parts(self) -> list[Any]:
        return [self.gen, self.scorer]

    def description(self) -> str:
        return f"synthesize {len(self.targets)} targets"

    def on_record(self, rec: RunRecord) -> None:
        rec.update_manifest(recipe=self.recipe())
        self._parts = rec.parts
        rec.parts.start()

    def on_resumed(self, rec: RunRecord, from_checkpoint: bool) -> None:
        """Continue the record's parts (verified by the resume), or start them (an inline or no checkpoint)."""
        self._parts = rec.parts
        if rec.parts.active != bool(self._rows_from) or (rec.parts.active and rec.parts.end != self._rows_from):
            raise RecordError(f"{rec.path}: the checkpoint's state and its claim on parts/ disagree "
                              "(corrupt or edited)")
        if not rec.parts.active:
            rec.parts.start()

    def commit(self, rec: RunRecord) -> bool:
        if self.checkpoint_every and self.ascent.step_index % self.checkpoint_every == 0:
            self.check_finite()
            if self._in_parts():   # the responses since the last checkpoint: one small part
                self._parts.append(self._rows_from, self.ascent.step_index,
                                   {"rows": torch.from_numpy(self._rows_array()).float()})
                self.rows, self._rows_from = [], self.ascent.step_index
            return True
        return False

    def check_finite(self) -> None:
        """Non-finite responses are an error, as in evolve (never a finished record full of NaN)."""
        arr = self._rows_array()
        if arr.size and not np.all(np.isfinite(arr)):
            step, target = np.argwhere(~np.isfinite(arr))[0]
            step += self._rows_from
            t = self.targets[int(target)]
            raise ContractError(f"scorer returned non-finite responses (first at step {int(step)}, unit {t.unit}, "
                                f"pole {t.pole}, seed {t.seed})")

    def result(self, rec: RunRecord | None, elapsed: float) -> SynthesisResult:
        self.check_finite()
        images, resp = self.final()
        if not torch.all(torch.isfinite(resp)):
            raise ContractError("scorer returned non-finite responses for the final images")
        table = pd.DataFrame({"index": range(len(self.targets)), "unit": [t.unit for t in self.targets],
                              "pole": [t.pole for t in self.targets], "seed": [t.seed for t in self.targets],
                              "response": resp.numpy(),
                              "mean_luminance": images.mean(dim=(1, 2, 3)).numpy(),
                              "rms_contrast": rms_contrast(images).numpy(),
                              "colour": self.target_colour()})
        return SynthesisResult(images=images, codes=self.ascent.codes.detach().cpu(), targets=self.targets,
                               responses=resp, table=table, out_dir=None if rec is None else rec.path)

    def write_final(self, rec: RunRecord, result: SynthesisResult) -> None:
        """Derived files, all rebuildable from the final checkpoint."""
        images = result.images
        rec.write_scores(self.table())
        rec.write_codes({"codes": result.codes})
        fileio.atomic_write_bytes(rec.path / "targets.csv", result.table.to_csv(index=False).encode())
        rec.write_stimuli({"images": images}, metadata={"rows": "targets.csv"})
        for i, (t, img) in enumerate(zip(self.targets, images)):
            save_image(img, rec.path / "images" / f"{_label(t)}.png", stimulus=f"images[{i}]")
        save_montage(images, rec.path / "images" / "montage.png", nrow=self.per_unit,
                     labels=[_tile_label(t.unit, t.pole, t.seed) for t in self.targets])
        _save_best_per_target(result.table, images, rec.path)

    def summary(self, result: SynthesisResult) -> dict[str, Any]:
        return {"steps_done": self.ascent.step_index, "targets": len(self.targets)}

    def close(self) -> None:
        self.restore_grad_flags()           # the modules passed in are not left frozen

    @classmethod
    def stored_result(cls, rec: RunRecord, manifest: Mapping[str, Any], state: Mapping[str, Any],
                      meta: Mapping[str, Any]) -> SynthesisResult:
        """The result of a finished, verified synthesis read from its files (no part built, no step re-run)."""
        try:
            table = pd.read_csv(rec.check_file("targets.csv"))
            table = table.astype({"index": "int64", "unit": "int64", "seed": "int64", "response": "float32"})
            table = table.astype({c: "float32" for c in ("mean_luminance", "rms_contrast") if c in table})
            images, codes = rec.stimuli()["images"], rec.codes()["codes"]
            targets = [Target(int(r.unit), str(r.pole), int(r.seed)) for r in table.itertuples()]
        except (KeyError, ValueError, AttributeError) as exc:
            raise RecordError(f"{rec.path}: the finished record lacks {exc}; `actmax resume --repair {rec.path}`") from None
        if len(images) != len(table) or len(codes) != len(table):
            raise RecordError(f"{rec.path}: stimuli, codes and targets.csv disagree in length; "
                              f"`actmax resume --repair {rec.path}`")
        return SynthesisResult(images=images, codes=codes, targets=targets,
                               responses=torch.tensor(table["response"].to_numpy()), table=table, out_dir=rec.path)

    @classmethod
    def read_stimuli(cls, rec: RunRecord) -> list[tuple[str, torch.Tensor]]:
        """Every target of ``targets.csv``, labelled like its PNG preview (``unit0003_mei_seed0``)."""
        stimuli = rec.stimuli()
        targets = pd.read_csv(rec.check_file("targets.csv"))
        return [(f"unit{r.unit:04d}_{'mei' if r.pole == 'high' else 'lei'}_seed{r.seed}", stimuli["images"][i])
                for i, r in enumerate(targets.itertuples())]

    @classmethod
    def extremes(cls, record: Path, units: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The MEI (highest) and LEI (lowest) response per unit."""
        path = record / "targets.csv"
        if not path.exists() and RunRecord(record).manifest().get("status") != "finished":
            raise RecordError(f"{record}: targets.csv is missing (an unfinished synthesis?)")
        RunRecord(record).check_file("targets.csv")
        t = pd.read_csv(path)
        mx, mn = np.full(units, np.nan), np.full(units, np.nan)
        for (u, pole), d in t.groupby(["unit", "pole"]):
            if pole == "high":
                mx[int(u)] = d["response"].max()
            else:
                mn[int(u)] = d["response"].min()
        return mx, mn, "MEI/LEI responses"


def _label(t: Target) -> str:
    return f"unit{t.unit:04d}_{'mei' if t.pole == 'high' else 'lei'}_seed{t.seed}"


def _save_best_per_target(table: pd.DataFrame, images: torch.Tensor, path: Path) -> None:
    """``best.png``: one tile per unit and pole (a row per unit, poles as in the spec), listed in ``best.csv``.

    Responses of different units are not comparable, so there is no single "best" image.
    """
    best = best_per_target(table)
    poles = list(dict.fromkeys(best["pole"]))
    best.insert(0, "tile_row", best.groupby("pole").cumcount())
    best.insert(1, "tile_col", [poles.index(p) for p in best["pole"]])
    best.to_csv(path / "best.csv", index=False)
    save_montage(images[torch.tensor(best["index"].tolist(), dtype=torch.long)], path / "best.png", nrow=len(poles),
                 labels=[_tile_label(u, p) for u, p in zip(best["unit"], best["pole"])])


def _tile_label(unit: Any, pole: str, seed: Any = None) -> str:
    """A montage caption: ``unit 3 MEI`` (``s1``: seed 1)."""
    return f"unit {int(unit)} {'MEI' if pole == 'high' else 'LEI'}" + (f" s{int(seed)}" if seed is not None else "")

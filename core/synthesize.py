"""Gradient synthesis of MEIs and LEIs for many units x poles x seeds in one batch.

Every target (unit, pole, seed) is one element of a single batch of codes: one forward and
one backward pass through generator and scorer serve all of them, each element ascending
its own unit's response (``high``) or its negation (``low``). The record holds the per-step
response of every target (``scores.parquet``), the final codes, each image and a montage.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.contracts import ContractError, Target, make_targets, shape_checks_only
from actmax.core.errors import RecordError
from actmax.core.progress import progress_bar
from actmax.core.records import RunRecord, save_image, save_montage, state_field
from actmax.core.registry import generators, optimizers, parse_spec, scorers, spec_text
from actmax.core.transforms import TRANSFORM_KEYS, SynthesisTransforms


@dataclass
class SynthesisResult:
    """Synthesised images and how far each drove its unit."""

    images: torch.Tensor          # (T, C, H, W): what the scorer saw (after the input limit)
    codes: torch.Tensor           # (T, dim)
    targets: list[Target]
    responses: torch.Tensor       # (T,) final response of each target's own unit
    table: pd.DataFrame           # one row per target: unit, pole, seed, response
    out_dir: Path | None = None

    def image(self, unit: int, pole: str = "high", seed: int | None = None) -> torch.Tensor:
        for i, t in enumerate(self.targets):
            if t.unit == unit and t.pole == pole and (seed is None or t.seed == seed):
                return self.images[i]
        raise KeyError(f"no target unit={unit} pole={pole} seed={seed}")

    def __repr__(self) -> str:
        units = sorted({t.unit for t in self.targets})
        shown = units if len(units) <= 8 else f"{units[:8]}... ({len(units)} units)"
        spans = []
        for pole, name in (("high", "MEI"), ("low", "LEI")):
            vals = [float(r) for t, r in zip(self.targets, self.responses) if t.pole == pole]
            if vals:
                spans.append(f"{name} {min(vals):.4g}..{max(vals):.4g}")
        where = str(self.out_dir) if self.out_dir is not None else "not saved (no out_dir)"
        return (f"SynthesisResult({len(self.targets)} targets, units={shown}, "
                f"responses: {', '.join(spans) or '-'} (range over units), record={where})")


#: The default synthesis recipe (optimiser + loop transforms), chosen with
#: benchmarks/bench_synthesis_recipes.py (README, "Synthesis recipe"): SGD with momentum on the
#: per-target RMS-normalised gradient, the gradient's spectrum shaped by 1/f (Fourier
#: preconditioning), no jitter; best in pixel space. A bare ``"ascent"`` spec keeps the older
#: Adam defaults (lr 0.05, jitter 1).
DEFAULT_RECIPE = "ascent:method='sgd',normalize=True,lr=0.01,jitter=0,precondition=1.0"


def split_recipe(ascent: Any) -> tuple[Any, dict[str, Any]]:
    """Split an ascent spec into the optimiser's spec and the loop's transform options.

    ``"ascent:method=sgd,lr=1,jitter=2,blur_sigma=1"`` -> ``("ascent:method='sgd',lr=1",
    {"jitter": 2, "blur_sigma": 1})``: a recipe is written as one spec, but the optimiser only
    optimises and the loop applies the transforms. Live optimiser objects pass through.
    """
    if isinstance(ascent, str):
        name, options = parse_spec(ascent)
    elif isinstance(ascent, Mapping):
        name, options = ascent.get("name"), {k: v for k, v in ascent.items() if k != "name"}
    else:
        return ascent, {}
    moved = {k: options.pop(k) for k in list(options) if k in TRANSFORM_KEYS}
    return {"name": name, **options}, moved


def budget_from_scorer(scorer: Any) -> dict[str, Any]:
    """The contrast budget a scorer asks for: RMS ``input_contrast`` (at ``input_contrast_size``
    px), else the legacy L2 ``input_norm`` (twins saved before the RMS budget), else none."""
    contrast = getattr(scorer, "input_contrast", None)
    if contrast:
        return {"contrast": float(contrast), "contrast_size": getattr(scorer, "input_contrast_size", None)}
    norm = getattr(scorer, "input_norm", None)
    return {"norm": float(norm)} if norm else {}


def _check_gradient_optimizer(opt_spec: Any) -> None:
    """A gradient-free optimizer named as the recipe is one clear error before it is built (it would
    otherwise fail on a missing ``dim``, which only evolution supplies)."""
    name = opt_spec.get("name") if isinstance(opt_spec, Mapping) else None
    if not isinstance(name, str):
        return
    factory = optimizers.entry(name).factory
    if not getattr(factory, "gradient_based", False):
        raise ValueError(f"synthesis needs a gradient optimizer (`ascent`, e.g. {DEFAULT_RECIPE!r}); "
                         f"{name!r} is gradient-free: run it with `actmax evolve`")


class _Synthesis:
    def __init__(self, generator: Any, scorer: Any, *, units: Sequence[int] | None, poles: Sequence[str],
                 seeds: Sequence[int], ascent: Any, device: str | None, amp: bool = False,
                 transforms: Mapping[str, Any] | None = None) -> None:
        from actmax.core.evolve import check_count, check_device

        self.device = check_device(device)
        for u in (units if units is not None else []):
            check_count(u, "unit", 0)
        if not len(seeds):
            raise ValueError("synthesize needs at least one seed (seeds is empty)")
        if units is not None and not len(units):
            raise ValueError("synthesize: units is empty; give unit indices (units=None: every unit)")
        for s in seeds:
            check_count(s, "seed", 0)
        self.amp = bool(amp)
        self.gen = generators.create(generator).to(self.device).eval()
        self.scorer = scorers.create(scorer).to(self.device).eval()
        if not getattr(self.scorer, "differentiable", False):
            why = getattr(self.scorer, "not_differentiable_why", "")   # a wrapped module says why
            raise ValueError(f"scorer {getattr(self.scorer, 'fn_name', type(self.scorer).__name__)} is not "
                             f"differentiable{': ' + why if why else ''}; use `actmax evolve` (gradient-free) for it")
        units = list(range(self.scorer.units)) if units is None else [self.scorer.check_unit(u) for u in units]
        if not units:
            raise ValueError("synthesize needs at least one unit")
        self.units, self.targets = units, make_targets(units, poles, seeds)
        self.per_unit = len(poles) * len(seeds)
        opt_spec, options = split_recipe(ascent)
        options.update(dict(transforms or {}))
        _check_gradient_optimizer(opt_spec)
        self.ascent = optimizers.create(opt_spec, seed=int(seeds[0]) if len(seeds) else 0)
        if not getattr(self.ascent, "gradient_based", False):
            raise ValueError("synthesize needs the gradient optimizer (`ascent`); "
                             "gradient-free optimizers run with `actmax evolve`")
        self.budget_source = "recipe"
        if options.get("norm") is None and options.get("contrast") is None:
            scorer_budget = budget_from_scorer(self.scorer)
            options.update(scorer_budget)
            self.budget_source = "scorer" if scorer_budget else "none"
        self.transforms = SynthesisTransforms.from_options(options)
        self.code_shape = getattr(self.gen, "code_shape", None)
        # the transforms' random stream (jitter, noise), seeded like the optimiser
        self.rng = torch.Generator().manual_seed(int(getattr(self.ascent, "seed", seeds[0] if len(seeds) else 0)))
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

    def step(self) -> None:
        if self.ascent.step_index == 0:
            values = self._ascend_once()  # first step: full input checks
        else:
            with shape_checks_only():
                values = self._ascend_once()
        self.rows.append(values * self.sign)

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
               "contrast_budget": {**self.transforms.budget(), "source": self.budget_source}}
        state = getattr(self.scorer, "state", None)      # a twin's eye position / behaviour (issue 24)
        if isinstance(state, dict):
            out["scorer_state"] = state
        return out

    def table(self) -> pd.DataFrame:
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
        return {"ascent": self.ascent.state_dict(), "rows": torch.from_numpy(self._rows_array()),
                "rng": self.rng.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's state; anything that does not fit this run is one RecordError."""
        try:
            self.ascent.load_state_dict(state_field(state, "ascent"))
            rng = state.get("rng", state["ascent"].get("rng"))  # older checkpoints kept it in the optimiser
            if rng is not None:
                self.rng.set_state(rng)
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


def _label(t: Target) -> str:
    return f"unit{t.unit:04d}_{'mei' if t.pole == 'high' else 'lei'}_seed{t.seed}"


def best_per_target(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit, pole): the seed that drove the unit furthest (max for MEIs, min for LEIs)."""
    rows = []
    for (_, pole), d in table.groupby(["unit", "pole"], sort=False):
        rows.append(d.loc[d["response"].idxmax() if pole == "high" else d["response"].idxmin()])
    return pd.DataFrame(rows).reset_index(drop=True)


def _tile_label(unit: Any, pole: str, seed: Any = None) -> str:
    """A montage caption: ``unit 3 MEI`` (``s1``: seed 1)."""
    return f"unit {int(unit)} {'MEI' if pole == 'high' else 'LEI'}" + (f" s{int(seed)}" if seed is not None else "")


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


def _run(syn: _Synthesis, rec: RunRecord | None, *, progress: bool | None, checkpoint_every: int) -> SynthesisResult:
    bar = progress_bar(progress, total=syn.ascent.steps, initial=syn.ascent.step_index,
                       desc=f"synthesize {len(syn.targets)} targets", unit="step", leave=False)
    try:
        while not syn.ascent.done:
            syn.step()
            bar.update(1)
            if rec is not None and checkpoint_every and syn.ascent.step_index % checkpoint_every == 0:
                _check_finite(syn)
                rec.checkpoint(syn.state(), step=syn.ascent.step_index)
    finally:
        bar.close()
    _check_finite(syn)
    result = _result(syn, rec)
    if rec is not None:
        _finish(rec, syn, result)
    return result


def _check_finite(syn: _Synthesis) -> None:
    """Non-finite responses are an error, as in evolve (never a finished record full of NaN)."""
    arr = syn._rows_array()
    if arr.size and not np.all(np.isfinite(arr)):
        step, target = np.argwhere(~np.isfinite(arr))[0]
        t = syn.targets[int(target)]
        raise ContractError(f"scorer returned non-finite responses (first at step {int(step)}, unit {t.unit}, "
                            f"pole {t.pole}, seed {t.seed})")


def _result(syn: _Synthesis, rec: RunRecord | None) -> SynthesisResult:
    images, resp = syn.final()
    if not torch.all(torch.isfinite(resp)):
        raise ContractError("scorer returned non-finite responses for the final images")
    table = pd.DataFrame({"index": range(len(syn.targets)), "unit": [t.unit for t in syn.targets],
                          "pole": [t.pole for t in syn.targets], "seed": [t.seed for t in syn.targets],
                          "response": resp.numpy()})
    return SynthesisResult(images=images, codes=syn.ascent.codes.detach().cpu(), targets=syn.targets,
                           responses=resp, table=table, out_dir=None if rec is None else rec.path)


def _finish(rec: RunRecord, syn: _Synthesis, result: SynthesisResult, checkpoint: bool = True) -> None:
    """Derived files (all rebuildable from the final checkpoint), final checkpoint, sealed manifest."""
    from actmax.core.records import atomic_write_bytes

    images = result.images
    rec.write_scores(syn.table())
    rec.write_codes({"codes": result.codes})
    atomic_write_bytes(rec.path / "targets.csv", result.table.to_csv(index=False).encode())
    rec.write_stimuli({"images": images}, metadata={"rows": "targets.csv"})
    for i, (t, img) in enumerate(zip(syn.targets, images)):
        save_image(img, rec.path / "images" / f"{_label(t)}.png", stimulus=f"images[{i}]")
    save_montage(images, rec.path / "images" / "montage.png", nrow=syn.per_unit,
                 labels=[_tile_label(t.unit, t.pole, t.seed) for t in syn.targets])
    _save_best_per_target(result.table, images, rec.path)
    if checkpoint:   # a repair keeps the verified final checkpoint as it is
        rec.checkpoint(syn.state(), step=syn.ascent.step_index)
    rec.finish(steps_done=syn.ascent.step_index, targets=len(syn.targets))


def synthesize(generator: Any, scorer: Any, *, units: Sequence[int] | None = None,
               poles: Sequence[str] = ("high", "low"), seeds: Sequence[int] = (0,), ascent: Any = DEFAULT_RECIPE,
               out_dir: str | Path | None = None, progress: bool | None = None, checkpoint_every: int = 25,
               device: str | None = None, amp: bool = False, overwrite: bool = False,
               transforms: Mapping[str, Any] | None = None) -> SynthesisResult:
    """MEIs (``high``) and LEIs (``low``) of ``units`` x ``seeds`` by batched gradient ascent.

    ``ascent`` is the recipe: optimiser options plus the loop's transforms (``jitter``,
    ``noise``, ``blur_sigma``, ``precondition``, ``contrast``/``contrast_size``, ``norm``; see
    :mod:`actmax.core.transforms`), which ``transforms`` may also give or override. Without a
    budget in the recipe the scorer's own (``input_contrast``) applies; the applied recipe and
    budget are written to the manifest (``recipe``). ``device`` places generator, scorer and
    codes (e.g. ``"cuda"``); ``amp`` runs the forward pass in bfloat16 autocast (codes,
    optimizer state and reported responses stay float32). ``progress=None`` shows a bar only on a
    terminal or in a notebook. The record's ``best.png`` holds one tile per unit and pole (the best
    seed of each), listed in ``best.csv``.
    """
    syn = _Synthesis(generator, scorer, units=units, poles=poles, seeds=seeds, ascent=ascent, device=device,
                     amp=amp, transforms=transforms)
    rec = None
    try:
        if out_dir is not None:
            spec = {"generator": spec_text(generator), "scorer": spec_text(scorer), "ascent": spec_text(ascent),
                    "units": syn.units,
                    "poles": list(poles), "seeds": [int(s) for s in seeds], "device": device, "amp": amp,
                    "checkpoint_every": checkpoint_every}
            if transforms:
                spec["transforms"] = dict(transforms)
            rec = RunRecord.create(out_dir, kind="synthesize", spec=spec, overwrite=overwrite)
            rec.update_manifest(recipe=syn.recipe())
        return _run(syn, rec, progress=progress, checkpoint_every=checkpoint_every)
    finally:
        syn.restore_grad_flags()           # the modules passed in are not left frozen
        if rec is not None:
            rec.close()


def stored_result(rec: RunRecord, meta: Mapping[str, Any]) -> SynthesisResult:
    """The result of a finished, verified synthesis read from its files (no part built, no step re-run)."""
    try:
        table = pd.read_csv(rec.check_file("targets.csv"))
        table = table.astype({"index": "int64", "unit": "int64", "seed": "int64", "response": "float32"})
        images, codes = rec.stimuli()["images"], rec.codes()["codes"]
        targets = [Target(int(r.unit), str(r.pole), int(r.seed)) for r in table.itertuples()]
    except (KeyError, ValueError, AttributeError) as exc:
        raise RecordError(f"{rec.path}: the finished record lacks {exc}; `actmax resume --repair {rec.path}`") from None
    if len(images) != len(table) or len(codes) != len(table):
        raise RecordError(f"{rec.path}: stimuli, codes and targets.csv disagree in length; "
                          f"`actmax resume --repair {rec.path}`")
    return SynthesisResult(images=images, codes=codes, targets=targets,
                           responses=torch.tensor(table["response"].to_numpy()), table=table, out_dir=rec.path)


def resume_synthesis(out_dir: str | Path, *, progress: bool | None = None, trust: bool = False,
                     repair: bool = False) -> SynthesisResult:
    """Continue a killed synthesis from its last checkpoint (same rules as :func:`actmax.core.evolve.resume_evolution`).

    A finished synthesis is re-verified and its result returned; ``repair`` rebuilds every
    derived file from the final checkpoint; ``trust`` allows specs that import non-plugin modules.
    """
    rec, manifest = RunRecord.open_for_resume(out_dir, "synthesize", trust=trust)
    try:
        spec = manifest["spec"]
        finished = manifest.get("status") == "finished"
        bad = rec.verify_finished(repair=repair) if finished else []
        state, meta = rec.resume_state(repair=repair)
        if finished and not bad and state is not None:   # verified: the stored result, nothing rebuilt
            return stored_result(rec, meta)
        try:
            syn = _Synthesis(spec["generator"], spec["scorer"], units=spec["units"], poles=spec["poles"],
                             seeds=spec["seeds"], ascent=spec["ascent"], device=spec.get("device"),
                             amp=spec.get("amp", False), transforms=spec.get("transforms"))
        except KeyError as exc:
            raise RecordError(f"{rec.path}: the manifest's spec lacks {exc}") from None
        if state is None and (finished or repair):
            raise RecordError(f"{rec.path}: the checkpoint is missing, so nothing can be verified or rebuilt; "
                              "start the run again with --overwrite")
        if state is not None:
            syn.load_state(state)
            if int(meta.get("step", -1)) != syn.ascent.step_index:
                raise RecordError(f"{rec.path}: the checkpoint's step counter {meta.get('step')} disagrees with "
                                  f"its state ({syn.ascent.step_index} steps)")
        if finished:
            if not syn.ascent.done:
                raise RecordError(f"{rec.path}: finished manifest, but the checkpoint is at step "
                                  f"{syn.ascent.step_index} of {syn.ascent.steps}")
            result = _result(syn, rec)
            if bad:
                rec.start_clock(float(manifest.get("elapsed_s", 0.0)))
                _finish(rec, syn, result, checkpoint=False)
                rec.report_repair([b for b in bad if (rec.path / b).exists()],
                               [b for b in bad if not (rec.path / b).exists()])
            return result
        rec.mark_resumed(manifest)
        return _run(syn, rec, progress=progress, checkpoint_every=spec.get("checkpoint_every", 25))
    finally:
        rec.close()

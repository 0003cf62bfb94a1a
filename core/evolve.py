"""Closed-loop evolution: ask/tell over one or several generator spaces against one scorer.

Each generation every thread (one generator space + its own optimizer) asks for codes and
renders them in parallel threads; all images of the generation, plus optional natural
reference images, are scored as one block (what a rig shows the neuron in one go); each
thread is told the responses of its own images (negated for the LEI pole). Several
``generators`` give the paper's paired evolution (e.g. DeePSim and BigGAN side by side).

Every generation the record (scores table, best codes) and an atomic checkpoint are
written, so ``resume`` continues a killed run and ends exactly where an uninterrupted run
would have ended.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.contracts import ContractError, check_asked_codes, check_images, check_pole, check_state_roundtrip
from actmax.core.errors import RecordError
from actmax.core.progress import progress_bar
from actmax.core.records import BEST, RunRecord, save_image, save_montage, state_field
from actmax.core.registry import generators, optimizers, parse_spec, scorers, spec_text
from actmax.core import paired
from actmax.core.threads import intra_op_threads
from actmax.core.weights import record_use, take_used

PartSpec = "str | Mapping[str, Any] | Any"


@dataclass
class EvolutionResult:
    """What an evolution produced (also on disk in ``out_dir`` when one was given)."""

    scores: pd.DataFrame
    best_score: float
    best_image: torch.Tensor
    best_code: np.ndarray
    best_space: str
    trajectory: pd.DataFrame
    out_dir: Path | None = None
    spaces: list[str] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return int((self.scores["space"] != "reference").sum())

    @property
    def evaluations_per_space(self) -> dict[str, int]:
        """Images shown per space: paired spaces are compared per image, not per generation."""
        return paired.evaluations_per_space(self.scores)

    def __repr__(self) -> str:
        units = sorted(set(self.scores["unit"].tolist())) if "unit" in self.scores else []
        where = str(self.out_dir) if self.out_dir is not None else "not saved (no out_dir)"
        return (f"EvolutionResult(unit={units[0] if len(units) == 1 else units}, spaces={self.spaces}, "
                f"evaluations={self.evaluations}, best_score={self.best_score:.4g} in {self.best_space!r}, "
                f"record={where})")


def _space_names(gen_specs: Sequence[Any], gens: Sequence[torch.nn.Module]) -> list[str]:
    names = []
    for spec, gen in zip(gen_specs, gens):
        base = parse_spec(spec)[0] if isinstance(spec, str) else (
            spec.get("name", spec.get("path")) if isinstance(spec, Mapping) else type(gen).__name__.lower())
        base = base.rpartition(":")[2].lower() if ":" in base else base   # path=pkg.mod:Class -> class
        name, k = base, 2
        while name in names:
            name, k = f"{base}{k}", k + 1
        names.append(name)
    return names


#: Above this code dimension the fallback optimizer switches from pycma's full CMA-ES (whose
#: O(dim^2) update and occasional O(dim^3) eigendecomposition dominate a generation there) to
#: the lab's CholeskyCMAES with rank-1 factor updates (the Ponce-lab choice for DeePSim fc6).
LARGE_SPACE_DIM = 1000


def default_optimizer(dim: int) -> str:
    """``cma`` (pycma, full covariance) for small spaces, ``cholesky_cma`` for large ones."""
    return "cholesky_cma" if dim > LARGE_SPACE_DIM else "cma"


def space_optimizer(gen: Any) -> Any:
    """The optimizer a space gets when the run names none: the preset the generator declares
    (``optimizer_preset``; the lab's for DeePSim and BigGAN), else :func:`default_optimizer`."""
    preset = getattr(gen, "optimizer_preset", None)
    return preset if preset else default_optimizer(gen.dim)


def per_space(optimizer: Any, n_spaces: int) -> list[Any]:
    """One optimizer spec per space: one spec (or a one-item list) for all, or exactly one each."""
    specs = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    if len(specs) == 1:
        return specs * n_spaces
    if len(specs) != n_spaces:
        raise ValueError(f"{len(specs)} optimizers for {n_spaces} generator spaces: give one optimizer for "
                         "all spaces or exactly one per space, in the order of the spaces")
    return specs


def optimizer_context(gen: Any, *, seed: int, init_seed: int, generations: int) -> dict[str, Any]:
    """What the run loop tells an optimizer about its space (used only where the optimizer takes it):
    start code, step size, SphereCMA's radius, the space's own initial sampler, the number of
    generations (for schedules)."""
    with torch.no_grad():
        x0 = gen.init_codes(1, seed=init_seed)[0].double().numpy()
    context: dict[str, Any] = {"dim": gen.dim, "x0": x0, "sigma0": gen.default_sigma, "seed": seed,
                               "n_gen": int(generations),
                               "prior": lambda n: gen.init_codes(int(n), seed=init_seed)}
    radius = getattr(gen, "sphere_norm", None)
    if radius:
        context["sphere_norm"] = float(radius)
    return context
def check_device(device: str | torch.device | None) -> torch.device:
    """A usable torch device, or one ValueError (unknown name, or CUDA/MPS asked for but absent)."""
    if device is None or device == "":
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps "
                         f"({str(exc).splitlines()[0][:120]})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but no CUDA GPU is available here "
                             "(torch.cuda.is_available() is False); leave --device out to run on the CPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} asked for, but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r} is not supported: use cpu, cuda, cuda:N or mps")
    return dev


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (2.5, "3" and True are errors, never silently truncated)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class _Evolution:
    """State of one running evolution (all threads)."""

    def __init__(self, gen_specs: Sequence[Any], scorer: Any, optimizer: Any, *, unit: int, pole: str,
                 generations: int, seed: int, reference_images: torch.Tensor | None, device: str | None) -> None:
        check_pole(pole)
        check_count(generations, "generations", 1)
        check_count(unit, "unit", 0)
        check_count(seed, "seed", 0)
        opt_specs = per_space(optimizer, len(gen_specs))
        self.device = check_device(device)
        take_used()  # the weight-file log now holds only what this run's parts use (its provenance)
        self.gens = [generators.create(g).to(self.device).eval() for g in gen_specs]
        self.scorer = scorers.create(scorer).to(self.device).eval()
        for part in [*self.gens, self.scorer]:   # parts passed in as live objects loaded their files earlier
            if getattr(part, "weights_path", None):
                record_use(part.weights_path, used_by=type(part).__name__)
        self.unit = self.scorer.check_unit(unit)
        self.pole, self.sign = pole, (1.0 if pole == "high" else -1.0)
        self.generations, self.seed = int(generations), int(seed)
        self.spaces = _space_names(gen_specs, self.gens)
        opt_specs = [space_optimizer(g) if o is None else o for g, o in zip(self.gens, opt_specs)]
        self.optimizer_specs = opt_specs
        self.opts = []
        for t, (gen, ospec) in enumerate(zip(self.gens, opt_specs)):
            opt = optimizers.create(ospec, **optimizer_context(gen, seed=self.seed + t, init_seed=self.seed + 1000 * t,
                                                               generations=self.generations))
            if getattr(opt, "gradient_based", False):
                raise ValueError("evolve needs a gradient-free (ask/tell) optimizer; "
                                 "use `actmax synthesize` for gradient ascent")
            self.opts.append(opt)
        self.reference = None
        if reference_images is not None:
            self.reference = check_images(reference_images.float(), where="reference images").to(self.device)
        self.generation = 0
        self.rows: dict[str, list] = {"generation": [], "thread": [], "index": [], "score": []}
        self.best_codes: list[list[np.ndarray]] = [[] for _ in self.gens]
        self.best = {"score": -np.inf, "thread": 0, "code": None}
        self.pool = ThreadPoolExecutor(max_workers=len(self.gens)) if len(self.gens) > 1 else None

    # -- one generation -------------------------------------------------------------------
    def _render(self, t: int) -> tuple[np.ndarray, torch.Tensor]:
        codes = check_asked_codes(self.opts[t].ask(), self.gens[t].dim, f"optimizer {self.optimizer_specs[t]!r}")
        with torch.no_grad():
            images = self.gens[t](torch.as_tensor(codes, dtype=torch.float32, device=self.device))
        return codes, check_images(images, where=f"generator {self.spaces[t]} output")

    def step(self) -> None:
        if self.pool is not None:
            rendered = list(self.pool.map(self._render, range(len(self.gens))))
        else:
            rendered = [self._render(t) for t in range(len(self.gens))]
        blocks = [imgs for _, imgs in rendered] + ([self.reference] if self.reference is not None else [])
        size = max(b.shape[-1] for b in blocks)
        channels = max(b.shape[1] for b in blocks)
        block = torch.cat([_match(b, channels, size) for b in blocks])
        self.last_images = [imgs for _, imgs in rendered]
        with torch.no_grad():
            responses = self.scorer(block)[:, self.unit].double().cpu().numpy()
        if not np.all(np.isfinite(responses)):
            bad = np.flatnonzero(~np.isfinite(responses)).tolist()
            raise ContractError(f"scorer returned non-finite responses at block positions {bad[:10]} "
                                f"in generation {self.generation}")
        start = 0
        for t, (codes, imgs) in enumerate(rendered):
            resp = responses[start:start + len(codes)]
            start += len(codes)
            self.opts[t].tell(codes, self.sign * resp)
            self._add_rows(t, resp)
            i = int(np.argmax(self.sign * resp))
            self.best_codes[t].append(codes[i].copy())
            if self.sign * resp[i] > self.best["score"]:
                self.best = {"score": float(self.sign * resp[i]), "thread": t, "code": codes[i].copy()}
        if self.reference is not None:
            self._add_rows(-1, responses[start:])
        self.generation += 1

    def _add_rows(self, thread: int, resp: np.ndarray) -> None:
        n = len(resp)
        self.rows["generation"] += [self.generation] * n
        self.rows["thread"] += [thread] * n
        self.rows["index"] += list(range(n))
        self.rows["score"] += resp.tolist()

    # -- tables / state -------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        df = pd.DataFrame({k: np.asarray(v) for k, v in self.rows.items()})
        if df.empty:
            df = pd.DataFrame({"generation": pd.Series(dtype=int), "thread": pd.Series(dtype=int),
                               "index": pd.Series(dtype=int), "score": pd.Series(dtype=float)})
        names = np.array(self.spaces + ["reference"])
        df.insert(2, "space", names[df["thread"].to_numpy()])
        df.insert(4, "unit", self.unit)
        return df

    def state(self) -> dict[str, Any]:
        return {"generation": self.generation,
                "optimizers": [o.state_dict() for o in self.opts],
                "rows": {k: torch.tensor(v, dtype=torch.float64 if k == "score" else torch.int64)
                         for k, v in self.rows.items()},
                "best_codes": [torch.from_numpy(np.stack(c)) if c else torch.zeros(0) for c in self.best_codes],
                "best": {"score": float(self.best["score"]), "thread": int(self.best["thread"]),
                         "code": None if self.best["code"] is None else torch.from_numpy(self.best["code"])}}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a checkpoint's state; anything that does not fit this run is one RecordError."""
        opts = state_field(state, "optimizers")
        if not isinstance(opts, (list, tuple)) or len(opts) != len(self.opts):
            raise RecordError("checkpoint has a different number of threads than the run's spec")
        try:
            for opt, s in zip(self.opts, opts):
                opt.load_state_dict(s)
            generation = int(state_field(state, "generation"))
            rows = {k: state_field(state, "rows", k).tolist() for k in ("generation", "thread", "index", "score")}
            best_codes = [[row.numpy() for row in c] if c.numel() else [] for c in state_field(state, "best_codes")]
            b = state_field(state, "best")
            best = {"score": float(b["score"]), "thread": int(b["thread"]),
                    "code": None if b["code"] is None else b["code"].numpy()}
        except RecordError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as exc:
            raise RecordError(f"checkpoint state does not fit this evolution ({type(exc).__name__}: {exc})") from exc
        n = {len(v) for v in rows.values()}
        gens = np.asarray(rows["generation"], dtype=np.int64)
        threads = np.asarray(rows["thread"], dtype=np.int64)
        problems = []
        if not 0 <= generation <= self.generations:
            problems.append(f"generation {generation} outside 0..{self.generations}")
        if len(n) != 1:
            problems.append("row columns of different lengths")
        elif gens.size and (np.any(np.diff(gens) < 0) or set(gens.tolist()) != set(range(generation))):
            problems.append("row generations are not 0..generation-1 in order")
        elif generation and not gens.size:
            problems.append("no rows for the generations done")
        if threads.size and (threads.min() < -1 or threads.max() >= len(self.gens)):
            problems.append("row thread out of range")
        elif len(n) == 1 and gens.size:   # within each (generation, thread): indices 0..n-1, once each
            index = np.asarray(rows["index"], dtype=np.int64)
            keys = gens * (len(self.gens) + 2) + threads + 1
            for key in np.unique(keys):
                sel = keys == key
                if not np.array_equal(np.sort(index[sel]), np.arange(sel.sum())):
                    problems.append(f"rows of generation {int(gens[sel][0])}, thread {int(threads[sel][0])} "
                                    "are duplicated or missing")
                    break
        if len(best_codes) != len(self.gens) or any(len(c) != generation for c in best_codes):
            problems.append("best codes do not match the generation count")
        if generation and not (0 <= best["thread"] < len(self.gens)) or (generation and best["code"] is None):
            problems.append("best entry is inconsistent")
        if problems:
            raise RecordError("checkpoint is inconsistent: " + "; ".join(problems))
        self.generation, self.rows, self.best_codes, self.best = generation, rows, best_codes, best

    def best_image(self) -> torch.Tensor:
        t = self.best["thread"]
        with torch.no_grad():
            code = torch.as_tensor(self.best["code"][None], dtype=torch.float32, device=self.device)
            return self.gens[t](code)[0].cpu()


def _match(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    from actmax.core.contracts import to_channels, to_size
    return to_size(to_channels(images, channels), size)


def _trajectory(table: pd.DataFrame, sign: float) -> pd.DataFrame:
    g = table.assign(fitness=sign * table["score"]).groupby(["space", "generation"])
    out = g["score"].agg(["mean", "max", "min"]).reset_index()
    best = g.apply(lambda d: d["score"].to_numpy()[np.argmax(d["fitness"].to_numpy())], include_groups=False)
    return out.merge(best.rename("best").reset_index(), on=["space", "generation"])


def _montage_name(space: str, g: int) -> str:
    return f"images/gen{g:03d}_{space}.png"


def _claims(ev: _Evolution, image_every: int, reference: bool) -> list[str]:
    """Files the checkpoint after ``ev.generation`` generations vouches for (sha256 in the checkpoint)."""
    out = ["reference_images.safetensors"] if reference else []
    if image_every:
        out += [_montage_name(s, g) for g in range(0, ev.generation, image_every) for s in ev.spaces]
    return out


def _write_final_files(rec: RunRecord, ev: _Evolution, traj: pd.DataFrame, best_image: torch.Tensor,
                       plots: bool) -> None:
    """Everything a finished record holds besides the per-generation files (rebuildable from the checkpoint)."""
    from actmax.core.run_plots import plot_trajectory

    rec.write_scores(ev.table())
    rec.write_codes({f"{s}/best_per_generation": torch.from_numpy(np.stack(c))
                     for s, c in zip(ev.spaces, ev.best_codes) if c},
                    metadata={"spaces": ",".join(ev.spaces)})
    stimuli = {"best": best_image}
    with torch.no_grad():
        for t, space in enumerate(ev.spaces):
            if not ev.best_codes[t]:
                continue
            codes = np.stack(ev.best_codes[t])
            picks = np.unique(np.linspace(0, len(codes) - 1, min(16, len(codes))).round().astype(int))
            imgs = ev.gens[t](torch.as_tensor(codes[picks], dtype=torch.float32, device=ev.device)).cpu()
            save_montage(imgs, rec.path / "images" / f"best_per_generation_{space}.png", nrow=8,
                         labels=[f"gen {int(g)}" for g in picks], title=f"{space}: best image of each generation shown")
            per_gen = traj[traj["space"] == space].sort_values("generation")["best"].to_numpy()
            top = int(np.argmax(ev.sign * per_gen))
            stimuli[f"{space}/best"] = ev.gens[t](torch.as_tensor(codes[top:top + 1], dtype=torch.float32,
                                                                   device=ev.device))[0].cpu()
            stimuli[f"{space}/best_per_generation"] = imgs
            stimuli[f"{space}/generations"] = torch.as_tensor(picks, dtype=torch.int64)
    rec.write_stimuli(stimuli, metadata={"spaces": ",".join(ev.spaces)})
    save_image(best_image, rec.path / BEST, stimulus="best")
    if plots:
        plot_trajectory(traj, rec.path / "trajectory.png", pole=ev.pole)


def _result(ev: _Evolution, rec: RunRecord | None) -> tuple[EvolutionResult, pd.DataFrame, torch.Tensor]:
    table = ev.table()
    traj = paired.with_images_shown(_trajectory(table[table["thread"] >= 0], ev.sign), table)
    best_image = ev.best_image()
    res = EvolutionResult(scores=table, best_score=ev.sign * ev.best["score"], best_image=best_image,
                          best_code=ev.best["code"], best_space=ev.spaces[ev.best["thread"]],
                          trajectory=traj, out_dir=None if rec is None else rec.path, spaces=ev.spaces)
    return res, traj, best_image


def _finish(rec: RunRecord, ev: _Evolution, *, image_every: int, plots: bool, reference: bool,
            res: EvolutionResult, traj: pd.DataFrame, checkpoint: bool = True) -> None:
    _write_final_files(rec, ev, traj, res.best_image, plots)
    table = res.scores
    if checkpoint:   # a repair keeps the verified final checkpoint as it is
        rec.checkpoint(ev.state(), step=ev.generation, claims=_claims(ev, image_every, reference))
    rec.finish(generations_done=ev.generation, evaluations=int((table["thread"] >= 0).sum()),
               evaluations_per_space=paired.evaluations_per_space(table),
               best_score=res.best_score, best_space=res.best_space)


def _run(ev: _Evolution, rec: RunRecord | None, *, progress: bool | None, image_every: int, plots: bool,
         reference: bool = False) -> EvolutionResult:
    """The generation loop. Commit order per generation: scores table and montage first, then
    the checkpoint that claims them (so a kill never leaves a checkpoint ahead of its files)."""
    bar = progress_bar(progress, total=ev.generations, initial=ev.generation, desc="evolve", unit="gen",
                       leave=False)
    threads = intra_op_threads(len(ev.gens) if ev.pool is not None else 1)   # one torch thread per space thread
    threads.__enter__()
    try:
        while ev.generation < ev.generations:
            ev.step()
            if rec is not None:
                rec.write_scores(ev.table())
                if image_every and (ev.generation - 1) % image_every == 0:
                    _save_generation_montages(ev, rec)
                if not rec.has_checkpoint():   # the first checkpoint: a bad optimizer state fails now, not at resume
                    for opt in ev.opts:
                        check_state_roundtrip(opt)
                rec.checkpoint(ev.state(), step=ev.generation, claims=_claims(ev, image_every, reference))
            bar.update(1)
            bar.set_postfix(best=f"{ev.sign * ev.best['score']:.4g}")
    finally:
        bar.close()
        threads.__exit__(None, None, None)
        if ev.pool is not None:
            ev.pool.shutdown()
    res, traj, _ = _result(ev, rec)
    if rec is not None:
        _finish(rec, ev, image_every=image_every, plots=plots, reference=reference, res=res, traj=traj)
    return res


def _save_generation_montages(ev: _Evolution, rec: RunRecord) -> None:
    g = ev.generation - 1
    for space, imgs in zip(ev.spaces, ev.last_images):
        save_montage(imgs.cpu(), rec.path / _montage_name(space, g), nrow=10,
                     title=f"{space}, generation {g}: {len(imgs)} images")


def evolve(generator: Any | Sequence[Any], scorer: Any, optimizer: Any = None, *, unit: int = 0,
           pole: str = "high", generations: int = 75, seed: int = 0, out_dir: str | Path | None = None,
           reference_images: torch.Tensor | None = None, progress: bool | None = None, image_every: int = 10,
           device: str | None = None, plots: bool = True, overwrite: bool = False) -> EvolutionResult:
    """Evolve images for one ``unit`` of ``scorer`` (``pole='high'`` MEI-like, ``'low'`` LEI-like).

    ``generator`` is one space or a list of spaces (paired evolution, one optimizer per space);
    ``optimizer`` is one spec used for every space or a list with exactly one per space (``None``,
    or a ``None`` entry: the space's own preset, e.g. the lab's CholeskyCMAES sigma0 3 / popsize 40
    in DeePSim and sigma0 0.2 / popsize 28 in BigGAN; see :func:`space_optimizer`). Specs are
    ``"name:k=v"`` strings, dicts or live objects; only runs built from specs can be resumed.
    ``image_every=0`` and ``plots=False`` leave out the per-generation montages and the
    trajectory plot (matplotlib dominates the cost of tiny runs, e.g. in campaigns).
    ``progress=None`` shows a bar only on a terminal or in a notebook (see :mod:`actmax.core.progress`).
    """
    gen_specs = list(generator) if isinstance(generator, (list, tuple)) else [generator]
    if isinstance(image_every, bool) or not isinstance(image_every, int) or image_every < 0:
        raise ValueError(f"image_every must be a whole number >= 0 (0: no montages), got {image_every!r}")
    if not gen_specs:
        raise ValueError("evolve needs at least one generator")
    ev = _Evolution(gen_specs, scorer, optimizer, unit=unit, pole=pole, generations=generations, seed=seed,
                    reference_images=reference_images, device=device)
    if len(ev.gens) > 1:   # paired spaces: say where budgets or settings differ (core/paired.py)
        paired.warn(paired.preset_override_warning(ev.spaces, [space_optimizer(g) for g in ev.gens], optimizer))
        paired.warn(paired.popsize_warning(ev.spaces, [getattr(o, "popsize", None) for o in ev.opts]))
    rec = None
    if out_dir is not None:
        opt_list = ev.optimizer_specs
        spec = {"generators": [spec_text(g) for g in gen_specs], "spaces": ev.spaces,
                "scorer": spec_text(scorer), "optimizers": [spec_text(o) for o in opt_list],
                "unit": ev.unit, "pole": pole, "generations": generations, "seed": seed,
                "image_every": image_every, "plots": plots, "device": device,
                "reference_images": None if reference_images is None else "reference_images.safetensors"}
        rec = RunRecord.create(out_dir, kind="evolve", spec=spec, overwrite=overwrite)
    try:
        if rec is not None and reference_images is not None:
            from actmax.core.records import atomic_write_bytes
            from safetensors.torch import save
            atomic_write_bytes(rec.path / "reference_images.safetensors",
                               save({"images": reference_images.detach().float().cpu().contiguous()}))
        return _run(ev, rec, progress=progress, image_every=image_every, plots=plots,
                    reference=reference_images is not None)
    finally:
        if rec is not None:
            rec.close()
        elif ev.pool is not None:
            ev.pool.shutdown()


def resume_evolution(out_dir: str | Path, *, progress: bool | None = None, trust: bool = False,
                     repair: bool = False) -> EvolutionResult:
    """Continue a killed evolution from its checkpoint; ends where an uninterrupted run ends.

    The record is verified first (checksums, run id, spec, generation and row counts): any
    mismatch is a RecordError, unless ``repair`` rebuilds what the checkpoint can rebuild
    (tables, codes, best image, final montages) and drops (and logs) what it cannot. A
    finished run is not run again: it is re-verified and its result returned. ``trust``
    allows a spec that imports a module which is not an installed plugin.
    """
    rec, manifest = RunRecord.open_for_resume(out_dir, "evolve", trust=trust)
    try:
        return _resume(rec, manifest, progress=progress, repair=repair)
    finally:
        rec.close()


def stored_result(rec: RunRecord, manifest: Mapping[str, Any], state: Mapping[str, Any],
                  meta: Mapping[str, Any]) -> EvolutionResult:
    """The result of a finished, verified record read from its files and final checkpoint.

    No part is built and no optimizer is restored: resuming a finished run costs a few file reads
    (checksums included), not a replay of the run.
    """
    spec = manifest["spec"]
    try:
        generations, spaces, pole = int(spec["generations"]), list(spec["spaces"]), spec["pole"]
        best = state_field(state, "best")
        thread, score, code = int(best["thread"]), float(best["score"]), best["code"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{rec.path}: the manifest's spec or the checkpoint lacks {exc}") from None
    if int(meta.get("step", -1)) != generations or int(state_field(state, "generation")) != generations:
        raise RecordError(f"{rec.path}: finished manifest, but the checkpoint holds {meta.get('step')} of "
                          f"{generations} generations")
    if not 0 <= thread < len(spaces) or code is None:
        raise RecordError(f"{rec.path}: the checkpoint's best entry is inconsistent")
    sign = 1.0 if pole == "high" else -1.0
    table = rec.scores()
    stimuli = rec.stimuli()
    if "best" not in stimuli:
        raise RecordError(f"{rec.path}: stimuli.safetensors has no 'best' entry; `actmax resume --repair {rec.path}`")
    traj = _trajectory(table[table["thread"] >= 0], sign)
    return EvolutionResult(scores=table, best_score=sign * score, best_image=stimuli["best"],
                           best_code=code.numpy() if isinstance(code, torch.Tensor) else np.asarray(code),
                           best_space=spaces[thread], trajectory=traj, out_dir=rec.path, spaces=spaces)


def _resume(rec: RunRecord, manifest: dict[str, Any], *, progress: bool | None, repair: bool) -> EvolutionResult:
    spec = manifest["spec"]
    finished = manifest.get("status") == "finished"
    bad = rec.verify_finished(repair=repair) if finished else []
    state, meta = rec.resume_state(repair=repair)
    try:
        gen_specs, scorer_spec, opt_list = spec["generators"], spec["scorer"], spec["optimizers"]
        unit, pole, generations, seed = spec["unit"], spec["pole"], spec["generations"], spec["seed"]
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{rec.path}: the manifest's spec lacks {exc}") from None
    if finished and not bad and state is not None:   # verified: the stored result, nothing rebuilt or replayed
        return stored_result(rec, manifest, state, meta)
    has_ref = bool(spec.get("reference_images"))
    reference = None
    if has_ref:
        from safetensors.torch import load_file
        ref_path = rec.path / "reference_images.safetensors"
        try:
            reference = load_file(ref_path)["images"]
        except Exception as exc:  # noqa: BLE001 - missing, dropped or corrupt
            raise RecordError(f"{ref_path} is missing or corrupt and cannot be rebuilt ({exc})") from None
    opts = opt_list if len(opt_list) > 1 else opt_list[0]
    ev = _Evolution(gen_specs, scorer_spec, opts, unit=unit, pole=pole, generations=generations, seed=seed,
                    reference_images=reference, device=spec.get("device"))
    if state is None and (finished or repair):
        raise RecordError(f"{rec.path}: the checkpoint is missing, so nothing can be verified or rebuilt; "
                          "start the run again with --overwrite")
    if state is not None:
        ev.load_state(state)
        if int(meta.get("step", -1)) != ev.generation:
            raise RecordError(f"{rec.path}: the checkpoint's step counter {meta.get('step')} disagrees with "
                              f"its state ({ev.generation} generations)")
    image_every, plots = int(spec.get("image_every", 10)), bool(spec.get("plots", True))
    if finished:
        if ev.generation != ev.generations:
            raise RecordError(f"{rec.path}: finished manifest, but the checkpoint holds {ev.generation} of "
                              f"{ev.generations} generations")
        res, traj, _ = _result(ev, rec)
        if bad:  # --repair of a finished run: rebuild the derived files from the final checkpoint
            rec.start_clock(float(manifest.get("elapsed_s", 0.0)))
            _finish(rec, ev, image_every=image_every, plots=plots, reference=has_ref, res=res, traj=traj,
                    checkpoint=False)
            rec.report_repair([b for b in bad if (rec.path / b).exists()], [b for b in bad if not (rec.path / b).exists()])
        elif ev.pool is not None:
            ev.pool.shutdown()
        return res
    if meta.get("dropped"):
        rec.report_repair([], meta["dropped"])
    rec.mark_resumed(manifest)
    if state is not None:
        rec.write_scores(ev.table())   # the table always follows the checkpoint (a kill may have left it ahead)
    return _run(ev, rec, progress=progress, image_every=image_every, plots=plots, reference=has_ref)

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

import time
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
from actmax.core.records import BEST, RunRecord, now, save_image, save_montage
from actmax.core.registry import generators, optimizers, parse_spec, scorers, spec_text
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


class _Evolution:
    """State of one running evolution (all threads)."""

    def __init__(self, gen_specs: Sequence[Any], scorer: Any, optimizer: Any, *, unit: int, pole: str,
                 generations: int, seed: int, reference_images: torch.Tensor | None, device: str | None) -> None:
        check_pole(pole)
        if generations < 1:
            raise ValueError(f"generations must be >= 1, got {generations}")
        opt_specs = per_space(optimizer, len(gen_specs))
        self.device = torch.device(device) if device else torch.device("cpu")
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
            rendered = [self._render(0)]
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
        if len(state["optimizers"]) != len(self.opts):
            raise RecordError("checkpoint has a different number of threads than the run's spec")
        for opt, s in zip(self.opts, state["optimizers"]):
            opt.load_state_dict(s)
        self.generation = int(state["generation"])
        self.rows = {k: v.tolist() for k, v in state["rows"].items()}
        self.best_codes = [[row.numpy() for row in c] if c.numel() else [] for c in state["best_codes"]]
        b = state["best"]
        self.best = {"score": b["score"], "thread": b["thread"],
                     "code": None if b["code"] is None else b["code"].numpy()}

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


def _finish_record(rec: RunRecord, ev: _Evolution, table: pd.DataFrame, traj: pd.DataFrame,
                   best_image: torch.Tensor, elapsed: float, plots: bool) -> None:
    from actmax.core.run_plots import plot_trajectory

    rec.write_codes({f"{s}/best_per_generation": torch.from_numpy(np.stack(c))
                     for s, c in zip(ev.spaces, ev.best_codes) if c},
                    metadata={"spaces": ",".join(ev.spaces)})
    save_image(best_image, rec.path / BEST)
    with torch.no_grad():
        for t, space in enumerate(ev.spaces):
            codes = np.stack(ev.best_codes[t])
            picks = np.unique(np.linspace(0, len(codes) - 1, min(16, len(codes))).round().astype(int))
            imgs = ev.gens[t](torch.as_tensor(codes[picks], dtype=torch.float32, device=ev.device)).cpu()
            save_montage(imgs, rec.path / "images" / f"best_per_generation_{space}.png", nrow=8)
    if plots:
        plot_trajectory(traj, rec.path / "trajectory.png", pole=ev.pole)
    best_score = ev.sign * ev.best["score"]
    rec.update_manifest(status="finished", finished=now(), elapsed_s=round(elapsed, 3),
                        generations_done=ev.generation, evaluations=int((table["thread"] >= 0).sum()),
                        best_score=best_score, best_space=ev.spaces[ev.best["thread"]])


def _run(ev: _Evolution, rec: RunRecord | None, *, progress: bool | None, image_every: int, plots: bool,
         t_start: float, elapsed_before: float = 0.0) -> EvolutionResult:
    bar = progress_bar(progress, total=ev.generations, initial=ev.generation, desc="evolve", unit="gen",
                       leave=False)
    try:
        while ev.generation < ev.generations:
            ev.step()
            if rec is not None:
                rec.write_scores(ev.table())
                if not rec.has_checkpoint():   # the first checkpoint: a bad optimizer state fails now, not at resume
                    for opt in ev.opts:
                        check_state_roundtrip(opt)
                rec.save_checkpoint(ev.state())
                if image_every and (ev.generation - 1) % image_every == 0:
                    _save_generation_montages(ev, rec)
            bar.update(1)
            bar.set_postfix(best=f"{ev.sign * ev.best['score']:.4g}")
    finally:
        bar.close()
        if ev.pool is not None:
            ev.pool.shutdown()
    table = ev.table()
    traj = _trajectory(table[table["thread"] >= 0], ev.sign)
    best_image = ev.best_image()
    if rec is not None:
        _finish_record(rec, ev, table, traj, best_image, elapsed_before + time.time() - t_start, plots)
    return EvolutionResult(scores=table, best_score=ev.sign * ev.best["score"], best_image=best_image,
                           best_code=ev.best["code"], best_space=ev.spaces[ev.best["thread"]],
                           trajectory=traj, out_dir=None if rec is None else rec.path, spaces=ev.spaces)


def _save_generation_montages(ev: _Evolution, rec: RunRecord) -> None:
    g = ev.generation - 1
    for space, imgs in zip(ev.spaces, ev.last_images):
        save_montage(imgs.cpu(), rec.path / "images" / f"gen{g:03d}_{space}.png", nrow=10)


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
    if not gen_specs:
        raise ValueError("evolve needs at least one generator")
    ev = _Evolution(gen_specs, scorer, optimizer, unit=unit, pole=pole, generations=generations, seed=seed,
                    reference_images=reference_images, device=device)
    rec = None
    if out_dir is not None:
        opt_list = ev.optimizer_specs
        spec = {"generators": [spec_text(g) for g in gen_specs], "spaces": ev.spaces,
                "scorer": spec_text(scorer), "optimizers": [spec_text(o) for o in opt_list],
                "unit": ev.unit, "pole": pole, "generations": generations, "seed": seed,
                "image_every": image_every, "plots": plots, "device": device,
                "reference_images": None if reference_images is None else "reference_images.safetensors"}
        rec = RunRecord.create(out_dir, kind="evolve", spec=spec, overwrite=overwrite)
        if reference_images is not None:
            from actmax.core.records import atomic_write_bytes
            from safetensors.torch import save
            atomic_write_bytes(rec.path / "reference_images.safetensors",
                               save({"images": reference_images.detach().float().cpu().contiguous()}))
    return _run(ev, rec, progress=progress, image_every=image_every, plots=plots, t_start=time.time())


def resume_evolution(out_dir: str | Path, *, progress: bool | None = None) -> EvolutionResult:
    """Continue a killed evolution from its checkpoint; ends where an uninterrupted run ends."""
    rec, manifest = RunRecord.for_resume(out_dir, "evolve")
    spec = manifest["spec"]
    reference = None
    if spec.get("reference_images"):
        from safetensors.torch import load_file
        reference = load_file(rec.path / spec["reference_images"])["images"]
    opts = spec["optimizers"] if len(spec["optimizers"]) > 1 else spec["optimizers"][0]
    ev = _Evolution(spec["generators"], spec["scorer"], opts, unit=spec["unit"], pole=spec["pole"],
                    generations=spec["generations"], seed=spec["seed"], reference_images=reference,
                    device=spec.get("device"))
    if rec.has_checkpoint():
        ev.load_state(rec.load_checkpoint())
    rec.mark_resumed(manifest)
    return _run(ev, rec, progress=progress, image_every=spec.get("image_every", 10),
                plots=spec.get("plots", True), t_start=time.time(),
                elapsed_before=float(manifest.get("elapsed_s", 0.0)))

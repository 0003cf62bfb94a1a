"""The evolve run kind: ask/tell over one or several generator spaces against one scorer.

Each generation every thread (one generator space + its own optimizer) asks for codes and
renders them in parallel threads; all images of the generation, plus optional natural
reference images, are scored as one block (what a rig shows the neuron in one go); each
thread is told the responses of its own images (negated for the LEI pole). The driver
(:mod:`actmax.core.runs.driver`) commits every generation (scores table, montages, then the
checkpoint that claims them) and resumes a killed run to where an uninterrupted run ends.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from actmax.core.contracts import (ContractError, check_asked_codes, check_count, check_device, check_images,
                                   check_pole, check_state_roundtrip)
from actmax.core.errors import InputError, RecordError
from actmax.core.evolve import EvolutionResult, optimizer_context, per_space, space_optimizer, space_names
from actmax.core.records import BEST, RunRecord, save_image, save_montage, state_field
from actmax.core import files as fileio
from actmax.core.registry import generators, optimizers, scorers, spec_text
from actmax.core import paired
from actmax.core.runs.kind import BaseRun
from actmax.core.threads import intra_op_threads

REFERENCE = "reference_images.safetensors"


class EvolveRun(BaseRun):
    """The evolve run kind: one running evolution (all threads), stepped one generation at a time."""

    kind = "evolve"
    progress_unit = "gen"

    def __init__(self, gen_specs: Sequence[Any], scorer: Any, optimizer: Any, *, unit: int, pole: str,
                 generations: int, seed: int, reference_images: torch.Tensor | None, device: str | None,
                 image_every: int = 10, plots: bool = True) -> None:
        check_pole(pole)
        self.gen_specs, self.scorer_spec, self.device_name = list(gen_specs), scorer, device
        self.image_every, self.plots = int(image_every), bool(plots)
        check_count(generations, "generations", 1)
        check_count(unit, "unit", 0)
        check_count(seed, "seed", 0)
        opt_specs = per_space(optimizer, len(gen_specs))
        self.device = check_device(device)
        self.gens = [generators.create(g).to(self.device).eval() for g in gen_specs]
        self.scorer = scorers.create(scorer).to(self.device).eval()
        self.unit = self.scorer.check_unit(unit)
        self.pole, self.sign = pole, (1.0 if pole == "high" else -1.0)
        self.generations, self.seed = int(generations), int(seed)
        self.spaces = space_names(gen_specs, self.gens)
        opt_specs = [space_optimizer(g) if o is None else o for g, o in zip(self.gens, opt_specs)]
        self.optimizer_specs = opt_specs
        self.opts = []
        for t, (gen, ospec) in enumerate(zip(self.gens, opt_specs)):
            opt = optimizers.create(ospec, **optimizer_context(gen, seed=self.seed + t, init_seed=self.seed + 1000 * t,
                                                               generations=self.generations))
            if opt.gradient_based:
                raise InputError("evolve needs a gradient-free (ask/tell) optimizer; "
                                 "use `actmax synthesize` for gradient ascent")
            self.opts.append(opt)
        self.reference = None
        if reference_images is not None:
            self.reference = check_images(reference_images.float(), where="reference images").to(self.device)
        self.generation = 0
        #: score rows and best codes of generations ``_mem_from..generation-1`` (with a record, the earlier
        #: ones live in its append-only parts: memory and a generation's I/O stay flat over a long run)
        self.rows: dict[str, list] = {"generation": [], "thread": [], "index": [], "score": []}
        self.best_codes: list[list[np.ndarray]] = [[] for _ in self.gens]
        self._mem_from = 0
        self._parts: Any = None
        self.best = {"score": -np.inf, "thread": 0, "code": None}
        self.pool = ThreadPoolExecutor(max_workers=len(self.gens)) if len(self.gens) > 1 else None

    # -- one generation -------------------------------------------------------------------
    def _render(self, t: int) -> tuple[np.ndarray, torch.Tensor]:
        codes = check_asked_codes(self.opts[t].ask(), self.gens[t].dim, f"optimizer {self.optimizer_specs[t]!r}")
        with torch.no_grad():
            images = self.gens[t](torch.as_tensor(codes, dtype=torch.float32, device=self.device))
        return codes, check_images(images, where=f"generator {self.spaces[t]} output")

    @property
    def position(self) -> int:
        return self.generation

    @property
    def total(self) -> int:
        return self.generations

    def parts(self) -> list[Any]:
        return [*self.gens, self.scorer]

    def step(self) -> int:
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
        return 1

    def _add_rows(self, thread: int, resp: np.ndarray) -> None:
        n = len(resp)
        self.rows["generation"] += [self.generation] * n
        self.rows["thread"] += [thread] * n
        self.rows["index"] += list(range(n))
        self.rows["score"] += resp.tolist()

    # -- tables / state -------------------------------------------------------------------
    def _in_parts(self) -> bool:
        return self._parts is not None and self._parts.active

    def _absorb(self) -> None:
        """Read the generations held in the record's parts back into memory (once, at the end)."""
        if self._mem_from == 0:
            return
        rows: dict[str, list[np.ndarray]] = {k: [] for k in self.rows}
        codes: list[list[np.ndarray]] = [[] for _ in self.gens]
        for part in self._parts.read():
            for k in rows:
                rows[k].append(part[k].numpy())
            for t in range(len(self.gens)):
                if f"best_codes/{t}" in part:
                    codes[t].extend(part[f"best_codes/{t}"].numpy())
        n = sum(len(c) for c in rows["generation"])
        gens = np.concatenate(rows["generation"]) if n else np.zeros(0, dtype=np.int64)
        if (gens.size and (gens.min() != 0 or gens.max() != self._mem_from - 1)) or any(len(c) != self._mem_from for c in codes):
            raise RecordError(f"{self._parts.dir}: the parts do not hold generations 0..{self._mem_from - 1}")
        self.rows = {k: (np.concatenate(v).tolist() if n else []) + self.rows[k] for k, v in rows.items()}
        self.best_codes = [[c.copy() for c in codes[t]] + self.best_codes[t] for t in range(len(self.gens))]
        self._mem_from = 0

    def table(self) -> pd.DataFrame:
        self._absorb()
        return _scores_frame(self.rows, self.spaces, self.unit)

    @classmethod
    def partial_scores(cls, rec: RunRecord) -> pd.DataFrame:
        """The scores of a running record so far (read-only: its checkpoint's rows, or the parts it claims)."""
        from actmax.core.records.parts import PartLog

        manifest = rec.manifest(verify=True)
        spec = manifest.get("spec") or {}
        spaces, unit = list(spec.get("spaces") or []), spec.get("unit")
        if not rec.has_checkpoint():
            return _scores_frame({k: [] for k in ("generation", "thread", "index", "score")}, spaces, unit)
        ckpt = rec.load_checkpoint()
        meta, state = ckpt.get("meta") or {}, ckpt.get("state") or {}
        if meta.get("run_id") != manifest.get("run_id"):
            raise RecordError(f"{rec.path}: the manifest and the checkpoint belong to different runs; "
                              f"`actmax resume --repair {rec.path}` rebuilds what it can")
        keys = ("generation", "thread", "index", "score")
        if "rows" in state:
            rows = {k: state_field(state, "rows", k).tolist() for k in keys}
        else:
            claim = meta.get("parts")
            if not isinstance(claim, dict):
                raise RecordError(f"{rec.path}: the checkpoint claims no parts/ (corrupt or edited)")
            got: dict[str, list] = {k: [] for k in keys}
            for part in PartLog(rec.path).view(claim).read():
                for k in keys:
                    got[k] += part[k].tolist()
            rows = got
        return _scores_frame(rows, spaces, unit)

    def _row_tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.tensor(v, dtype=torch.float64 if k == "score" else torch.int64) for k, v in self.rows.items()}

    def state(self) -> dict[str, Any]:
        """Bounded while the rows live in the record's parts; inline (every row) otherwise (the final checkpoint)."""
        state = {"generation": self.generation,
                 "optimizers": [o.state_dict() for o in self.opts],
                 "best": {"score": float(self.best["score"]), "thread": int(self.best["thread"]),
                          "code": None if self.best["code"] is None else torch.from_numpy(self.best["code"])}}
        if self._in_parts():
            if self._mem_from != self.generation:
                raise RecordError("internal: checkpoint before the generation's part was written")
            return {**state, "rows_in": "parts"}
        self._absorb()
        return {**state, "rows": self._row_tensors(),
                "best_codes": [torch.from_numpy(np.stack(c)) if c else torch.zeros(0) for c in self.best_codes]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a checkpoint's state; anything that does not fit this run is one RecordError."""
        opts = state_field(state, "optimizers")
        if not isinstance(opts, (list, tuple)) or len(opts) != len(self.opts):
            raise RecordError("checkpoint has a different number of threads than the run's spec")
        if "rows" not in state and state.get("rows_in") == "parts":
            self._load_parts_state(state)
            return
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
        self._mem_from = 0

    def _load_parts_state(self, state: Mapping[str, Any]) -> None:
        """A bounded checkpoint: optimizers, counter and best entry; the rows stay in the (verified) parts."""
        try:
            for opt, s in zip(self.opts, state_field(state, "optimizers")):
                opt.load_state_dict(s)
            generation = int(state_field(state, "generation"))
            b = state_field(state, "best")
            best = {"score": float(b["score"]), "thread": int(b["thread"]),
                    "code": None if b["code"] is None else b["code"].numpy()}
        except RecordError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as exc:
            raise RecordError(f"checkpoint state does not fit this evolution ({type(exc).__name__}: {exc})") from exc
        if not 0 < generation <= self.generations:
            raise RecordError(f"checkpoint is inconsistent: generation {generation} outside 1..{self.generations}")
        if not (0 <= best["thread"] < len(self.gens)) or best["code"] is None:
            raise RecordError("checkpoint is inconsistent: best entry is inconsistent")
        self.generation, self.best = generation, best
        self.rows = {k: [] for k in self.rows}
        self.best_codes = [[] for _ in self.gens]
        self._mem_from = generation

    def best_image(self) -> torch.Tensor:
        t = self.best["thread"]
        with torch.no_grad():
            code = torch.as_tensor(self.best["code"][None], dtype=torch.float32, device=self.device)
            return self.gens[t](code)[0].cpu()

    # -- the run-kind protocol --------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], path: Path, reference_images: torch.Tensor | None = None,
                  **live: Any) -> "EvolveRun":
        """Rebuild from a record's spec (its reference images from the record), or build a new run from a
        spec in the record's format with ``reference_images`` given (a campaign cell)."""
        reference = reference_images
        if reference is None and spec.get("reference_images"):
            from safetensors.torch import load_file
            try:
                reference = load_file(Path(path) / REFERENCE)["images"]
            except Exception as exc:  # noqa: BLE001 - missing, dropped or corrupt
                raise RecordError(f"{Path(path) / REFERENCE} is missing or corrupt and cannot be rebuilt ({exc})") from None
        opts = spec["optimizers"]
        return cls(spec["generators"], spec["scorer"], opts if len(opts) > 1 else opts[0], unit=spec["unit"],
                   pole=spec["pole"], generations=spec["generations"], seed=spec["seed"], reference_images=reference,
                   device=spec.get("device"), image_every=int(spec.get("image_every", 10)),
                   plots=bool(spec.get("plots", True)))

    def record_spec(self) -> dict[str, Any]:
        return {"generators": [spec_text(g) for g in self.gen_specs], "spaces": self.spaces,
                "scorer": spec_text(self.scorer_spec), "optimizers": [spec_text(o) for o in self.optimizer_specs],
                "unit": self.unit, "pole": self.pole, "generations": self.generations, "seed": self.seed,
                "image_every": self.image_every, "plots": self.plots, "device": self.device_name,
                "reference_images": None if self.reference is None else REFERENCE}

    def description(self) -> str:
        return "evolve"

    def postfix(self) -> str | None:
        return f"{self.sign * self.best['score']:.4g}"

    def on_record(self, rec: RunRecord) -> None:
        self._parts = rec.parts
        rec.parts.start()
        if self.reference is not None:
            from safetensors.torch import save
            fileio.atomic_write_bytes(rec.path / REFERENCE, save({"images": self.reference.detach().float().cpu().contiguous()}))

    def on_resumed(self, rec: RunRecord, from_checkpoint: bool) -> None:
        """Continue the record's parts (verified by the resume), or start them (an inline or no checkpoint)."""
        self._parts = rec.parts
        if rec.parts.active != bool(self._mem_from) or (rec.parts.active and rec.parts.end != self._mem_from):
            raise RecordError(f"{rec.path}: the checkpoint's state and its claim on parts/ disagree "
                              "(corrupt or edited)")
        if not rec.parts.active:
            rec.parts.start()   # rows held inline (an older record, or a final checkpoint) go into the next part

    def commit(self, rec: RunRecord) -> bool:
        montages = []
        if self.image_every and (self.generation - 1) % self.image_every == 0:
            for space, imgs in zip(self.spaces, self.last_images):
                montages.append(_montage_name(space, self.generation - 1))
                save_montage(imgs.cpu(), rec.path / montages[-1], nrow=10,
                             title=f"{space}, generation {self.generation - 1}: {len(imgs)} images")
        if self._in_parts():   # this generation's rows and best codes: one small part, claimed by the index
            parts = {**self._row_tensors(), **{f"best_codes/{t}": torch.from_numpy(np.stack(c))
                                               for t, c in enumerate(self.best_codes) if c}}
            self._parts.append(self._mem_from, self.generation, parts, files=montages)
            self.rows = {k: [] for k in self.rows}
            self.best_codes = [[] for _ in self.gens]
            self._mem_from = self.generation
        if not rec.has_checkpoint():   # the first checkpoint: a bad optimizer state fails now, not at resume
            for opt in self.opts:
                check_state_roundtrip(opt)
        return True

    def claims(self) -> list[str]:
        """Files the checkpoint after ``generation`` generations vouches for (sha256 in the checkpoint).

        While the run writes parts, each montage is claimed by its generation's index line instead
        (the checkpoint stays the same size); the final checkpoint claims them all.
        """
        out = [REFERENCE] if self.reference is not None else []
        if self.image_every and not self._in_parts():
            out += [_montage_name(s, g) for g in range(0, self.generation, self.image_every) for s in self.spaces]
        return out

    def result(self, rec: RunRecord | None, elapsed: float) -> EvolutionResult:
        table = self.table()
        traj = paired.with_images_shown(_trajectory(table[table["thread"] >= 0], self.sign), table)
        return EvolutionResult(scores=table, best_score=self.sign * self.best["score"], best_image=self.best_image(),
                               best_code=self.best["code"], best_space=self.spaces[self.best["thread"]],
                               trajectory=traj, out_dir=None if rec is None else rec.path, spaces=self.spaces)

    def write_final(self, rec: RunRecord, result: EvolutionResult) -> None:
        _write_final_files(rec, self, result.trajectory, result.best_image, self.plots)

    def summary(self, result: EvolutionResult) -> dict[str, Any]:
        return {"generations_done": self.generation, "evaluations": int((result.scores["thread"] >= 0).sum()),
                "evaluations_per_space": paired.evaluations_per_space(result.scores),
                "best_score": result.best_score, "best_space": result.best_space}

    def stepping(self) -> Any:
        """One torch thread per space thread while paired spaces render in parallel."""
        return intra_op_threads(len(self.gens) if self.pool is not None else 1)

    def end_steps(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    @classmethod
    def stored_result(cls, rec: RunRecord, manifest: Mapping[str, Any], state: Mapping[str, Any],
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
        traj = paired.with_images_shown(_trajectory(table[table["thread"] >= 0], sign), table)
        return EvolutionResult(scores=table, best_score=sign * score, best_image=stimuli["best"],
                               best_code=code.numpy() if isinstance(code, torch.Tensor) else np.asarray(code),
                               best_space=spaces[thread], trajectory=traj, out_dir=rec.path, spaces=spaces)

    @classmethod
    def read_stimuli(cls, rec: RunRecord) -> list[tuple[str, torch.Tensor]]:
        """The overall best, then each space's best."""
        from safetensors import safe_open

        from actmax.core.records import STIMULI

        stimuli = rec.stimuli()
        with safe_open(str(rec.path / STIMULI), "pt") as fh:
            spaces = (fh.metadata() or {}).get("spaces", "").split(",")
        return [("best", stimuli["best"])] + [(f"{s}_best", stimuli[f"{s}/best"]) for s in spaces
                                              if f"{s}/best" in stimuli]


def _scores_frame(rows: Mapping[str, Sequence], spaces: Sequence[str], unit: Any) -> pd.DataFrame:
    """The scores table (generation, thread, space, index, unit, score) of row columns."""
    df = pd.DataFrame({k: np.asarray(v) for k, v in rows.items()})
    if df.empty:
        df = pd.DataFrame({"generation": pd.Series(dtype=int), "thread": pd.Series(dtype=int),
                           "index": pd.Series(dtype=int), "score": pd.Series(dtype=float)})
    names = np.array(list(spaces) + ["reference"])
    df.insert(2, "space", names[df["thread"].to_numpy()])
    df.insert(4, "unit", unit)
    return df


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


def _write_final_files(rec: RunRecord, ev: EvolveRun, traj: pd.DataFrame, best_image: torch.Tensor,
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

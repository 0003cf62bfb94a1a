"""Corrupted records: every flipped byte is an error or an exact repair, never a silently different record."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from actmax.core.errors import RecordError
from actmax.core.evolve import evolve, resume_evolution
from actmax.core.records import LOCK, MANIFEST, RunRecord
from actmax.core.synthesize import resume_synthesis, synthesize

EVOLVE = dict(generator="gabor:size=16", scorer="model:kind=mixed,n=3,size=16", optimizer="cma:popsize=6", unit=1,
              generations=6, seed=2, image_every=2)
SYNTH = dict(generator="pixel:size=16", scorer="model:kind=mixed,n=3,size=16", units=[0, 2], poles=("high", "low"),
             seeds=(0,), ascent="ascent:steps=6", checkpoint_every=2)
#: manifest fields that legitimately differ between two copies of one record (times, repair notes)
VOLATILE = {"updated", "finished", "elapsed_s", "repairs", "sha256", "files", "resumed"}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (LOCK, MANIFEST) and not p.name.startswith(".")}


def _manifest_core(root: Path, other_run: bool = False) -> dict:
    skip = VOLATILE | ({"run_id", "created"} if other_run else set())
    return {k: v for k, v in json.loads((root / MANIFEST).read_text()).items() if k not in skip}


def _same_state(a, b) -> bool:
    import torch
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def _flip(path: Path, rng: random.Random, n: int) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(n):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def _check_case(ref: Path, case: Path, resume, other_run: bool = False) -> str:
    """'error', 'exact' or 'repaired (dropped ...)'; fails the test on a silently different record."""
    try:
        resume(case)
        outcome = "accepted"
    except RecordError:
        try:
            resume(case, repair=True)
            outcome = "repaired"
        except RecordError:
            return "error"
    dropped: list[str] = []
    if outcome == "repaired":
        notes = json.loads((case / MANIFEST).read_text()).get("repairs", [])
        assert notes, "a repair must say what it did"
        dropped = notes[-1]["dropped"]
    want, got = _files(ref), _files(case)
    for rel in dropped:
        assert rel not in got, f"{rel} reported dropped but still there"
        want.pop(rel, None)
    assert got.keys() == want.keys(), sorted(set(got) ^ set(want))
    if other_run:  # a separately run reference: its checkpoint differs in run id and times, not in state
        load = lambda r: RunRecord(r).load_checkpoint()["state"]  # noqa: E731
        assert _same_state(load(case), load(ref)), "checkpoint state differs"
        want.pop("checkpoint.pt")
        got.pop("checkpoint.pt")
    differ = [k for k in want if want[k] != got[k]]
    assert not differ, f"silently different files after {outcome}: {differ}"
    assert _manifest_core(case, other_run) == _manifest_core(ref, other_run)
    RunRecord(case).verify_finished()          # and the repaired record verifies ...
    resume(case)                               # ... and resumes (a verified no-op) without --repair
    return "exact" if outcome == "accepted" else f"repaired (dropped {dropped})"


def _run_flips(tmp_path: Path, ref: Path, resume, trials_per_file: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    outcomes: dict[str, list[str]] = {}
    for rel in sorted(_files(ref)) + [MANIFEST]:
        for trial in range(trials_per_file):
            case = tmp_path / f"case_{rel.replace('/', '_')}_{trial}"
            shutil.copytree(ref, case, ignore=shutil.ignore_patterns(LOCK))
            _flip(case / rel, rng, n=rng.choice([1, 1, 3]))
            outcomes.setdefault(rel, []).append(_check_case(ref, case, resume))
    return outcomes


def test_flipped_bytes_in_every_evolution_record_file(tmp_path):
    ref = tmp_path / "ref"
    g = EVOLVE
    evolve(g["generator"], g["scorer"], g["optimizer"], unit=g["unit"], generations=g["generations"], seed=g["seed"],
           image_every=g["image_every"], out_dir=ref)
    outcomes = _run_flips(tmp_path, ref, resume_evolution, trials_per_file=3, seed=7)
    # what can be rebuilt from the final checkpoint is repaired exactly; the rest is an error
    for rel in ("scores.parquet", "codes.safetensors", "best.png", "trajectory.png",
                "images/best_per_generation_gabor.png"):
        assert all(o.startswith("repaired (dropped [])") for o in outcomes[rel]), (rel, outcomes[rel])
    assert all(o == "error" for o in outcomes["checkpoint.pt"]), outcomes["checkpoint.pt"]
    assert all(o == "error" for o in outcomes[MANIFEST]), outcomes[MANIFEST]
    # per-generation montages show whole populations, which the checkpoint does not hold: dropped, and said so
    assert all(o == "repaired (dropped ['images/gen002_gabor.png'])" for o in outcomes["images/gen002_gabor.png"])
    print("\n" + "\n".join(f"{k}: {v}" for k, v in outcomes.items()))


def test_flipped_bytes_in_every_synthesis_record_file(tmp_path):
    ref = tmp_path / "ref"
    s = SYNTH
    synthesize(s["generator"], s["scorer"], units=s["units"], poles=s["poles"], seeds=s["seeds"], ascent=s["ascent"],
               checkpoint_every=s["checkpoint_every"], out_dir=ref)
    outcomes = _run_flips(tmp_path, ref, resume_synthesis, trials_per_file=1, seed=3)
    for rel, got in outcomes.items():
        if rel in ("checkpoint.pt", MANIFEST):
            assert got == ["error"], (rel, got)
        else:   # everything else of a synthesis is rebuilt exactly from its final checkpoint
            assert got == ["repaired (dropped [])"], (rel, got)


def test_flipped_bytes_in_a_killed_run_resume_exactly_or_fail(tmp_path, monkeypatch):
    """Mid-run damage: the resumed record equals the uninterrupted one, or resume stops with an error."""
    import actmax.core.files as records   # every record write goes through files.atomic_write_bytes

    g = EVOLVE
    ref = tmp_path / "ref"
    evolve(g["generator"], g["scorer"], g["optimizer"], unit=g["unit"], generations=g["generations"], seed=g["seed"],
           image_every=g["image_every"], out_dir=ref)
    killed = tmp_path / "killed"
    real, calls = records.atomic_write_bytes, {"n": 0}

    def dying(path, data):
        calls["n"] += 1
        if calls["n"] == 12:           # inside generation 4's writes
            raise KeyboardInterrupt("killed")
        real(path, data)

    monkeypatch.setattr(records, "atomic_write_bytes", dying)
    with pytest.raises(KeyboardInterrupt):
        evolve(g["generator"], g["scorer"], g["optimizer"], unit=g["unit"], generations=g["generations"],
               seed=g["seed"], image_every=g["image_every"], out_dir=killed)
    monkeypatch.setattr(records, "atomic_write_bytes", real)
    rng = random.Random(11)
    results = {}
    for rel in sorted(_files(killed)) + [MANIFEST]:
        case = tmp_path / f"k_{rel.replace('/', '_')}"
        shutil.copytree(killed, case, ignore=shutil.ignore_patterns(LOCK))
        _flip(case / rel, rng, n=2)
        results[rel] = _check_case(ref, case, resume_evolution, other_run=True)
    # the rows live only in the append-only parts: a damaged part or index is an error, never different data
    parts = [rel for rel in results if rel.startswith("parts/")]
    assert "parts/index.jsonl" in parts and len(parts) >= 4, sorted(results)
    assert all(results[rel] == "error" for rel in parts), {rel: results[rel] for rel in parts}
    assert "scores.parquet" not in results            # a running record has no table yet: it is compacted at the end
    assert results["checkpoint.pt"] == "error" and results[MANIFEST] == "error"
    print(results)


def _killed_evolution(tmp_path: Path, name: str, seed: int = 2) -> Path:
    """An evolution stopped after 3 of 6 generations (its checkpoint claims generation 3)."""
    g = EVOLVE
    out = tmp_path / name
    evolve(g["generator"], g["scorer"], g["optimizer"], unit=g["unit"], generations=3, seed=seed,
           image_every=g["image_every"], out_dir=out)
    rec = RunRecord(out)
    m = rec.manifest()
    m["spec"]["generations"], m["status"] = g["generations"], "running"   # as if killed at generation 3
    rec.write_manifest(m)
    ckpt = rec.load_checkpoint()
    ckpt["meta"]["spec_sha256"] = __import__("actmax.core.records", fromlist=["spec_hash"]).spec_hash(m["spec"])
    rec.save_checkpoint(ckpt)
    return out


def test_forged_generation_counters_and_mixed_runs_are_errors(tmp_path):
    import torch

    out = _killed_evolution(tmp_path, "a")
    assert resume_evolution(out).evaluations == 6 * 6          # the doctored-but-consistent record resumes
    # a gap in the generation counter, re-sealed with a valid checksum: still refused
    out = _killed_evolution(tmp_path, "b")
    rec = RunRecord(out)
    ckpt = rec.load_checkpoint()
    ckpt["state"]["rows"]["generation"] = torch.where(ckpt["state"]["rows"]["generation"] == 1, 2,
                                                      ckpt["state"]["rows"]["generation"])
    rec.save_checkpoint(ckpt)
    with pytest.raises(RecordError, match="inconsistent"):
        resume_evolution(out)
    # duplicate rows
    out = _killed_evolution(tmp_path, "c")
    rec = RunRecord(out)
    ckpt = rec.load_checkpoint()
    rows = ckpt["state"]["rows"]
    ckpt["state"]["rows"] = {k: torch.cat([v, v[-6:]]) for k, v in rows.items()}
    rec.save_checkpoint(ckpt)
    with pytest.raises(RecordError, match="inconsistent"):
        resume_evolution(out)
    # a checkpoint from another run (two experiments mixed)
    other = _killed_evolution(tmp_path, "d", seed=5)
    shutil.copy(other / "checkpoint.pt", tmp_path / "a_ckpt")
    out = _killed_evolution(tmp_path, "e")
    shutil.copy(tmp_path / "a_ckpt", out / "checkpoint.pt")
    with pytest.raises(RecordError, match="belongs to another run"):
        resume_evolution(out)
    # a manifest whose unit was edited (checksum re-computed or not)
    out = _killed_evolution(tmp_path, "f")
    text = (out / MANIFEST).read_text().replace('"unit": 1', '"unit": 2')
    (out / MANIFEST).write_text(text)
    with pytest.raises(RecordError, match="edited"):
        resume_evolution(out)
    rec = RunRecord(out)
    rec.write_manifest(rec.manifest())                          # re-sealed: the checkpoint still disagrees
    with pytest.raises(RecordError, match="another run or spec"):
        resume_evolution(out)
    # missing keys in a (re-sealed) checkpoint are one RecordError, not a KeyError
    out = _killed_evolution(tmp_path, "g")
    rec = RunRecord(out)
    ckpt = rec.load_checkpoint()
    del ckpt["state"]["best"]
    rec.save_checkpoint(ckpt)
    with pytest.raises(RecordError, match="missing best"):
        resume_evolution(out)


def test_deleted_table_of_a_finished_run_is_an_error_then_rebuilt_by_repair(tmp_path):
    g = EVOLVE
    ref = tmp_path / "ref"
    evolve(g["generator"], g["scorer"], g["optimizer"], unit=g["unit"], generations=g["generations"], seed=g["seed"],
           image_every=g["image_every"], out_dir=ref)
    case = tmp_path / "case"
    shutil.copytree(ref, case, ignore=shutil.ignore_patterns(LOCK))
    (case / "scores.parquet").unlink()
    with pytest.raises(RecordError, match="scores.parquet is missing or corrupt"):
        resume_evolution(case)
    assert _check_case(ref, case, resume_evolution) == "repaired (dropped [])"
    assert (case / "scores.parquet").read_bytes() == (ref / "scores.parquet").read_bytes()


def test_flipped_bytes_in_every_screen_record_file(tmp_path):
    import numpy as np

    from actmax.core.apps.natural_images import sample_patches
    from actmax.core.apps.screen import resume_screen, screen

    np.save(tmp_path / "x.npy", (sample_patches(48, 16, seed=3) * 255).astype(np.uint8))
    ref = tmp_path / "ref"
    screen("model:kind=mixed,n=3,size=16", tmp_path / "x.npy", k=3, batch_size=8, checkpoint_every=2, out_dir=ref,
           max_montages=1)
    outcomes = _run_flips(tmp_path, ref, resume_screen, trials_per_file=1, seed=5)
    for rel, got in outcomes.items():
        if rel in ("checkpoint.pt", MANIFEST):
            assert got == ["error"], (rel, got)
        else:   # tables, montages and the summary plot are rebuilt exactly from the final checkpoint
            assert got == ["repaired (dropped [])"], (rel, got)

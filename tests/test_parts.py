"""Append-only per-generation parts: a generation's I/O does not grow with the run; damage is an error, never other data."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from actmax.core.errors import RecordError
from actmax.core.evolve import evolve, resume_evolution
from actmax.core.records import LOCK, RunRecord
from actmax.core.records.parts import INDEX, PARTS, steps_done

SPEC = dict(generator="gabor:size=8", scorer="model:kind=simple,n=2,size=8", optimizer="genetic:popsize=4", unit=1,
            seed=3, image_every=3, plots=False, progress=False)


def _evolve(out: Path, generations: int, seed: int = SPEC["seed"]):
    return evolve(SPEC["generator"], SPEC["scorer"], SPEC["optimizer"], unit=SPEC["unit"], seed=seed,
                  image_every=SPEC["image_every"], plots=False, progress=False, generations=generations, out_dir=out)


def _killed(out: Path, generations: int, at: int, monkeypatch, seed: int = SPEC["seed"]) -> Path:
    """A run killed after generation ``at``'s part was written, before its checkpoint (so ``at - 1`` is committed)."""
    real = RunRecord.checkpoint

    def dying(self, state, *, step, claims=()):
        if step == at:
            raise KeyboardInterrupt("killed")
        real(self, state, step=step, claims=claims)

    monkeypatch.setattr(RunRecord, "checkpoint", dying)
    with pytest.raises(KeyboardInterrupt):
        _evolve(out, generations, seed)
    monkeypatch.setattr(RunRecord, "checkpoint", real)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parts") / "ref"
    _evolve(out, 12)
    return out


def _same_as(ref: Path, out: Path) -> None:
    pd.testing.assert_frame_equal(RunRecord(out).scores(), RunRecord(ref).scores())
    a, b = RunRecord(out).codes(), RunRecord(ref).codes()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pngs = lambda r: {p.relative_to(r).as_posix(): p.read_bytes() for p in r.rglob("*.png")}  # noqa: E731
    assert pngs(out) == pngs(ref)


def test_a_generation_writes_one_part_and_a_checkpoint_of_constant_size(tmp_path, monkeypatch):
    sizes = {}
    real = RunRecord.checkpoint

    def spy(self, state, *, step, claims=()):
        real(self, state, step=step, claims=claims)
        if not (self.path / "scores.parquet").exists():     # while running: no table is rewritten
            sizes[step] = ((self.path / "checkpoint.pt").stat().st_size, len(list((self.path / PARTS).iterdir())))

    monkeypatch.setattr(RunRecord, "checkpoint", spy)
    out = tmp_path / "run"
    result = _evolve(out, 40)
    steps = sorted(sizes)
    assert steps[0] == 1 and steps[-1] == 40
    # checkpoint: the same size at generation 2 and 40 (no rows, no growing claims; montages are claimed by the index)
    assert abs(sizes[40][0] - sizes[2][0]) <= 16, (sizes[2], sizes[40])
    assert sizes[40][1] == 40 + 1                                 # one part per generation, plus the index
    assert not (out / PARTS).exists()                              # compacted at the end, then removed
    table = RunRecord(out).scores()
    assert len(table) == 40 * 4 and table["generation"].tolist() == sorted(table["generation"].tolist())
    pd.testing.assert_frame_equal(table, result.scores)
    assert RunRecord(out).codes()["gabor/best_per_generation"].shape[0] == 40


def test_killed_between_part_and_checkpoint_resumes_exactly(reference, tmp_path, monkeypatch):
    out = _killed(tmp_path / "k", 12, at=7, monkeypatch=monkeypatch)
    assert steps_done(out) == 7                                    # the part of generation 7 landed ...
    meta = RunRecord(out).load_checkpoint()["meta"]
    assert meta["step"] == 6 and meta["parts"]["entries"] == 6     # ... but only 6 are committed
    with open(out / PARTS / INDEX, "ab") as fh:                    # and a torn line after it
        fh.write(b'{"start": 7, "end"')
    resume_evolution(out)
    _same_as(reference, out)


def _damage_cases(killed: Path, tmp_path: Path) -> dict[str, Path]:
    parts = killed / PARTS
    cases = {}

    def case(name: str) -> Path:
        c = tmp_path / name
        shutil.copytree(killed, c, ignore=shutil.ignore_patterns(LOCK))
        cases[name] = c
        return c / PARTS

    p = case("flip")
    data = bytearray((p / "0000003.safetensors").read_bytes())
    data[-3] ^= 0x10                                              # a score's low bits
    (p / "0000003.safetensors").write_bytes(bytes(data))
    p = case("truncate")
    (p / "0000004.safetensors").write_bytes((parts / "0000004.safetensors").read_bytes()[:-8])
    p = case("delete")
    (p / "0000002.safetensors").unlink()
    p = case("swap")
    a, b = (parts / "0000002.safetensors").read_bytes(), (parts / "0000005.safetensors").read_bytes()
    (p / "0000002.safetensors").write_bytes(b)
    (p / "0000005.safetensors").write_bytes(a)
    p = case("index_flip")
    text = (parts / INDEX).read_text().replace('"start": 2', '"start": 3', 1)
    (p / INDEX).write_text(text)
    p = case("index_truncated")
    lines = (parts / INDEX).read_bytes().splitlines(keepends=True)
    assert len(lines) == 7                                        # 6 committed, the 7th written before the kill
    (p / INDEX).write_bytes(b"".join(lines[:5]))
    p = case("index_deleted")
    (p / INDEX).unlink()
    p = case("parts_deleted")
    shutil.rmtree(p)
    return cases


def test_damaged_parts_are_an_error_never_different_data(reference, tmp_path, monkeypatch):
    killed = _killed(tmp_path / "k", 12, at=7, monkeypatch=monkeypatch)
    other = _killed(tmp_path / "other", 12, at=7, monkeypatch=monkeypatch, seed=4)    # another run
    cases = _damage_cases(killed, tmp_path)
    for name, source in (("part_from_other_run", other / PARTS / "0000003.safetensors"),
                         ("index_from_other_run", other / PARTS / INDEX)):
        c = tmp_path / name
        shutil.copytree(killed, c, ignore=shutil.ignore_patterns(LOCK))
        shutil.copy(source, c / PARTS / source.name)
        cases[name] = c
    for name, case in cases.items():
        for repair in (False, True):
            with pytest.raises(RecordError, match=r"parts/|index\.jsonl|safetensors"):
                resume_evolution(case, repair=repair)
    # a damaged montage claimed by the index: an error, or dropped by --repair (and said so)
    c = tmp_path / "montage"
    shutil.copytree(killed, c, ignore=shutil.ignore_patterns(LOCK))
    (c / "images" / "gen003_gabor.png").write_bytes(b"not a png")
    with pytest.raises(RecordError, match="gen003_gabor.png"):
        resume_evolution(c)
    resume_evolution(c, repair=True)
    notes = json.loads((c / "manifest.json").read_text())["repairs"]
    assert notes[-1]["dropped"] == ["images/gen003_gabor.png"]
    pd.testing.assert_frame_equal(RunRecord(c).scores(), RunRecord(reference).scores())


def test_a_forged_claim_or_a_state_without_its_parts_is_an_error(tmp_path, monkeypatch):
    killed = _killed(tmp_path / "k", 12, at=7, monkeypatch=monkeypatch)
    rec = RunRecord(killed)
    ckpt = rec.load_checkpoint()
    del ckpt["meta"]["parts"]                     # the state says "rows in parts", the claim is gone
    rec.save_checkpoint(ckpt)
    with pytest.raises(RecordError, match="disagree"):
        resume_evolution(killed)
    ckpt["meta"]["parts"] = {"entries": 5, "bytes": 10, "sha256": "0" * 64, "end": 6}
    rec.save_checkpoint(ckpt)
    with pytest.raises(RecordError, match="index.jsonl"):
        resume_evolution(killed)


def test_synthesis_checkpoints_hold_no_rows(tmp_path, monkeypatch):
    from actmax.core.synthesize import synthesize

    states = []
    real = RunRecord.checkpoint

    def spy(self, state, *, step, claims=()):
        states.append(dict(state))
        real(self, state, step=step, claims=claims)

    monkeypatch.setattr(RunRecord, "checkpoint", spy)
    result = synthesize("pixel:size=8", "model:kind=simple,n=2,size=8", units=[0, 1], seeds=(0,),
                        ascent="ascent:steps=6", checkpoint_every=2, out_dir=tmp_path / "s", progress=False)
    assert [("rows" in s, s.get("rows_in")) for s in states] == [(False, "parts")] * 3 + [(True, None)]
    assert tuple(states[-1]["rows"].shape) == (6, 4)
    table = RunRecord(tmp_path / "s").scores()
    assert len(table) == 6 * 4 and not (tmp_path / "s" / PARTS).exists()
    assert result.out_dir == tmp_path / "s"


def test_load_run_and_gather_read_a_running_record_from_its_parts(reference, tmp_path, monkeypatch):
    from actmax.core.records import load_run

    killed = _killed(tmp_path / "k", 12, at=7, monkeypatch=monkeypatch)
    table = load_run(killed).scores                      # the 6 committed generations, not the 7th part
    full = RunRecord(reference).scores()
    pd.testing.assert_frame_equal(table, full[full["generation"] < 6].reset_index(drop=True))
    data = bytearray((killed / PARTS / "0000002.safetensors").read_bytes())
    data[-1] ^= 1
    (killed / PARTS / "0000002.safetensors").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="0000002.safetensors"):
        load_run(killed)
    assert load_run(killed, verify=False).scores.empty    # verify=False reads what is there: nothing usable

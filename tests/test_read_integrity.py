"""Integrity wherever a record is read: load_run, analyze and campaign gather verify by default.

Every damage (byte flip, truncation, deletion, a file or a manifest swapped in from another run)
in every record file type gives one RecordError naming the file, never different data.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from actmax.core.errors import RecordError
from actmax.core.evolve import evolve
from actmax.core.records import MANIFEST, RunRecord, load_run
from actmax.core.synthesize import synthesize

EVOLVE = dict(generator="gabor:size=16", scorer="model:kind=mixed,n=3,size=16", optimizer="cma:popsize=4", unit=1,
              generations=3, seed=2, image_every=0, plots=False)
SYNTH = dict(generator="pixel:size=16", scorer="model:kind=mixed,n=3,size=16", units=[0, 2], poles=("high",),
             seeds=(0,), ascent="ascent:steps=3", checkpoint_every=3)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("recs")
    evolve(out_dir=root / "ev", **EVOLVE)
    evolve(out_dir=root / "ev_other", **{**EVOLVE, "seed": 3})
    synthesize(out_dir=root / "syn", **SYNTH)
    return root


def _damages(rng: random.Random):
    def flip(p: Path) -> None:
        data = bytearray(p.read_bytes())
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
        p.write_bytes(bytes(data))

    def truncate(p: Path) -> None:
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])

    def delete(p: Path) -> None:
        p.unlink()

    return {"flip": flip, "truncate": truncate, "delete": delete}


def _same(a, b) -> bool:
    import torch
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["ev", "syn"])
def test_load_run_errors_on_every_damage_never_returns_different_data(records, tmp_path, name):
    ref = load_run(records / name)
    rng = random.Random(7)
    files = [f for f in ("scores.parquet", "codes.safetensors", "stimuli.safetensors", MANIFEST)
             if (records / name / f).exists()]
    assert len(files) >= 3
    outcomes = []
    for rel in files:
        for what, damage in _damages(rng).items():
            case = tmp_path / f"{rel}-{what}"
            shutil.copytree(records / name, case)
            damage(case / rel)
            try:
                got = load_run(case)
            except RecordError as exc:
                assert rel in str(exc) or MANIFEST in str(exc) or "manifest" in str(exc), exc
                outcomes.append("error")
                continue
            # accepted: only if the data are identical (e.g. a flip in a JSON whitespace)
            for field in ("scores", "codes", "stimuli"):
                assert _same(getattr(got, field), getattr(ref, field)), (rel, what, field)
            outcomes.append("same")
    assert outcomes.count("error") >= len(files) * 3 - 1
    # unverified read of a damaged file is still possible on request
    case = tmp_path / "noverify"
    shutil.copytree(records / name, case)
    (case / "stimuli.safetensors").unlink()
    assert load_run(case, verify=False).stimuli == {}


def test_files_or_manifest_swapped_in_from_another_run_are_errors(records, tmp_path):
    for rel in ("scores.parquet", "codes.safetensors", "stimuli.safetensors", MANIFEST):
        case = tmp_path / rel
        shutil.copytree(records / "ev", case)
        shutil.copy(records / "ev_other" / rel, case / rel)
        with pytest.raises(RecordError, match="resume --repair|manifest"):
            load_run(case)
    case = tmp_path / "stray"          # a record file that the finished manifest does not list
    shutil.copytree(records / "syn", case)
    rec = RunRecord(case)
    m = rec.manifest()
    rec.write_manifest({**m, "files": {k: v for k, v in m["files"].items() if k != "scores.parquet"}})
    with pytest.raises(RecordError, match="not one of the record's files"):
        load_run(case)


def test_analyze_reads_verified_records(records, tmp_path):
    from actmax.core.apps.analysis_reports import read_stimuli, report_trajectory

    case = tmp_path / "ev"
    shutil.copytree(records / "ev", case)
    report_trajectory(case, out=tmp_path / "ok")
    data = bytearray((case / "scores.parquet").read_bytes())
    data[len(data) // 2] ^= 1
    (case / "scores.parquet").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="scores.parquet.*resume --repair"):
        report_trajectory(case, out=tmp_path / "bad")
    syn = tmp_path / "syn"
    shutil.copytree(records / "syn", syn)
    (syn / "targets.csv").write_text((syn / "targets.csv").read_text().replace("0", "1", 1))
    with pytest.raises(RecordError, match="targets.csv"):
        read_stimuli(syn)


def test_gather_and_campaign_skip_refuse_a_damaged_finished_cell(tmp_path):
    from actmax.core.apps.campaign import gather, run_campaign

    spec = {"scorer": "model:kind=mixed,n=2,size=8", "spaces": ["gabor:size=8"], "optimizers": ["cma:popsize=4"],
            "generations": 2, "plots": False, "units": [0, 1]}
    run_campaign(spec, out=tmp_path / "c", workers=1)
    gather(tmp_path / "c")
    cell = sorted((tmp_path / "c" / "runs").iterdir())[0]
    data = bytearray((cell / "scores.parquet").read_bytes())
    data[len(data) // 3] ^= 4
    (cell / "scores.parquet").write_bytes(bytes(data))
    with pytest.raises(RecordError, match="scores.parquet.*resume --repair"):
        gather(tmp_path / "c")
    report = run_campaign(spec, out=tmp_path / "c", workers=1)
    counts = report.counts()
    assert counts["skipped"] == 1 and counts["failed"] == 1
    failed = report.table[report.table["action"] == "failed"].iloc[0]
    assert "scores.parquet" in failed["error"] and "--repair" in failed["error"]

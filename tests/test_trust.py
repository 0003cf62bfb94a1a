"""A record is data: code named anywhere in a record's spec is imported only with --trust.

Every attack uses a module that writes a marker file when imported; the marker must never appear.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from actmax.core.errors import RecordError
from actmax.core.records import RunRecord
from actmax.core.registry import RegistryError, generators, optimizers, scorers
from actmax.core.trust import UntrustedCodeError, foreign_modules, untrusted


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """(module name, marker path): importing the module writes the marker."""
    name = f"evil_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "MARKER"
    code = (f"open({str(marker)!r}, 'w').write('imported')\n"
            "import torch\n"
            "def f(images):\n    return torch.zeros(len(images), 1)\n"
            "class C:\n    def __init__(self, **kw):\n        pass\n")
    (tmp_path / "evilpkg").mkdir()
    (tmp_path / "evilpkg" / f"{name}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path / "evilpkg"))
    return name, marker


def _scorer_specs(mod: str) -> list:
    return [f"poisson:base=callable:fn={mod}:f", f"poisson:base=path={mod}:C", f"path={mod}:C",
            f"callable:fn={mod}:f", {"name": "callable", "fn": f"{mod}:f"}, {"path": f"{mod}:C"},
            {"name": "poisson", "base": {"name": "callable", "fn": f"{mod}:f"}},
            f"poisson:base='poisson:base=callable:fn={mod}:f'"]


def test_import_gate_refuses_every_spelling_before_importing(evil):
    mod, marker = evil
    for spec in _scorer_specs(mod):
        assert foreign_modules({"scorer": spec}), spec        # the early scan sees it
        with untrusted("rec"), pytest.raises(UntrustedCodeError, match="--trust"):
            scorers.create(spec)                                # and the import itself is refused
        assert not marker.exists(), spec
    for reg in (generators, optimizers):
        with untrusted("rec"), pytest.raises(UntrustedCodeError):
            reg.create(f"path={mod}:C")
    errors = []

    def worker():          # a part built in another thread during an untrusted resume is refused too
        try:
            scorers.create(f"callable:fn={mod}:f")
        except UntrustedCodeError as exc:
            errors.append(exc)

    with untrusted("rec"):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert len(errors) == 1 and not marker.exists()
    assert foreign_modules({"scorer": "poisson:base=model", "generators": ["fourier:size=16"]}) == []
    scorers.create(f"callable:fn={mod}:f")                     # outside a resume the user's own spec runs
    assert marker.exists()


def _record(path: Path, scorer, kind: str = "evolve") -> Path:
    spec = {"generators": ["fourier:size=8"], "spaces": ["fourier"], "scorer": scorer, "optimizers": ["cma:popsize=4"],
            "unit": 0, "pole": "high", "generations": 2, "seed": 0, "image_every": 0, "plots": False, "device": None,
            "reference_images": None}
    if not (path / "manifest.json").exists():
        RunRecord.create(path, kind=kind, spec={**spec, "scorer": "model"}).close()
    rec = RunRecord(path).lock()
    try:     # a record written elsewhere (or edited, checksum redone) naming foreign code
        rec.update_manifest(spec=spec)
    finally:
        rec.close()
    return path


def test_resume_refuses_nested_dict_and_path_specs_even_past_the_scan(evil, tmp_path, monkeypatch):
    from actmax.core import records
    from actmax.core.evolve import resume_evolution

    mod, marker = evil
    scan = records.imported_modules
    for spec in _scorer_specs(mod):
        out = _record(tmp_path / "r", spec)
        monkeypatch.setattr(records, "imported_modules", scan)
        with pytest.raises(RecordError, match="--trust"):
            resume_evolution(out)
        # even if the up-front scan missed a spelling, the import itself is refused
        monkeypatch.setattr(records, "imported_modules", lambda spec: [])
        with pytest.raises(RegistryError, match="--trust"):
            resume_evolution(out)
        assert not marker.exists(), spec


def test_campaign_cell_resumes_only_with_the_campaign_files_spec(evil, tmp_path):
    from actmax.core.apps.campaign import CampaignSpec, run_cell

    mod, marker = evil
    spec = {"scorer": "model:kind=mixed,n=2,size=8", "spaces": ["fourier:size=8"], "optimizers": ["cma:popsize=4"],
            "generations": 2, "plots": False, "units": [0]}
    cell = CampaignSpec.from_mapping(spec).cells()[0]
    path = tmp_path / "c" / "runs" / cell.name
    _record(path, f"poisson:base=callable:fn={mod}:f")
    (path / "checkpoint.pt").write_bytes(b"x")               # looks interrupted: the campaign would resume it
    row = run_cell(cell, tmp_path / "c")
    assert row["action"] == "failed" and "campaign's spec" in row["error"], row
    assert not marker.exists()


def test_untrusted_path_parts_must_be_registered_parts_and_the_cache_is_no_way_round(evil, tmp_path):
    mod, marker = evil
    with untrusted("rec"), pytest.raises(UntrustedCodeError, match="not a registered part"):
        scorers.create(f"path=actmax.core.records:atomic_write_bytes,path='{tmp_path / 'x'}',data=b'1'")
    assert not (tmp_path / "x").exists()
    with untrusted("rec"):      # a registered part by import path is fine
        assert generators.create("path=actmax.generators.fourier:FourierGenerator,size=8").dim > 0
    scorers.entry(f"{mod}:C")                              # imported and cached while trusted ...
    marker.unlink()
    with untrusted("rec"), pytest.raises(UntrustedCodeError):
        scorers.create(f"path={mod}:C")                    # ... and still refused inside a resume


def test_analyze_bidirectional_does_not_run_a_records_scorer_code_without_trust(evil, tmp_path):
    from actmax.core.apps.analysis_reports import report_bidirectional

    mod, marker = evil
    rec = _record(tmp_path / "syn", f"poisson:base=callable:fn={mod}:f", kind="synthesize")
    with pytest.raises(UntrustedCodeError, match="--trust"):
        report_bidirectional(records=[rec], out=tmp_path / "a")
    assert not marker.exists()

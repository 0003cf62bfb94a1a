"""Bad input gets one clear error line (CLI exit code 2), never a traceback."""
from __future__ import annotations

import pytest
import torch

from actmax.core.contracts import ContractError
from actmax.core.errors import RecordError
from actmax.core.registry import generators, scorers
from tests.conftest import run_cli


def _one_error_line(res, *fragments):
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in res.stderr


def test_unknown_part_name(tmp_path):
    res = run_cli("evolve", "-g", "pixle", "--out", str(tmp_path / "r"), "--no-progress")
    _one_error_line(res, "unknown generator 'pixle'", "pixel")


def test_unknown_scorer_and_optimizer(tmp_path):
    _one_error_line(run_cli("evolve", "-s", "modle", "--out", str(tmp_path / "a")), "unknown scorer 'modle'")
    _one_error_line(run_cli("evolve", "-o", "cmaes", "--out", str(tmp_path / "b")), "unknown optimizer 'cmaes'")


def test_bad_key_value_options(tmp_path):
    _one_error_line(run_cli("evolve", "-g", "gabor:patchez=2", "--out", str(tmp_path / "a")),
                    "no option 'patchez'", "patches")
    _one_error_line(run_cli("evolve", "-g", "gabor:patches", "--out", str(tmp_path / "b")), "expected key=value")
    _one_error_line(run_cli("synthesize", "--units", "0,x", "--out", str(tmp_path / "c")), "list of integers")


def test_bad_values_and_units(tmp_path):
    _one_error_line(run_cli("evolve", "-s", "model:n=2", "--unit", "5", "--out", str(tmp_path / "a")),
                    "unit 5 out of range")
    _one_error_line(run_cli("evolve", "--pole", "up", "--out", str(tmp_path / "b")), "pole must be")
    _one_error_line(run_cli("synthesize", "-s", "callable:fn=math:sqrt", "--out", str(tmp_path / "c")),
                    "not differentiable")


def test_wrong_image_shapes():
    m = scorers.create("model:n=2,size=16")
    with pytest.raises(ContractError, match=r"expected shape \(B, C, H, W\), got \(1, 16, 16\)"):
        m(torch.rand(1, 16, 16))
    with pytest.raises(ContractError, match="expected 1 or 3 channels"):
        m(torch.rand(2, 4, 16, 16))
    with pytest.raises(ContractError, match=r"values must lie in \[0, 1\]"):
        m(torch.rand(2, 1, 16, 16) * 3)
    with pytest.raises(ContractError, match="contains NaN"):
        m(torch.full((1, 1, 16, 16), float("nan")))
    with pytest.raises(ContractError, match="float tensor"):
        m(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))
    g = generators.create("pixel:size=8")
    with pytest.raises(ContractError, match=r"expected shape \(n, 64\), got \(2, 63\)"):
        g(torch.zeros(2, 63))


def test_corrupt_and_missing_checkpoints(tmp_path):
    res = run_cli("evolve", "-g", "gabor:size=16", "-s", "model:n=1,size=16", "-o", "cma:popsize=6",
                  "--generations", "2", "--out", str(tmp_path / "run"), "--no-progress")
    assert res.returncode == 0, res.stderr
    ckpt = tmp_path / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    # a finished run is re-verified on resume: the checkpoint no longer matches the manifest's sha256
    _one_error_line(run_cli("resume", str(tmp_path / "run")), "checkpoint.pt is missing or corrupt", "--repair")
    ckpt.write_bytes(b"not a checkpoint at all")
    _one_error_line(run_cli("resume", str(tmp_path / "run")), "checkpoint.pt is missing or corrupt")
    _one_error_line(run_cli("resume", "--repair", str(tmp_path / "run")), "corrupt, truncated")
    _one_error_line(run_cli("resume", str(tmp_path / "nothing")), "manifest.json is missing")
    (tmp_path / "run" / "manifest.json").write_text("{broken")
    _one_error_line(run_cli("resume", str(tmp_path / "run")), "is corrupt")


def test_pickled_checkpoint_is_refused(tmp_path):
    import pickle
    from actmax.core.records import load_checkpoint_file

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"version": 1, "x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(RecordError, match="corrupt, truncated or not an actmax checkpoint"):
        load_checkpoint_file(path)


def test_existing_record_is_not_overwritten(tmp_path):
    args = ["evolve", "-g", "gabor:size=16", "-s", "model:n=1,size=16", "-o", "cma:popsize=6",
            "--generations", "1", "--out", str(tmp_path / "run"), "--no-progress"]
    assert run_cli(*args).returncode == 0
    _one_error_line(run_cli(*args), "already holds a run record", "actmax resume")

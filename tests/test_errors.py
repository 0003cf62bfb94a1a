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


# -- every bad input the adversarial review found: one error line, exit 2, nothing coerced ---------
EVOLVE_SMALL = ["evolve", "-s", "model:n=1,size=16", "--generations", "1", "--no-progress"]


def test_out_naming_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    _one_error_line(run_cli(*EVOLVE_SMALL, "-g", "gabor:size=16", "--out", str(f)), "is a file")
    _one_error_line(run_cli("synthesize", "-g", "pixel:size=16", "-s", "model:n=1,size=16", "--out", str(f)),
                    "is a file")


def test_devices(tmp_path):
    _one_error_line(run_cli(*EVOLVE_SMALL, "--device", "banana", "--out", str(tmp_path / "a")), "unknown device 'banana'")
    if not torch.cuda.is_available():
        _one_error_line(run_cli(*EVOLVE_SMALL, "--device", "cuda", "--out", str(tmp_path / "b")),
                        "no CUDA GPU is available")
    from actmax.core.evolve import check_device
    with pytest.raises(ValueError, match="not supported"):
        check_device("meta")


@pytest.mark.parametrize("args, message", [
    (["-g", "fourier:size=0"], "fourier: size must be an integer >= 1"),
    (["-g", "gabor:patches=0"], "gabor: patches must be an integer >= 1"),
    (["-g", "gabor:size=16", "-o", "cma:popsize=0"], "cma: popsize must be an integer >= 2"),
    (["-g", "gabor:size=16", "-o", "cma:popsize=4.5"], "cma: popsize must be an integer >= 2"),
    (["-g", "gabor:size=16", "-s", "callable:fn=tests.helpers.bad_scorers:raises"],
     "raised RuntimeError: bug in the lab's scoring code"),
])
def test_bad_part_values(tmp_path, args, message):
    base = [a for a in EVOLVE_SMALL if a not in ("-s", "model:n=1,size=16")] if "-s" in args else EVOLVE_SMALL
    _one_error_line(run_cli(*base, *args, "--out", str(tmp_path / "r")), message)


def test_screen_size_zero(tmp_path):
    import numpy as np
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8), dtype=np.uint8))
    _one_error_line(run_cli("screen", str(tmp_path / "x.npy"), "-s", "model:n=1,size=8", "--size", "0",
                            "--out", str(tmp_path / "s")), "--size must be >= 1")


def test_campaign_negative_seed_count(tmp_path):
    spec = tmp_path / "c.json"
    spec.write_text('{"scorer": "model:n=1,size=16", "spaces": ["gabor:size=16"], "optimizers": ["cma:popsize=4"],'
                    ' "seeds": -1}')
    _one_error_line(run_cli("campaign", str(spec), "--out", str(tmp_path / "c")), "seeds (a count) must be >= 1")


def test_api_counts_and_optimizer_lists_are_not_coerced(tmp_path):
    from actmax.core.evolve import evolve
    from actmax.core.synthesize import synthesize

    with pytest.raises(ValueError, match="3 optimizers for 2 generator spaces"):
        evolve(["gabor:size=16", "fourier:size=16"], "model:n=1,size=16", ["cma:popsize=4"] * 3, generations=1)
    with pytest.raises(ValueError, match="generations must be an integer"):
        evolve("gabor:size=16", "model:n=1,size=16", "cma:popsize=4", generations=2.5)
    with pytest.raises(ValueError, match="unit must be an integer"):
        evolve("gabor:size=16", "model:n=2,size=16", "cma:popsize=4", unit=1.5, generations=1)
    with pytest.raises(ValueError, match="unit must be an integer"):
        synthesize("pixel:size=16", "model:n=2,size=16", units=[0.5], ascent="ascent:steps=1")


def test_synthesize_rejects_non_finite_responses(tmp_path):
    res = run_cli("synthesize", "-g", "pixel:size=16", "-s",
                  "callable:fn=tests.helpers.bad_scorers:nan_half,units=3,differentiable=True", "--units", "0,1",
                  "--ascent", "ascent:steps=3,contrast=0.1", "--out", str(tmp_path / "s"), "--no-progress")
    _one_error_line(res, "non-finite responses")
    from actmax.core.records import RunRecord
    assert RunRecord(tmp_path / "s").manifest()["status"] == "running"   # never a finished record of NaN


def test_rig_timeout_in_evolve_and_resume(tmp_path):
    import json
    import threading
    import time as _time

    from actmax.core.evolve import evolve
    from actmax.scorers.rig import RigTimeoutError, atomic_write

    ex = tmp_path / "ex"
    spec = f"rig:exchange={ex},n_channels=1,timeout=0.3,poll=0.01,retries=0,settle=0.01"
    _one_error_line(run_cli("evolve", "-g", "gabor:size=16", "-s", spec, "-o", "cma:popsize=4", "--generations",
                            "1", "--out", str(tmp_path / "a"), "--no-progress"), "no usable responses")

    def answer_first_block() -> None:   # the rig answers generation 0, then falls silent
        folder = ex / "block_0002"
        deadline = _time.monotonic() + 60
        while not (folder / "manifest.json").is_file() and _time.monotonic() < deadline:
            _time.sleep(0.01)
        ids = [e["id"] for e in json.loads((folder / "manifest.json").read_text())["images"]]
        atomic_write(folder / "responses.json", json.dumps({"block": 2, "responses": {i: 1.0 for i in ids}}))

    t = threading.Thread(target=answer_first_block, daemon=True)
    t.start()
    with pytest.raises(RigTimeoutError):
        evolve("gabor:size=16", spec, "cma:popsize=4", generations=3, out_dir=tmp_path / "b", image_every=0)
    t.join()
    _one_error_line(run_cli("resume", str(tmp_path / "b"), "--no-progress"), "no usable responses")


def test_record_files_follow_the_umask(tmp_path):
    code = ("import os; os.umask(0o002)\n"
            "from actmax.core.evolve import evolve\n"
            f"evolve('gabor:size=16', 'model:n=1,size=16', 'cma:popsize=4', generations=1, out_dir={str(tmp_path / 'r')!r})\n")
    import subprocess
    import sys
    from tests.conftest import REPO
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name in ("manifest.json", "scores.parquet", "checkpoint.pt", "codes.safetensors", "best.png"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o664, name

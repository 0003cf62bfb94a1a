"""Every bad input is one `error:` line and exit 2, with nothing written outside the out folder."""
from __future__ import annotations

import errno
import os

import pytest

from actmax.core.cli import main

EV = ["evolve", "-g", "gabor:size=8", "-s", "model:n=1,size=8", "--generations", "1", "--no-progress"]
SYN = ["synthesize", "-g", "pixel:size=8", "-s", "model:n=2,size=8", "--ascent", "ascent:steps=1", "--no-progress"]


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (EV + ["--out", ""], "empty argument"),
    (EV + ["--out=", ""], "empty"),
    (SYN + ["--out", "o", "--units", ""], "empty argument"),
    (SYN + ["--out", "o", "--units", ","], "--units is empty"),
    (SYN + ["--out", "o", "--seeds", ","], "--seeds is empty"),
    (EV + ["--out", "o", "-o", "cma:sigma0=0"], "sigma0 must be a positive number"),
    (EV + ["--out", "o", "-o", "cma:sigma0=-1"], "sigma0 must be a positive number"),
    (EV + ["--out", "o", "-o", "genetic:popsize=7.5"], "popsize must be a whole number"),
    (EV + ["--out", "o", "--image-every", "-1"], "image_every must be a whole number >= 0"),
    (["evolve", "-g", "fourier:size=1000000000", "-s", "model:n=1,size=8", "--out", "o"], "ACTMAX_MEMORY_CHECK=0"),
    (["evolve", "-g", "gabor:size=8", "-s", "model:n=1000000000000", "--out", "o"], "ACTMAX_MEMORY_CHECK=0"),
])
def test_bad_input_is_one_error_line_and_exit_2_writing_nothing(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], err
    assert list(tmp_path.iterdir()) == []          # not even the out folder


def test_full_or_read_only_disk_is_one_line_with_the_path_and_free_space(tmp_path, monkeypatch, capsys):
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "mkstemp", full)
    code, err = _run(EV + ["--out", str(tmp_path / "run")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert str(tmp_path / "run" / "manifest.json") in err and "No space left" in err and "free on that disk" in err


def test_synthesize_help_offers_only_valid_poles(capsys):
    try:
        main(["synthesize", "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "high,low for both" in out and "(LEI) or both" not in out

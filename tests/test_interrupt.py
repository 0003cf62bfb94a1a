"""Ctrl-C says where the run stopped and how to continue; a run that fails before its first
checkpoint leaves a folder that the same command runs again."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO


def test_ctrl_c_names_the_generation_and_the_resume_command(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "actmax.core.cli", "evolve", "-g", "gabor:size=16", "--generations", "500",
           "-s", "callable:fn=tests.helpers.slow_neurons:slow,units=3", "-o", "cma:popsize=4",
           "--image-every", "0", "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_NEURONS_DELAY": "0.05"}
    # A shell delivers Ctrl-C to a process whose SIGINT is at its default; pytest-xdist workers
    # ignore SIGINT and a child would inherit that, so the child starts with the default here.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted at generation ") and f"continue with `actmax resume {out}`" in line, err
    from actmax.core.records import RunRecord
    n = int(line.split("generation ")[1].split(";")[0])
    assert n >= 1 and RunRecord(out).load_checkpoint()["meta"]["step"] == n


def test_failure_before_the_first_checkpoint_leaves_a_folder_the_same_command_runs_again(tmp_path, capsys):
    from actmax.core.cli import main
    from actmax.core.interrupts import interrupt_message

    argv = ["evolve", "-g", "gabor:size=8", "-s", "callable:fn=tests.helpers.bad_scorers:raises,units=1",
            "--generations", "2", "--image-every", "0", "--out", str(tmp_path / "r"), "--no-progress"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and (tmp_path / "r" / "manifest.json").exists()
    assert "before the first checkpoint" in interrupt_message()
    ok = [a.replace("callable:fn=tests.helpers.bad_scorers:raises,units=1", "model:n=1,size=8") for a in argv]
    main(ok)                                              # the same folder, no --overwrite needed
    assert "best score" in capsys.readouterr().out

"""One writer per record folder: an exclusive lock held for the run's life, released on any exit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from actmax.core.errors import RecordError
from actmax.core.records import LOCK, RecordLock, RunRecord
from tests.conftest import REPO

ARGS = ["evolve", "-g", "gabor:size=16", "-s", "callable:fn=tests.helpers.slow_neurons:slow,units=3",
        "-o", "cma:popsize=6", "--unit", "1", "--generations", "12", "--seed", "5", "--no-progress",
        "--image-every", "0"]


def _start(out, delay: str = "0.25") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_NEURONS_DELAY": delay}
    return subprocess.Popen([sys.executable, "-m", "actmax.core.cli", *ARGS, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_on_one_record_folder_exactly_one_runs(tmp_path):
    out = tmp_path / "run"
    procs = [_start(out), _start(out)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    lines = [ln for ln in loser.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), loser
    # normally the loser finds the folder locked and is told who holds it; if it started only after
    # the winner had finished, it finds a finished record instead: either way it did not write
    assert "is in use by pid" in lines[0] or "already holds a run record" in lines[0], lines[0]
    if "is in use by pid" in lines[0]:
        assert "on host" in lines[0]
    m = RunRecord(out).manifest(verify=True)
    assert m["status"] == "finished" and m["evaluations"] == 12 * 6
    assert len(RunRecord(out).scores()) == 12 * 6


def test_second_writer_while_running_is_refused_and_a_dead_holder_frees_the_lock(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, delay="1.5")   # 18 s of run: long enough for two more CLI calls
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    from tests.conftest import run_cli
    res = run_cli("resume", "--trust", str(out), "--no-progress")
    assert res.returncode == 2 and f"in use by pid {proc.pid}" in res.stderr, res.stderr
    res = run_cli(*ARGS, "--out", str(out), "--overwrite")      # --overwrite cannot take a running record over
    assert res.returncode == 2 and "in use by pid" in res.stderr, res.stderr
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (out / LOCK).exists()                                  # the stale lock file stays, the lock does not
    res = run_cli("resume", "--trust", str(out), "--no-progress", env={"SLOW_NEURONS_DELAY": "0"})
    assert res.returncode == 0, res.stderr
    assert RunRecord(out).manifest()["status"] == "finished"


def test_lock_is_reentrant_in_one_process_and_released_on_close(tmp_path):
    a = RecordLock(tmp_path).acquire()
    b = RecordLock(tmp_path).acquire()       # the same process (e.g. a campaign cell, then its run)
    b.release()
    code = ("import sys; from actmax.core.records import RecordLock; from actmax.core.errors import RecordError\n"
            f"try:\n    RecordLock({str(tmp_path)!r}).acquire()\nexcept RecordError as e:\n    print(e); sys.exit(3)\n")
    held = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert held.returncode == 3 and f"pid {os.getpid()}" in held.stdout
    a.release()
    free = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert free.returncode == 0, free.stdout + free.stderr


def test_out_naming_a_file_is_a_record_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RecordError, match="is a file"):
        RecordLock(f).acquire()

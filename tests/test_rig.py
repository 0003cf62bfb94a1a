"""Rig scorer: exchange-folder protocol, validation policy, and a full evolution against a
reference responder running as a separate process (with a late and malformed blocks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actmax.core.evolve import evolve
from actmax.core.registry import scorers
from actmax.scorers.rig_responder import READY
from actmax.scorers.rig import (ABANDONED, ACCEPTED, MANIFEST, REJECTED, RigResponseError, RigScorer, RigTimeoutError,
                         atomic_write, block_name, parse_responses, read_png)

REPO = Path(__file__).resolve().parents[1]


def _answer_in_thread(exchange: Path, block: int, text: str, name: str = "responses.json",
                      delay: float = 0.05) -> threading.Thread:
    def run() -> None:
        folder = exchange / block_name(block)
        deadline = time.monotonic() + 10
        while not (folder / MANIFEST).is_file() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        atomic_write(folder / name, text)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_block_layout_png_roundtrip_and_csv_repeats_are_averaged(tmp_path):
    rig = RigScorer(tmp_path, n_channels=2, timeout=5, poll=0.01, settle=0.01)
    imgs = _images(3)
    t = _answer_in_thread(tmp_path, 1, "image_id,a,b\nb0001_i000,1,10\nb0001_i001,2,20\nb0001_i002,3,30\n"
                          "b0001_i000,3,30\n", name="responses.csv")
    out = rig(imgs)
    t.join()
    assert out.tolist() == [[2.0, 20.0], [2.0, 20.0], [3.0, 30.0]]
    manifest = json.loads((tmp_path / "block_0001" / MANIFEST).read_text())
    assert manifest["protocol"] == "actmax-rig/1" and manifest["block"] == 1 and manifest["n_channels"] == 2
    assert [e["id"] for e in manifest["images"]] == ["b0001_i000", "b0001_i001", "b0001_i002"]
    back = read_png(tmp_path / "block_0001" / manifest["images"][1]["file"])
    assert back.shape == (1, 8, 8)
    assert np.abs(back - imgs[1].numpy()).max() <= 0.5 / 255 + 1e-6      # 8-bit quantisation only
    assert (tmp_path / "block_0001" / ACCEPTED).is_file()
    assert [e.event for e in rig.events] == ["accepted"]
    # a second scorer on the same folder continues the numbering instead of overwriting
    assert RigScorer(tmp_path, n_channels=2).write_block(imgs.numpy())[0] == 2


def test_channel_selection_and_json_list_form(tmp_path):
    rig = RigScorer(tmp_path, n_channels=3, channels=[2, 0], timeout=5, poll=0.01, settle=0.01)
    text = json.dumps({"block": 1, "ids": ["b0001_i000", "b0001_i001"], "responses": [[1, 2, 3], [4, 5, 6]]})
    t = _answer_in_thread(tmp_path, 1, text)
    assert rig(_images(2)).tolist() == [[3.0, 1.0], [6.0, 4.0]]
    t.join()
    assert rig.units == 2 and rig.unit_names == ["channel2", "channel0"]


def test_policy_late_block_is_abandoned_and_reshown(tmp_path):
    rig = RigScorer(tmp_path, n_channels=1, timeout=0.4, poll=0.01, retries=1, settle=0.01)
    # block 1 gets no answer in time; block 2 (the re-show) is answered
    t = _answer_in_thread(tmp_path, 2, json.dumps({"block": 2, "responses": {"b0002_i000": 5, "b0002_i001": 6}}))
    assert rig(_images(2)).tolist() == [[5.0], [6.0]]
    t.join()
    assert (tmp_path / "block_0001" / ABANDONED).is_file()
    assert json.loads((tmp_path / "block_0002" / MANIFEST).read_text())["reissue_of"] == 1
    assert [e.event for e in rig.events] == ["timeout", "accepted"]
    log = [json.loads(line) for line in (tmp_path / "rig_log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log] == ["timeout", "accepted"]


def test_policy_nan_and_missing_ids_reshow_only_those_images(tmp_path):
    rig = RigScorer(tmp_path, n_channels=1, timeout=5, poll=0.01, retries=2, settle=0.01)
    t1 = _answer_in_thread(tmp_path, 1, json.dumps(
        {"block": 1, "responses": {"b0001_i000": [None], "b0001_i001": [7.0]}}))   # i002 missing, i000 NaN
    t2 = _answer_in_thread(tmp_path, 2, json.dumps({"block": 2, "responses": {"b0002_i000": 1.5, "b0002_i001": 2.5}}))
    out = rig(_images(3))
    t1.join(), t2.join()
    assert out.tolist() == [[1.5], [7.0], [2.5]]
    second = json.loads((tmp_path / "block_0002" / MANIFEST).read_text())
    assert len(second["images"]) == 2 and second["reissue_of"] == 1
    assert [e.event for e in rig.events] == ["partial", "accepted"]
    assert "missing" in rig.events[0].reason and "NaN" in rig.events[0].reason


@pytest.mark.parametrize("text, expected", [
    ("{ not json", "not valid JSON"),
    (json.dumps({"block": 1, "responses": {"b0001_i000": [1, 2]}}), "wrong channel count"),
    (json.dumps({"block": 1, "responses": {"b0001_i000": 1, "zzz": 2}}), "unknown image id"),
    (json.dumps({"block": 9, "responses": {"b0001_i000": 1}}), "not block 1"),
])
def test_policy_malformed_block_is_rejected_then_error_when_retries_run_out(tmp_path, text, expected):
    rig = RigScorer(tmp_path, n_channels=1, timeout=5, poll=0.01, retries=0, settle=0.01)
    t = _answer_in_thread(tmp_path, 1, text)
    with pytest.raises(RigResponseError, match=expected):
        rig(_images(1))
    t.join()
    assert expected.split()[0] in json.loads((tmp_path / "block_0001" / REJECTED).read_text())["reason"]


def test_timeout_error_names_the_blocks(tmp_path):
    rig = RigScorer(tmp_path, n_channels=1, timeout=0.15, poll=0.01, retries=1, settle=0.01)
    with pytest.raises(RigTimeoutError, match=r"block 1: timeout.*block 2: timeout"):
        rig(_images(1))
    assert (tmp_path / "block_0001" / ABANDONED).is_file() and (tmp_path / "block_0002" / ABANDONED).is_file()


def test_bad_options_and_csv_parse_errors(tmp_path):
    with pytest.raises(ValueError, match="n_channels"):
        RigScorer(tmp_path)
    with pytest.raises(ValueError, match="do not fit"):
        RigScorer(tmp_path, n_channels=2, channels=[2])
    p = tmp_path / "responses.csv"
    p.write_text("name,a\nx,1\n")
    with pytest.raises(Exception, match="image_id"):
        parse_responses(p)
    assert scorers.create(f"rig:exchange={tmp_path},n_channels=4,channels=[1,3]").units == 2
    assert not RigScorer(tmp_path, n_channels=1).differentiable


def test_full_evolution_against_reference_responder_process(tmp_path):
    """evolve() drives a model neuron through the exchange folder; the responder runs as its own
    process, answers block 2 late and blocks 4 and 6 malformed; the documented policy follows."""
    exchange = tmp_path / "exchange"
    neuron = "model:kind=simple,n=1,size=32,seed=3"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "actmax.scorers.rig_responder", "--exchange", str(exchange), "--model", neuron,
           "--late", "2:2.5", "--malformed", "4:channels", "--malformed", "6:missing", "--idle-exit", "60",
           "--poll", "0.02"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (exchange / READY).is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.05)
        spec = f"rig:exchange={exchange},n_channels=1,timeout=1.5,poll=0.02,retries=2,settle=0.05"
        rig = scorers.create(spec)
        res = evolve("gabor:size=32", rig, "cma:popsize=6", unit=0, generations=6, seed=0)
        rig.stop_responder()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert res.evaluations == 36 and np.isfinite(res.scores["score"]).all()
    events = [(e.block, e.event) for e in rig.events]
    # 6 generations -> 6 accepted blocks plus 1 abandoned (late), 1 rejected (channels), 1 partial (missing)
    assert [ev for _, ev in events].count("accepted") == 6
    assert events[1] == (2, "timeout") and (exchange / "block_0002" / ABANDONED).is_file()
    assert events[3][1] == "rejected" and "wrong channel count" in rig.events[3].reason
    assert (exchange / block_name(events[3][0]) / REJECTED).is_file()
    assert events[5][1] == "partial" and "missing" in rig.events[5].reason
    reshow = json.loads((exchange / block_name(events[5][0] + 1) / MANIFEST).read_text())
    assert len(reshow["images"]) == 1 and reshow["reissue_of"] == events[5][0]
    # the late answer did arrive afterwards, and was ignored
    assert (exchange / "block_0002" / "responses.json").is_file()
    # every score is the model neuron's response to the 8-bit image actmax wrote
    model = scorers.create(neuron)
    first = exchange / "block_0001"
    manifest = json.loads((first / MANIFEST).read_text())
    imgs = torch.from_numpy(np.stack([read_png(first / e["file"]) for e in manifest["images"]]))
    expected = model(imgs)[:, 0].double().numpy()
    got = res.scores[res.scores["generation"] == 0].sort_values("index")["score"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert res.best_score == pytest.approx(res.scores["score"].max())


# -- a hostile exchange folder: symlinks are refused, never followed -----------------------------
def test_symlinked_log_is_refused_and_the_target_is_untouched(tmp_path):
    from actmax.scorers.rig import RigExchangeError

    exchange, outside = tmp_path / "ex", tmp_path / "outside.txt"
    exchange.mkdir()
    outside.write_text("precious\n")
    (exchange / "rig_log.jsonl").symlink_to(outside)
    rig = RigScorer(exchange, n_channels=1, timeout=5, poll=0.01, settle=0.01)
    t = _answer_in_thread(exchange, 1, json.dumps({"block": 1, "responses": {"b0001_i000": 1.0}}))
    with pytest.raises(RigExchangeError, match="symbolic link"):
        rig(_images(1))
    t.join()
    assert outside.read_text() == "precious\n"


def test_symlinked_responses_file_is_rejected_without_copying_its_contents(tmp_path):
    exchange, secret = tmp_path / "ex", tmp_path / "secret.csv"
    exchange.mkdir()
    secret.write_text("image_id,ch0\nTOP-SECRET,1\n")

    def plant() -> None:
        folder = exchange / block_name(1)
        while not (folder / MANIFEST).is_file():
            time.sleep(0.01)
        (folder / "responses.csv").symlink_to(secret)

    t = threading.Thread(target=plant, daemon=True)
    t.start()
    rig = RigScorer(exchange, n_channels=1, timeout=5, poll=0.01, retries=0, settle=0.01)
    with pytest.raises(RigResponseError, match="symbolic link"):
        rig(_images(1))
    t.join()
    rejected = (exchange / "block_0001" / REJECTED).read_text()
    assert "symbolic link" in rejected and "TOP-SECRET" not in rejected


def test_swapped_block_folder_is_not_written_through(tmp_path):
    from actmax.scorers.rig import RigExchangeError

    exchange, elsewhere = tmp_path / "ex", tmp_path / "elsewhere"
    exchange.mkdir()
    elsewhere.mkdir()

    def swap() -> None:
        folder = exchange / block_name(1)
        while not (folder / MANIFEST).is_file():
            time.sleep(0.01)
        folder.rename(exchange / "moved")
        folder.symlink_to(elsewhere, target_is_directory=True)

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    rig = RigScorer(exchange, n_channels=1, timeout=0.5, poll=0.01, retries=1, settle=0.01)
    with pytest.raises(RigExchangeError, match="symlink"):
        rig(_images(1))
    t.join()
    assert list(elsewhere.iterdir()) == []      # no marker, no response read, nothing written there
    # and a new scorer never reuses the symlinked block name
    assert RigScorer(exchange, n_channels=1).write_block(_images(1).numpy())[0] == 2


def test_oversized_responses_file_is_rejected(tmp_path):
    rig = RigScorer(tmp_path, n_channels=1, timeout=5, poll=0.01, retries=0, settle=0.01, max_response_bytes=64)
    t = _answer_in_thread(tmp_path, 1, json.dumps({"block": 1, "responses": {"b0001_i000": 1.0}, "pad": "x" * 200}))
    with pytest.raises(RigResponseError, match="too large"):
        rig(_images(1))
    t.join()


def test_responder_refuses_image_paths_outside_the_block_and_symlinked_blocks(tmp_path):
    from actmax.scorers.rig_responder import Responder

    exchange, outside = tmp_path / "ex", tmp_path / "outside"
    exchange.mkdir()
    outside.mkdir()
    (outside / MANIFEST).write_text(json.dumps({"images": [{"id": "a", "file": "a.png"}]}))
    (exchange / "block_0001").symlink_to(outside, target_is_directory=True)
    bad = exchange / "block_0002"
    bad.mkdir()
    (bad / MANIFEST).write_text(json.dumps({"images": [{"id": "a", "file": "../../outside/a.png"}]}))
    responder = Responder(exchange, scorers.create("model:n=1,size=8"), log=False)
    blocks = responder.new_blocks()
    assert [b for b, _ in blocks] == [2]          # the symlinked block is never entered
    responder.answer(*blocks[0])
    assert not any(bad.glob("responses.*")) and list(outside.iterdir()) == [outside / MANIFEST]


@pytest.mark.parametrize("name, text, expected", [
    ("responses.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("responses.csv", "image_id,ch0\n\"" + "x" * 200_000 + "\",1\n", "not a readable CSV"),
])
def test_deep_json_and_huge_csv_field_are_rejected_and_the_block_shown_again(tmp_path, name, text, expected):
    rig = RigScorer(tmp_path, n_channels=1, timeout=5, poll=0.01, retries=1, settle=0.01)
    t1 = _answer_in_thread(tmp_path, 1, text, name=name)
    t2 = _answer_in_thread(tmp_path, 2, json.dumps({"block": 2, "responses": {"b0002_i000": 3.0}}))
    assert rig(_images(1)).tolist() == [[3.0]]        # rejected, shown again, answered
    t1.join(), t2.join()
    assert expected in json.loads((tmp_path / "block_0001" / REJECTED).read_text())["reason"]
    assert [e.event for e in rig.events] == ["rejected", "accepted"]


def test_hard_linked_or_hostile_files_never_echo_their_content(tmp_path):
    exchange, secret = tmp_path / "ex", tmp_path / "secret.txt"
    exchange.mkdir()
    secret.write_text("image_id,ch0\nTOP-SECRET-ID,1\n")

    def plant() -> None:
        folder = exchange / block_name(1)
        while not (folder / MANIFEST).is_file():
            time.sleep(0.01)
        os.link(secret, folder / "responses.csv")

    t = threading.Thread(target=plant, daemon=True)
    t.start()
    # hostile content in a file of its own: a header, an id and a block number that carry the secret
    t2 = _answer_in_thread(exchange, 2, "TOP-SECRET-HEADER,ch0\nx,1\n", name="responses.csv")
    t3 = _answer_in_thread(exchange, 3, json.dumps({"block": "TOP-SECRET-BLOCK", "responses": {}}))
    rig = RigScorer(exchange, n_channels=1, timeout=5, poll=0.01, retries=2, settle=0.01)
    with pytest.raises(RigResponseError, match="hard link"):
        rig(_images(1))
    t.join(), t2.join(), t3.join()
    logs = [(exchange / f"block_000{b}" / REJECTED).read_text() for b in (1, 2, 3)]
    logs.append((exchange / "rig_log.jsonl").read_text())
    assert not any("TOP-SECRET" in text for text in logs), logs
    assert "hard links" in logs[0]

"""Analyze guards: no mixing of scorers in `analyze bidirectional`; one clear line for missing LPIPS weights."""
from __future__ import annotations

import logging

import pytest

from actmax.core.apps.analysis_reports import check_same_scorer, report_bidirectional
from actmax.core.synthesize import synthesize
from tests.conftest import run_cli

A, B = "model:kind=dual,n=2,size=32,seed=1", "model:kind=dual,n=2,size=32,seed=2"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    for name, spec in (("a", A), ("a2", A), ("b", B)):
        synthesize("pixel:size=32", spec, poles=("high", "low"), ascent="ascent:steps=5", out_dir=root / name)
    return root


def test_bidirectional_refuses_records_of_different_scorers(records, tmp_path):
    with pytest.raises(ValueError, match="different scorers") as exc:
        report_bidirectional(None, records=[records / "a", records / "b"], out=tmp_path)
    assert "seed=1" in str(exc.value) and "seed=2" in str(exc.value)  # names both
    assert not (tmp_path / "bidirectional.csv").exists()


def test_bidirectional_takes_the_records_scorer_and_warns_on_a_different_one(records, tmp_path, caplog):
    from actmax.core.registry import spec_text

    assert check_same_scorer([records / "a", records / "a2"]) == spec_text(A)
    table = report_bidirectional(None, records=[records / "a", records / "a2"], out=tmp_path)
    assert len(table) == 2 and (table["minimum"] <= table["baseline"]).all()
    with caplog.at_level(logging.WARNING):
        assert check_same_scorer([records / "a"], B) == B
    assert "seed=2" in caplog.text and "seed=1" in caplog.text


def test_cli_bidirectional_mixed_scorers_is_one_error_line(records, tmp_path):
    res = run_cli("analyze", "bidirectional", str(records / "a"), str(records / "b"), "--out", str(tmp_path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: records were made with different scorers"), res.stderr


def test_cli_similarity_without_lpips_weights_names_file_and_flag(tmp_path, monkeypatch):
    pytest.importorskip("lpips")
    from actmax.core.apps.analysis import LPIPS_TRUNKS
    from actmax.core.weights import locate

    if locate(LPIPS_TRUNKS["alex"][0]) is not None:
        pytest.skip("the AlexNet trunk weights are present on this machine")
    import numpy as np
    from PIL import Image

    for i in range(2):   # plain image files (a record's PNG previews would be read as their native stimuli)
        Image.fromarray((np.random.default_rng(i).random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
    res = run_cli("analyze", "similarity", str(tmp_path / "im0.png"), str(tmp_path / "im1.png"),
                  "--out", str(tmp_path / "o"), env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "alexnet-owt-7be5be79.pth" in lines[0] and "--weights" in lines[0] and "LPIPSDistance(" not in lines[0]

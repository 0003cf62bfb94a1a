"""The README's main job: `actmax demo --json` meets the quality bars on the in-silico lab."""
from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_json_meets_quality_bars(tmp_path):
    res = run_cli("demo", "--out", str(tmp_path / "demo"), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    kinds = {r["kind"] for r in summary["table"]}
    assert kinds == {"simple", "complex", "dual"}
    for row in summary["table"]:
        assert row["correlation_with_optimum"] >= 0.9, row
        if row["pole"] == "high":
            assert row["fraction_of_optimum"] >= 0.95, row
        else:
            assert row["kind"] == "dual" and row["response"] < row["baseline"], row
    assert any(r["pole"] == "low" for r in summary["table"])
    ev = summary["evolution"]
    assert ev["evaluations"] <= 3000 and ev["fraction_of_gradient_mei"] >= 0.9, ev
    for pic in summary["pictures"]:
        assert (tmp_path / "demo" / pic.split("/demo/")[-1]).stat().st_size > 1000, pic

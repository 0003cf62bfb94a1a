"""The README's main job: `actmax demo --json` holds, per model-neuron kind, MEI/LEI against the known
optima, a paired clean/noisy evolution in >= 2 spaces and natural best/worst, on the default synthesis recipe."""
from __future__ import annotations

import json
import os
import resource
import time

import pytest

from tests.conftest import run_cli_subprocess as run_cli   # the demo's CPU time is measured as a child's


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    res = run_cli("demo", "--out", str(out), "--json")
    elapsed = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr  # no progress-bar noise when stderr is not a terminal
    stages = [line for line in res.stderr.splitlines() if line.startswith("demo [")]
    assert len(stages) == 11 and stages[-1].startswith("demo [11/11]")   # but one line per stage
    return json.loads(res.stdout), out, (elapsed, cpu)


@pytest.mark.slow
def test_demo_cost_and_one_progress_line_per_stage(demo):
    """The README states about 20 CPU-s (19-22 measured); a loaded machine inflates CPU time too (threads wait
    on each other), so the tight bound applies only when the machine is quiet."""
    _, _, (elapsed, cpu) = demo
    busy = os.getloadavg()[0] > 2.5  # the 2 cores are shared
    assert cpu < 45 or busy, f"demo used {cpu:.0f} CPU-s on a quiet machine (README: about 20)"
    assert cpu < 300, f"demo used {cpu:.0f} CPU-s"
    assert elapsed < 120 or busy, f"demo took {elapsed:.0f} s on an unloaded machine"


@pytest.mark.slow
def test_demo_mei_and_lei_against_known_optima_for_every_kind(demo):
    summary, _, _ = demo
    from actmax.core.apps.demo import DEMO_KINDS

    assert [u["kind"] for u in summary["units"]] == list(DEMO_KINDS)
    for u in summary["units"]:
        mei, lei = u["mei"], u["lei"]
        assert mei["fraction_of_optimum"] >= 0.95 and mei["correlation_with_optimum"] >= 0.9, u["kind"]
        assert mei["response"] <= u["optimum"] * 1.001  # nothing beats the known ceiling
        assert mei["note"] and lei["note"]
        assert 0 <= lei["gap_to_floor"] <= 0.02, u["kind"]  # the LEI reaches the floor
        assert lei["response"] >= u["floor"] - 1e-4 * u["optimum"]
        if lei["suppression_below_baseline"] is not None:  # units with a baseline above the floor
            assert lei["suppression_below_baseline"] >= 0.95
    by_kind = {u["kind"]: u for u in summary["units"]}
    assert by_kind["dual"]["sign_invariant"] and by_kind["complex"]["sign_invariant"]
    assert not by_kind["simple"]["sign_invariant"]
    assert not by_kind["complex"]["mei"]["optimum_unique"] and not by_kind["complex"]["lei"]["optimum_unique"]
    assert by_kind["dual"]["lei"]["correlation_with_optimum"] >= 0.9  # unique up to sign
    from actmax.core.synthesize import DEFAULT_RECIPE

    assert summary["config"]["gradient"]["ascent"] == DEFAULT_RECIPE   # what `actmax synthesize` makes


@pytest.mark.slow
def test_demo_paired_evolution_in_two_spaces_clean_and_noisy(demo):
    summary, _, _ = demo
    spaces = summary["config"]["evolution"]["spaces"]
    assert len(spaces) >= 2
    for u in summary["units"]:
        for cond in ("clean", "noisy"):
            ev = u["evolution"][cond]
            assert len(ev) == len(spaces)
            dims = {r["dimension"] for r in ev.values()}
            assert len(dims) == len(ev)  # spaces of different dimension
            for space, r in ev.items():
                assert r["evaluations"] == 3000
                # the reported image never beats the known optimum, and never falls far below the baseline
                assert r["clean_response"] <= u["optimum"] * 1.001
                assert r["clean_response"] >= 0.5 * u["baseline"] - 1e-6
                assert len(r["per_replicate"]) == r["replicates"]
        # the space that contains the optimum (8-d Gabor) finds it on the clean neuron, like the gradient
        assert u["evolution"]["clean"]["gabor"]["fraction_of_optimum"] >= 0.9
        assert u["evolution"]["clean"]["gabor"]["fraction_of_gradient_mei"] >= 0.9
    # noise costs: the noisy Gabor search is never better than the clean one, and on at least one kind it still works
    noisy = [u["evolution"]["noisy"]["gabor"]["fraction_of_optimum"] for u in summary["units"]]
    assert max(noisy) >= 0.8
    for u in summary["units"]:
        for r in u["evolution"]["noisy"]["gabor"]["per_replicate"]:
            assert r["best_observed"] > 0


@pytest.mark.slow
def test_demo_natural_baseline_and_pictures(demo):
    summary, out, _ = demo
    for u in summary["units"]:
        nat = u["natural"]
        assert nat["patches"] >= 500
        assert nat["worst"] <= nat["median"] <= nat["best"] <= u["optimum"]
        assert u["mei"]["response"] > nat["best"] and nat["mei_over_best_natural"] > 1
        assert u["lei"]["response"] <= nat["worst"] + 0.02 * u["optimum"]
    for name in summary["pictures"].values():
        assert (out / name).stat().st_size > 10_000, name
    readme = (out / "README.txt").read_text()
    for name in ("mei_lei.png", "natural_vs_mei.png", "evolution_<kind>.png", "actmax synthesize",
                 "actmax evolve", "actmax screen"):
        assert name in readme
    assert json.loads((out / "summary.json").read_text())["units"] == summary["units"]


def test_demo_table_fits_one_screen():
    from actmax.core.apps.demo import format_summary

    unit = {"unit": 0, "kind": "dual", "mei": {"fraction_of_optimum": 0.99, "sign_flipped": True},
            "lei": {"gap_to_floor": 0.001}, "natural": {"best": 14.5, "mei_over_best_natural": 2.2},
            "evolution": {c: {s: {"fraction_of_optimum": 0.5, "stuck_at_baseline": 1, "sign_flipped": False}
                              for s in ("gabor", "fourier")} for c in ("clean", "noisy")}}
    summary = {"units": [unit] * 4, "config": {"evolution": {"replicates": {"clean": 1, "noisy": 3}}},
               "spaces_skipped": [{"space": "deepsim", "missing": "deepsim-fc6", "how_to_add": "set X"}],
               "out": "demo_out", "elapsed_s": 40.0}
    text = format_summary(summary)
    assert len(text.splitlines()) <= 24 and "0.500*" in text and "dual (gradient MEI)" in text
    assert "skipped deepsim" in text
    assert "budget to success" in text and "gabor 360-880 images" in text   # measured, not guessed


def test_budget_notes_name_a_budget_or_say_none_measured_succeeds():
    from actmax.core.apps.demo import MEASURED_BUDGETS, SPACES, budget_note, parse_spec

    for spec in SPACES:
        assert parse_spec(spec)[0] in MEASURED_BUDGETS
    assert "clean 880 images" in budget_note("gabor", "simple")
    assert "not within 60000 images (best 0.62)" in budget_note("fourier", "simple")
    assert "not measured" in budget_note("deepsim", "simple")


def test_optional_spaces_are_skipped_with_how_to_add(monkeypatch, tmp_path):
    from actmax.core.apps import demo

    monkeypatch.setenv("ACTMAX_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr("actmax.core.weights.locate", lambda name, *a, **k: None)
    used, skipped = demo.available_spaces()
    assert [s for s, _ in used] == list(demo.SPACES)
    assert {s["space"] for s in skipped} == {"deepsim", "biggan"}
    assert all("ACTMAX_" in s["how_to_add"] for s in skipped)
    monkeypatch.setattr("actmax.core.weights.locate", lambda name, *a, **k: tmp_path / name)
    used, skipped = demo.available_spaces()
    assert not skipped and any(s.startswith("deepsim") for s, _ in used) and any(s.startswith("biggan") for s, _ in used)


def test_demo_adds_a_present_pretrained_space_to_the_comparison(monkeypatch, tmp_path):
    """With (here: stand-in, untrained) DeePSim weights 'present', DeePSim joins the paired evolution."""
    from actmax.core.apps import demo

    monkeypatch.setattr(demo, "OPTIONAL_SPACES", ((("deepsim-fc8",), "deepsim:variant=fc8,pretrained=False,size=64",
                                                  "cholesky_cma:popsize=6"),))
    monkeypatch.setattr("actmax.core.weights.locate", lambda name, *a, **k: tmp_path / name)
    monkeypatch.setattr(demo, "GENERATIONS", 2)
    monkeypatch.setattr(demo, "NATURAL_PATCHES", 40)
    monkeypatch.setattr(demo, "ASCENT", "ascent:steps=5")
    summary = demo.run_demo(tmp_path / "d", kinds=("dual",), replicates={"noisy": 1}, progress=False)
    assert summary["spaces_skipped"] == []
    ev = summary["units"][0]["evolution"]
    assert set(ev["clean"]) == set(ev["noisy"]) == {"gabor", "fourier", "deepsim"}
    assert ev["clean"]["deepsim"]["dimension"] == 1000 and ev["clean"]["deepsim"]["evaluations"] == 12
    assert (tmp_path / "d" / "evolution_dual.png").stat().st_size > 10_000
    assert "deepsim" in demo.format_summary(summary)

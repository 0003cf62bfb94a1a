"""Provenance belongs to the run: a manifest lists the weights of its own parts, nothing else the
process built (issue 19: a random AlexNet built earlier used to show up in a later synthesis)."""
from __future__ import annotations

import actmax
from actmax.core.records import RunRecord

CNN = "cnn:model=alexnet,layer=features.3,channels=[0,1],weights=random,seed=0,input_size=32"


def test_a_synthesis_after_building_an_unrelated_part_lists_only_its_own_weights(tmp_path):
    actmax.create("scorer", CNN)                     # an unrelated part, built first in this process
    actmax.synthesize("pixel:size=16", "model:n=2,size=16", units=[0], poles=("high",), ascent="ascent:steps=2",
                      out_dir=tmp_path / "syn")
    provenance = RunRecord(tmp_path / "syn").manifest()["provenance"]
    assert provenance["weights"] == []
    assert {(p["kind"], p["name"]) for p in provenance["parts"]} == {
        ("generator", "pixel"), ("scorer", "model"), ("optimizer", "ascent")}


def test_a_live_part_brings_its_weights_into_every_run_it_is_used_in(tmp_path):
    scorer = actmax.create("scorer", CNN)            # built outside any run: the registry keeps what it used
    for name in ("a", "b"):
        actmax.evolve("gabor:size=16", scorer, "cma:popsize=4", unit=1, generations=1, out_dir=tmp_path / name,
                      image_every=0, plots=False)
        [net] = RunRecord(tmp_path / name).manifest()["provenance"]["weights"]
        assert net["random"] and net["name"] == "torchvision-alexnet" and net["seed"] == 0
    actmax.evolve("gabor:size=16", "model:n=2,size=16", "cma:popsize=4", unit=1, generations=1,
                  out_dir=tmp_path / "c", image_every=0, plots=False)
    assert RunRecord(tmp_path / "c").manifest()["provenance"]["weights"] == []

"""Tutorial: compare generative spaces on one neuron, at equal budget.

A ground-truth model neuron (a complex cell, whose optimum is known) stands in for a recorded
one. Two weight-free spaces evolve side by side, each with its own CMA-ES, all images of a
generation scored together as a rig would; the comparison is per image shown.

    python docs/tutorials/compare_spaces.py OUT_DIR [GENERATIONS]
"""
import sys
from pathlib import Path

import actmax

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/compare_spaces")
generations = int(sys.argv[2]) if len(sys.argv) > 2 else 75

# 1. The neuron: one complex cell on 64 px images (any scorer spec works here: a twin, a CNN unit,
#    or `rig:exchange=/path` for a recorded neuron).
neuron = "model:kind=complex,n=1,size=64,seed=1"
optimum = float(actmax.create("scorer", neuron).optimal_response("high", [0])[0])

# 2. The spaces: 8-d Gabor patches and a 288-d Fourier spectrum, same optimizer settings each.
spaces = ["gabor:size=64", "fourier:size=16"]
result = actmax.evolve(spaces, neuron, "cma:popsize=20", unit=0, generations=generations,
                       out_dir=out, overwrite=True, progress=False, image_every=0)

# 3. Compare at equal budget: images shown per space and the best response in each.
traj = result.trajectory
print(f"images shown per space: {result.evaluations_per_space}")
for space in result.spaces:
    best = traj[traj["space"] == space]["best"].max()
    print(f"{space:>8}: best response {best:.3f} = {best / optimum:.2f} of the known optimum")
print(f"trajectory.png (response vs images shown) and best images in {out}")

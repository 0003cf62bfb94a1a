"""Tutorial: MEIs and LEIs from your recordings through a digital twin.

Recordings: images shown and the spike counts they evoked (here simulated from two model
complex cells, so the answer is known; with your data, load your arrays instead). A twin (conv
core + Gaussian readout) is fitted to them, and gradient synthesis then finds each neuron's most
and least exciting images on the twin.

    python docs/tutorials/twin_meis.py OUT_DIR [EPOCHS]
"""
import sys
from pathlib import Path

import actmax
from actmax.core.apps.closed_loop import natural_stimuli, noise_free_rates, simulate_trials
from actmax.scorers.twin.train import TrainOptions, train_twin

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/twin_meis")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
size = 16

# 1. Recordings: images (N, 1, 16, 16) in [0, 1] and counts (trials, images, neurons); NaN where an
#    image was not shown in a trial. Yours: images = np.load(...); counts = np.load(...).
neurons = actmax.create("scorer", f"model:kind=complex,n=2,size={size},seed=1")
images = natural_stimuli(540, size, seed=0, aperture=0.25, norm=2.0)
trials = [1] * 500 + [4] * 40                  # 40 test images repeated 4 times (the oracle set)
counts = simulate_trials(noise_free_rates(neurons, images), trials, window=20.0, seed=2)

# 2. The twin: a small core for 16 px images; the report holds held-out correlations.
twin = train_twin(images.numpy(), counts, out_dir=out / "twin",
                  architecture={"hidden_channels": 6, "layers": 2, "input_kernel": 5, "hidden_kernel": 3,
                                "image_size": size},
                  options=TrainOptions(max_epochs=epochs, lr=0.01))
print("held-out correlation per neuron:", [round(c, 2) for c in twin.report["test_correlation"]])

# 3. MEIs and LEIs of both neurons through the twin (the default synthesis recipe).
syn = actmax.synthesize(f"pixel:size={size}", f"twin:path={out / 'twin'}", units=[0, 1], poles=("high", "low"),
                        out_dir=out / "mei", overwrite=True, progress=False)
print(syn)

# 4. Check on the true neurons (only possible in silico): the MEI drives each neuron above the LEI.
import torch  # noqa: E402

with torch.no_grad():
    for u in (0, 1):
        r = neurons(torch.stack([syn.image(u, "high"), syn.image(u, "low")]))[:, u]
        print(f"neuron {u}: true response to its MEI {float(r[0]):.2f}, to its LEI {float(r[1]):.2f}")
print(f"montage of MEIs/LEIs: {out / 'mei' / 'images' / 'montage.png'}")

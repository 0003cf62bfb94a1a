"""DeePSim and BigGAN spaces with random weights: output convention, codes, and both spaces run
end to end through evolution (pycma) and gradient synthesis on a ground-truth model neuron."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actmax.core.contracts import check_images
from actmax.core.registry import generators
from actmax.generators.biggan import BigGANGenerator
from actmax.generators.deepsim import RGB_MEAN, DeePSimGenerator

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fc6() -> DeePSimGenerator:
    return DeePSimGenerator(pretrained=False)


@pytest.fixture(scope="module")
def tiny_biggan() -> BigGANGenerator:
    return BigGANGenerator(pretrained=False, config="tiny")


# -- DeePSim ------------------------------------------------------------------------------------
def test_deepsim_output_is_bgr_flipped_mean_added_and_clamped():
    gen = DeePSimGenerator(pretrained=False, variant="fc6")
    with torch.no_grad():
        gen.G.deconv0.weight.zero_()
        # raw output (B, G, R) constant per channel; RGB image = (raw[::-1] + mean) / 255
        gen.G.deconv0.bias.copy_(torch.tensor([51.0 - RGB_MEAN[2], 102.0 - RGB_MEAN[1], 204.0 - RGB_MEAN[0]]))
        img = gen(gen.init_codes(2, seed=0))
    assert img.shape == (2, 3, 256, 256)
    expected = torch.tensor([204.0, 102.0, 51.0]) / 255.0
    assert torch.allclose(img.mean(dim=(0, 2, 3)), expected, atol=1e-6)
    assert float(img.std(dim=(2, 3)).max()) < 1e-6
    with torch.no_grad():  # beyond 255 and below 0 the clamp keeps the [0, 1] contract
        gen.G.deconv0.bias.copy_(torch.tensor([-500.0, 0.0, 500.0]))
        img = gen(gen.init_codes(1, seed=0))
    assert torch.allclose(img[0, :, 0, 0], torch.tensor([1.0, 117.0 / 255.0, 0.0]))


def test_deepsim_variants_shapes_and_codes():
    expected = {"fc6": 4096, "fc7": 4096, "fc8": 1000, "pool5": 256 * 6 * 6}
    for variant, dim in expected.items():
        gen = generators.create(f"deepsim:variant={variant},pretrained=False,size=64")
        assert gen.dim == dim and gen.default_sigma == 3.0
        with torch.no_grad():
            img = gen(gen.init_codes(1, seed=1))
        assert img.shape == (1, 3, 64, 64)
        check_images(img)
    with pytest.raises(ValueError, match="unknown variant"):
        DeePSimGenerator(pretrained=False, variant="fc9")


def test_deepsim_init_codes_and_gradients(fc6):
    a, b = fc6.init_codes(64, seed=3), fc6.init_codes(64, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, fc6.init_codes(64, seed=4))
    assert abs(float(a.std()) - 1.0) < 0.02
    codes = fc6.init_codes(1, seed=0).requires_grad_(True)
    fc6(codes).mean().backward()
    assert codes.grad is not None and float(codes.grad.abs().sum()) > 0
    assert all(not p.requires_grad for p in fc6.parameters())


def test_deepsim_random_weights_are_seeded():
    a = DeePSimGenerator(pretrained=False, variant="fc8", init_seed=5)
    b = DeePSimGenerator(pretrained=False, variant="fc8", init_seed=5)
    assert torch.equal(a.G.defc7.weight, b.G.defc7.weight)


# -- BigGAN -------------------------------------------------------------------------------------
def test_biggan_codes_are_noise_plus_a_class_embedding_column(tiny_biggan):
    gen = tiny_biggan
    assert gen.dim == 256 and gen.default_sigma == 0.2 and gen.truncation == 0.7
    codes = gen.init_codes(400, seed=2)
    assert codes.shape == (400, 256)
    assert abs(float(codes[:, :128].std()) - 0.7) < 0.02
    emb = gen.class_embeddings  # (128, n_classes)
    matches = [(emb.T == row).all(dim=1).nonzero().flatten().tolist() for row in codes[:, 128:]]
    assert all(len(m) == 1 for m in matches)
    classes = {m[0] for m in matches}
    assert len(classes) > 5  # a random class per code, from the seed
    assert torch.equal(codes, gen.init_codes(400, seed=2))
    fixed = BigGANGenerator(pretrained=False, config="tiny", class_id=7).init_codes(3, seed=0)
    assert torch.equal(fixed[:, 128:], emb[:, 7].expand(3, -1))


def test_biggan_renders_through_generator_with_truncation():
    gen = BigGANGenerator(pretrained=False, config="tiny")
    with torch.no_grad():  # distinct precomputed statistics per truncation level, as in real weights
        for name, buf in gen.model.named_buffers():
            if name.endswith("running_means"):
                buf.copy_(torch.linspace(-0.5, 0.5, buf.shape[0])[:, None].expand_as(buf))
    codes = gen.init_codes(2, seed=0)
    with torch.no_grad():
        img = gen(codes)
        raw = gen.model.generator(codes, 0.7)
        gen.truncation = 0.3
        other = gen(codes)
    assert img.shape == (2, 3, 64, 64)
    check_images(img)
    assert torch.allclose(img, ((raw + 1) / 2).clamp(0, 1))
    assert not torch.allclose(img, other, atol=1e-3)  # truncation picks other batch-norm statistics
    with pytest.raises(ValueError, match="truncation"):
        BigGANGenerator(pretrained=False, config="tiny", truncation=1.5)


def test_biggan_full_config_builds_with_public_shapes():
    gen = BigGANGenerator(pretrained=False)  # biggan-deep-256 architecture, random weights
    assert gen.image_size == 256 and gen.num_classes == 1000
    assert tuple(gen.class_embeddings.shape) == (128, 1000)
    assert tuple(gen.model.generator.gen_z.weight.shape) == (4 * 4 * 16 * 128, 256)


# -- end to end ---------------------------------------------------------------------------------
def test_deepsim_and_biggan_evolve_with_pycma_on_a_model_neuron(fc6, tiny_biggan):
    from actmax.core.evolve import evolve

    for gen, pop in ((fc6, 3), (tiny_biggan, 4)):
        res = evolve(gen, "model:n=1", f"cma:popsize={pop}", unit=0, generations=2, seed=0)
        assert len(res.scores) == 2 * pop
        assert np.isfinite(res.scores["score"]).all()
        assert res.best_score == pytest.approx(res.scores["score"].max())
        assert res.best_code.shape == (gen.dim,)
        check_images(res.best_image.unsqueeze(0) if res.best_image.ndim == 3 else res.best_image)
        # the best code re-renders to an image scoring the best score
        from actmax.core.registry import scorers
        with torch.no_grad():
            again = scorers.create("model:n=1")(gen(torch.as_tensor(res.best_code, dtype=torch.float32)[None]))
        assert float(again[0, 0]) == pytest.approx(res.best_score, rel=1e-4, abs=1e-5)


def test_deepsim_and_biggan_synthesize_by_gradient_on_a_model_neuron(fc6, tiny_biggan):
    from actmax.core.synthesize import synthesize

    for gen in (fc6, tiny_biggan):
        res = synthesize(gen, "model:n=1", units=[0], poles=("high", "low"), seeds=(0,),
                         ascent="ascent:steps=4")
        assert res.images.shape[:2] == (2, 3)
        check_images(res.images)
        resp = {t.pole: float(r) for t, r in zip(res.targets, res.responses)}
        assert np.isfinite(list(resp.values())).all()
        assert resp["high"] > resp["low"]  # gradients flow through the generator to the codes


def test_random_deepsim_renders_image_like_spread(fc6):
    with torch.no_grad():
        img = fc6(fc6.init_codes(4, seed=9))
        raw = fc6.raw(fc6.init_codes(4, seed=9))
    assert 0.15 < float(img.std()) < 0.35 and 30 < float(raw.std()) < 100
    assert float((img == 0).float().mean() + (img == 1).float().mean()) < 0.2


# -- the lab's paired protocol: CholeskyCMAES in both spaces with the lab's presets --------------
def test_lab_presets_are_declared_by_each_generator(fc6, tiny_biggan):
    from actmax.generators.biggan import LAB_PRESETS
    assert fc6.optimizer_preset == "cholesky_cma:sigma0=3.0,popsize=40" and fc6.sphere_norm == 300.0
    assert tiny_biggan.optimizer_preset == LAB_PRESETS["CholCMA"] == "cholesky_cma:sigma0=0.2,popsize=28"
    fc8 = DeePSimGenerator(pretrained=False, variant="fc8")
    assert fc8.optimizer_preset == "cholesky_cma:sigma0=3.0,popsize=40"
    for search, preset, sigma in (("class", "CholCMA_class", 0.06), ("noise", "CholCMA_noise", 0.3)):
        gen = BigGANGenerator(pretrained=False, config="tiny", search=search, init_seed=4)
        assert gen.dim == 128 and gen.default_sigma == sigma and gen.optimizer_preset == LAB_PRESETS[preset]
        full = BigGANGenerator(pretrained=False, config="tiny", init_seed=4)
        part = gen.init_codes(3, seed=1)
        whole = full.init_codes(3, seed=1)
        torch.testing.assert_close(part, whole[:, 128:] if search == "class" else whole[:, :128])
        fixed = full.init_codes(1, seed=4)[0]
        expect = gen.full_codes(part)
        kept = expect[:, :128] if search == "class" else expect[:, 128:]
        assert torch.equal(kept, (fixed[:128] if search == "class" else fixed[128:]).expand(3, -1))
        with torch.no_grad():                     # the same image as the full space at the completed code
            torch.testing.assert_close(gen(part), full(expect))
    with pytest.raises(ValueError, match="search"):
        BigGANGenerator(pretrained=False, config="tiny", search="both")
    from actmax.generators.fourier import FourierGenerator
    from actmax.generators.gabor import GaborGenerator
    assert GaborGenerator().optimizer_preset == "cma:sigma0=0.5"                      # kept behaviour
    assert FourierGenerator(size=32).optimizer_preset == "cholesky_cma:sigma0=0.5"


def test_paired_deepsim_biggan_run_with_no_optimizer_uses_the_labs_cholesky_presets(tmp_path, monkeypatch):
    """Random weights saved in the public formats where the lab's loaders look; `-g deepsim -g biggan`, no -o."""
    import json
    import os

    import pandas as pd
    from actmax.core.records import load_checkpoint_file
    from actmax.core.weights import sha256_file
    from actmax.generators.deepsim import build_upconv
    from tests.conftest import run_cli
    from tests.test_weights import tiny_biggan_files

    hub = tmp_path / "torch" / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    g = torch.Generator().manual_seed(7)
    net, _ = build_upconv("fc6")
    torch.save({k: torch.randn(v.shape, generator=g) * 0.02 for k, v in net.state_dict().items()},
               hub / "checkpoints" / "upconvGAN_fc6.pt")
    tiny_biggan_files(hub, config_name="biggan-deep-256-config.json", weights_name="biggan-deep-256-pytorch_model.bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTMAX_")}
    env.update(TORCH_HOME=str(tmp_path / "torch"), HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1",
               PYTORCH_PRETRAINED_BIGGAN_CACHE=str(tmp_path / "bgc"))
    monkeypatch.setattr(os, "environ", env)
    out = tmp_path / "paired"
    r = run_cli("evolve", "-g", "deepsim:size=64", "-g", "biggan:size=64", "-s", "model:n=1,size=64",
                "--generations", "2", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["optimizers"] == ["cholesky_cma:popsize=40,sigma0=3.0", "cholesky_cma:popsize=28,sigma0=0.2"]   # canonical spec text
    scores = pd.read_parquet(out / "scores.parquet")
    per_gen = scores.groupby(["space", "generation"]).size().unstack("generation")
    assert per_gen.loc["deepsim"].tolist() == [40, 40] and per_gen.loc["biggan"].tolist() == [28, 28]
    state = load_checkpoint_file(out / "checkpoint.pt")["state"]["optimizers"]
    assert [(s["optimizer"], s["popsize"], s["sigma0"]) for s in state] == [("cholesky_cma", 40, 3.0),
                                                                            ("cholesky_cma", 28, 0.2)]
    files = {Path(w["path"]).name: w for w in manifest["provenance"]["weights"]}
    for name in ("upconvGAN_fc6.pt", "biggan-deep-256-pytorch_model.bin", "biggan-deep-256-config.json"):
        path = (hub / "checkpoints" / name) if name.startswith("upconv") else hub / name
        assert files[name]["bytes"] == path.stat().st_size and files[name]["sha256"] == sha256_file(path)
    parts = {(p["kind"], p["name"]): p for p in manifest["provenance"]["parts"]}
    assert parts[("generator", "biggan")]["distribution"] == "actmax" and parts[("optimizer", "cholesky_cma")]["version"]

"""Weight resolution and loading: local paths, env variables, the Hugging Face cache offline,
the hub (faked, no network), and clear errors for missing, mismatched and corrupt files."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from actmax.core import weights as W
from actmax.core.errors import WeightsError
from actmax.generators.biggan import TINY, BigGANGenerator
from actmax.generators.deepsim import DeePSimGenerator, build_upconv, rename_public_key

DEEPSIM_REPO = "binxu/DeePSim_DosovitskiyBrox2016"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every location actmax looks in points into tmp_path; offline by default."""
    for var in list(os.environ):
        if var.startswith("ACTMAX_") and var not in ("ACTMAX_NO_PLUGINS",):
            monkeypatch.delenv(var, raising=False)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(tmp_path / "biggan_cache"))
    return tmp_path


def put_in_hf_cache(repo: str, filename: str, data: bytes, *, revision: str = "0123456789abcdef" * 2 + "01234567") -> Path:
    """Write a file into the Hugging Face cache layout (blobs + snapshot symlink + refs/main)."""
    root = W.hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    blob = root / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    snap = root / "snapshots" / revision / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    if snap.exists() or snap.is_symlink():
        snap.unlink()
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return snap


def torch_bytes(obj, tmp_path: Path) -> bytes:
    path = tmp_path / "scratch.pt"
    torch.save(obj, path)
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture(scope="module")
def fc6_state() -> dict[str, torch.Tensor]:
    """A state dict with the public fc6 checkpoint's key names and shapes, random values."""
    g = torch.Generator().manual_seed(7)
    net, _ = build_upconv("fc6")
    return {k: torch.randn(v.shape, generator=g) * 0.02 for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def fc6_bytes(fc6_state, tmp_path_factory) -> bytes:
    return torch_bytes(fc6_state, tmp_path_factory.mktemp("fc6"))


# -- DeePSim through the Hugging Face cache, offline -------------------------------------------
def test_deepsim_fc6_loads_from_hf_cache_offline_with_every_key(fc6_state, fc6_bytes, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("the hub must not be contacted in offline mode")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)

    snap = put_in_hf_cache(DEEPSIM_REPO, "upconvGAN_fc6.pt", fc6_bytes)
    found = W.locate("deepsim-fc6")
    assert found is not None and found.path == snap and "Hugging Face cache" in found.source

    gen = DeePSimGenerator(variant="fc6")  # pretrained=True: goes through the resolver
    loaded = gen.G.state_dict()
    assert set(loaded) == set(fc6_state)
    for key, value in fc6_state.items():
        assert loaded[key].shape == value.shape, key
        assert torch.equal(loaded[key], value), key
    # the public layer names, exactly
    assert tuple(gen.G.defc7.weight.shape) == (4096, 4096)
    assert tuple(gen.G.deconv0.weight.shape) == (32, 3, 4, 4)
    assert isinstance(gen.G.conv5_1, torch.nn.ConvTranspose2d)
    assert gen.weights_path == str(snap)


def test_deepsim_missing_file_gives_one_clear_error():
    with pytest.raises(WeightsError) as info:
        DeePSimGenerator(variant="fc6")
    msg = str(info.value)
    for needle in ("upconvGAN_fc6.pt", DEEPSIM_REPO, "ACTMAX_DEEPSIM_FC6_WEIGHTS", "weights=",
                   "ACTMAX_WEIGHTS_DIR", "offline"):
        assert needle in msg, needle


def test_deepsim_missing_through_the_registry_is_the_same_error():
    from actmax.core.registry import generators
    with pytest.raises(WeightsError, match="upconvGAN_fc7.pt"):
        generators.create("deepsim:variant=fc7")


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path, fc6_state):
    bad = dict(fc6_state)
    bad["defc7.weight"] = torch.zeros(4096, 1000)  # an fc8 first layer in an fc6 file
    path = tmp_path / "upconvGAN_fc6.pt"
    torch.save(bad, path)
    with pytest.raises(WeightsError) as info:
        DeePSimGenerator(variant="fc6", weights=str(path))
    msg = str(info.value)
    assert "'defc7.weight'" in msg and "(4096, 1000)" in msg and "(4096, 4096)" in msg


def test_missing_and_unexpected_keys_are_reported():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(WeightsError, match=r"1 missing key\(s\).*'0.bias'.*1 unexpected key\(s\).*'0.extra'"):
        W.load_into(model, {"0.weight": torch.zeros(2, 3), "0.extra": torch.zeros(1)})


def test_public_key_rewrite_as_the_reference():
    assert rename_public_key("defc7.weight") == "defc7.weight"
    assert rename_public_key("deconv5.1.weight") == "deconv5.weight"
    assert rename_public_key("G.conv5_1.bias") == "conv5_1.bias"
    model = torch.nn.Sequential()
    model.add_module("deconv5", torch.nn.ConvTranspose2d(2, 1, 3))
    w = torch.randn(2, 1, 3, 3)
    W.load_into(model, {"deconv5.1.weight": w, "deconv5.1.bias": torch.ones(1)}, rename=rename_public_key)
    assert torch.equal(model.deconv5.weight, w)


# -- resolution order -----------------------------------------------------------------------
def _dummy(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": torch.zeros(1)}, path)
    return path


def test_resolution_order(tmp_path, monkeypatch):
    name = "upconvGAN_fc6.pt"
    in_cache = put_in_hf_cache(DEEPSIM_REPO, name, b"cached")
    assert W.locate("deepsim-fc6").path == in_cache
    hub_ckpt = _dummy(tmp_path / "torch" / "hub" / "checkpoints" / name)  # the reference's download dir
    assert W.locate("deepsim-fc6").path == hub_ckpt
    in_dir = _dummy(tmp_path / "weights_dir" / name)
    monkeypatch.setenv("ACTMAX_WEIGHTS_DIR", str(in_dir.parent))
    assert W.locate("deepsim-fc6").path == in_dir
    by_env = _dummy(tmp_path / "env" / "renamed.pt")
    monkeypatch.setenv("ACTMAX_DEEPSIM_FC6_WEIGHTS", str(by_env))
    assert W.locate("deepsim-fc6").path == by_env
    explicit = _dummy(tmp_path / "explicit" / name)
    found = W.locate("deepsim-fc6", explicit.parent)  # a folder holding the file
    assert found.path == explicit and "weights=" in found.source


def test_explicit_path_that_does_not_exist_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    put_in_hf_cache(DEEPSIM_REPO, "upconvGAN_fc6.pt", b"cached")
    with pytest.raises(WeightsError, match="does not exist"):
        W.locate("deepsim-fc6", tmp_path / "nope.pt")
    monkeypatch.setenv("ACTMAX_DEEPSIM_FC6_WEIGHTS", str(tmp_path / "empty_folder"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(WeightsError, match="ACTMAX_DEEPSIM_FC6_WEIGHTS.*no file named 'upconvGAN_fc6.pt'"):
        W.locate("deepsim-fc6")


def test_hub_reachable_but_nothing_is_fetched_unless_asked(tmp_path, monkeypatch):
    import huggingface_hub
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs.get("cache_dir")))
        return str(_dummy(tmp_path / "downloaded" / filename))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    url_calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: url_calls.append(a))
    with pytest.raises(WeightsError, match="downloads only when asked.*actmax weights --download deepsim-fc8"):
        W.resolve("deepsim-fc8")
    with pytest.raises(WeightsError, match="upconvGAN_fc6.pt"):
        DeePSimGenerator(variant="fc6")
    with pytest.raises(WeightsError, match="biggan-deep-256"):
        BigGANGenerator()
    assert calls == [] and url_calls == []                      # no network request without asking
    path = W.resolve("deepsim-fc8", download=True)              # asked: one hub request
    assert path.name == "upconvGAN_fc8.pt"
    assert calls == [(DEEPSIM_REPO, "upconvGAN_fc8.pt", str(W.hf_cache_dir()))]

    def failing(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(WeightsError, match="upconvGAN_fc7.pt.*download failed: OSError: network unreachable"):
        W.resolve("deepsim-fc7", download=True)


def test_deepsim_download_option_and_cli_download(tmp_path, monkeypatch, fc6_bytes):
    import huggingface_hub
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(put_in_hf_cache(repo_id, filename, fc6_bytes))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    gen = DeePSimGenerator(variant="fc6", download=True)
    assert calls == [(DEEPSIM_REPO, "upconvGAN_fc6.pt")] and "models--binxu" in gen.weights_path
    DeePSimGenerator(variant="fc6", download=True)              # now cached: no second request
    assert len(calls) == 1


def test_biggan_source_is_pytorch_pretrained_biggans_own_urls_into_torch_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    src = tmp_path / "src"
    state = tiny_biggan_files(src, config_name="config.json", weights_name="pytorch_model.bin")
    fetched = []

    def fake_url_download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, Path(dst)))
        Path(dst).write_bytes((src / ("config.json" if url.endswith(".json") else "pytorch_model.bin")).read_bytes())
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_url_download)
    from typer.testing import CliRunner
    from actmax.core.cli import app
    out = CliRunner().invoke(app, ["weights", "--download", "biggan-deep-256"])
    assert out.exit_code == 0, out.output
    hub = tmp_path / "torch" / "hub"
    assert fetched == [("https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-256-config.json",
                        hub / "biggan-deep-256-config.json"),
                       ("https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-256-pytorch_model.bin",
                        hub / "biggan-deep-256-pytorch_model.bin")]
    gen = BigGANGenerator()                                       # found where the lab's loader looks
    assert gen.weights_path == str(hub / "biggan-deep-256-pytorch_model.bin")
    assert torch.equal(gen.class_embeddings, state["embeddings.weight"])


# -- corrupt files ----------------------------------------------------------------------------
def test_truncated_and_garbage_files_give_a_clear_error(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(64, 64)}, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path in (truncated, garbage):
        with pytest.raises(WeightsError, match="corrupt or truncated"):
            W.load_state_dict_file(path)
    with pytest.raises(WeightsError, match="is empty"):
        W.load_state_dict_file(empty)
    assert torch.equal(W.load_state_dict_file(good)["w"], torch.load(good, weights_only=True)["w"])


def test_truncated_safetensors_and_pickled_objects_are_refused(tmp_path):
    from safetensors.torch import save_file
    st = tmp_path / "w.safetensors"
    save_file({"w": torch.randn(32, 32)}, str(st))
    st.write_bytes(st.read_bytes()[:100])
    with pytest.raises(WeightsError, match="safetensors"):
        W.load_state_dict_file(st)
    pickled = tmp_path / "obj.pt"
    torch.save({"w": torch.zeros(2), "cfg": Path("/x")}, pickled)  # a non-tensor Python object
    with pytest.raises(WeightsError, match="never unpickles"):
        W.load_state_dict_file(pickled)


def test_corrupt_deepsim_file_through_the_generator(tmp_path, fc6_bytes):
    path = tmp_path / "upconvGAN_fc6.pt"
    path.write_bytes(fc6_bytes[: len(fc6_bytes) // 3])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        DeePSimGenerator(weights=str(path))


# -- BigGAN files: config + weights ------------------------------------------------------------
def tiny_biggan_files(folder: Path, *, config_name: str, weights_name: str, seed: int = 3) -> dict:
    """A tiny BigGAN-deep's config JSON and state dict (public key names), random values."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    torch.manual_seed(seed)
    model = BigGAN(BigGANConfig.from_dict(dict(TINY)))
    state = {k: (torch.randn_like(v) * 0.1 if k.endswith("weight_orig") or "embeddings" in k else v.clone())
             for k, v in model.state_dict().items()}
    for key in [k for k in state if k.endswith("weight_orig")]:  # u, v consistent with W (power iteration)
        stem = key[: -len("weight_orig")]
        mat, u = state[key].flatten(1), state[stem + "weight_u"]
        for _ in range(30):
            v = torch.nn.functional.normalize(mat.T @ u, dim=0)
            u = torch.nn.functional.normalize(mat @ v, dim=0)
        state[stem + "weight_u"], state[stem + "weight_v"] = u, v
    for k in state:
        if k.endswith("bn.weight"):
            state[k] = torch.ones_like(state[k])
        if k.endswith("bn.bias"):
            state[k] = torch.zeros_like(state[k])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / config_name).write_text(json.dumps(TINY))
    torch.save(state, folder / weights_name)
    return state


def reference_render(state: dict, codes: torch.Tensor, truncation: float = 0.7) -> torch.Tensor:
    """What the library's own model does with these weights (the reference wrapper's visualize)."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    ref = BigGAN(BigGANConfig.from_dict(dict(TINY)))
    ref.load_state_dict(state, strict=True)
    ref.eval()
    with torch.no_grad():
        return torch.clamp((ref.generator(codes, truncation) + 1.0) / 2.0, 0.0, 1.0)


def test_biggan_loads_from_the_torch_hub_dir_like_the_reference(tmp_path):
    hub = tmp_path / "torch" / "hub"
    state = tiny_biggan_files(hub, config_name="biggan-deep-256-config.json",
                              weights_name="biggan-deep-256-pytorch_model.bin")
    gen = BigGANGenerator(class_id=3)
    assert gen.weights_path == str(hub / "biggan-deep-256-pytorch_model.bin")
    assert gen.dim == 256 and gen.image_size == TINY["output_dim"] and gen.num_classes == 10
    assert torch.equal(gen.class_embeddings, state["embeddings.weight"])
    codes = gen.init_codes(3, seed=1)
    with torch.no_grad():
        ours = gen(codes)
    assert torch.allclose(ours, reference_render(state, codes), atol=1e-5)


def test_biggan_loads_from_hf_cache_of_a_configured_mirror_offline(tmp_path, monkeypatch):
    src = tmp_path / "src"
    state = tiny_biggan_files(src, config_name="config.json", weights_name="pytorch_model.bin")
    repo = "someone/biggan-deep-256-mirror"
    put_in_hf_cache(repo, "config.json", (src / "config.json").read_bytes())
    put_in_hf_cache(repo, "pytorch_model.bin", (src / "pytorch_model.bin").read_bytes())
    monkeypatch.setenv("ACTMAX_BIGGAN_HUB_REPO", repo)
    gen = BigGANGenerator()
    assert "models--someone--biggan-deep-256-mirror" in gen.weights_path
    codes = gen.init_codes(2, seed=0)
    with torch.no_grad():
        assert torch.allclose(gen(codes), reference_render(state, codes), atol=1e-5)


def test_biggan_explicit_folder_and_every_public_key(tmp_path):
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    state = tiny_biggan_files(tmp_path / "bg", config_name="config.json", weights_name="pytorch_model.bin")
    expected = BigGAN(BigGANConfig.from_dict(dict(TINY))).state_dict()
    assert set(state) == set(expected)
    assert any(k.endswith("weight_u") for k in state) and any(k.endswith("running_means") for k in state)
    gen = BigGANGenerator(weights=str(tmp_path / "bg"))
    assert gen.weights_path.endswith("pytorch_model.bin")
    # spectral norm folded exactly: weight = weight_orig / (u . W v)
    w_orig, u, v = (state[f"generator.gen_z.weight_{s}"] for s in ("orig", "u", "v"))
    sigma = torch.dot(u, w_orig @ v)
    assert torch.allclose(gen.model.generator.gen_z.weight, w_orig / sigma)


def test_biggan_missing_files_error():
    with pytest.raises(WeightsError) as info:
        BigGANGenerator()
    msg = str(info.value)
    for needle in ("biggan-deep-256-pytorch_model.bin", "ACTMAX_BIGGAN_WEIGHTS", "ACTMAX_BIGGAN_HUB_REPO",
                   "weights="):
        assert needle in msg, needle


def test_biggan_wrong_shape_and_bad_config(tmp_path):
    folder = tmp_path / "bg"
    state = tiny_biggan_files(folder, config_name="config.json", weights_name="pytorch_model.bin")
    state["embeddings.weight"] = torch.zeros(128, 1000)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(WeightsError) as info:
        BigGANGenerator(weights=str(folder))
    assert "'embeddings.weight'" in str(info.value) and "(128, 1000)" in str(info.value) \
        and "(128, 10)" in str(info.value)
    (folder / "config.json").write_text('{"layers": [')
    with pytest.raises(WeightsError, match="not readable JSON"):
        BigGANGenerator(weights=str(folder))


def test_weights_table_and_cli(tmp_path):
    put_in_hf_cache(DEEPSIM_REPO, "upconvGAN_fc6.pt", b"x")
    rows = {r["name"]: r for r in W.weights_table()}
    assert rows["deepsim-fc6"]["present"] and "Hugging Face cache" in rows["deepsim-fc6"]["source"]
    assert not rows["deepsim-fc7"]["present"] and "hf download" in rows["deepsim-fc7"]["how_to_get"]
    assert not rows["biggan-deep-256"]["present"]

    from typer.testing import CliRunner
    from actmax.core.cli import app
    out = CliRunner().invoke(app, ["weights"])
    assert out.exit_code == 0, out.output
    assert "deepsim-fc6: verified" in out.output and "missing" in out.output
    assert "ACTMAX_DEEPSIM_FC7_WEIGHTS" in out.output
    out = CliRunner().invoke(app, ["weights", "--json"])
    assert json.loads(out.output)[0]["name"] == "biggan-deep-256"


def test_weights_lists_lpips_and_torchvision_trunks():
    rows = {r["name"]: r for r in W.weights_table()}
    for name, file in (("lpips-alex-trunk", "alexnet-owt-7be5be79.pth"), ("lpips-vgg-trunk", "vgg16-397923af.pth"),
                       ("lpips-squeeze-trunk", "squeezenet1_1-b8a52dc0.pth"),
                       ("torchvision-alexnet", "alexnet-owt-7be5be79.pth"), ("torchvision-resnet50", "resnet50-11ad3fa6.pth")):
        assert rows[name]["file"] == file and rows[name]["status"] == "missing"
        assert "download.pytorch.org/models/" + file in rows[name]["how_to_get"]


def test_truncated_or_empty_files_are_listed_as_corrupt_with_the_fix(tmp_path, fc6_bytes):
    from typer.testing import CliRunner
    from actmax.core.cli import app
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "upconvGAN_fc6.pt").write_bytes(fc6_bytes[: len(fc6_bytes) // 2])      # an interrupted download
    (ckpt / "upconvGAN_fc7.pt").write_bytes(fc6_bytes)                             # whole (no published hash here)
    (ckpt / "upconvGAN_fc8.pt").write_bytes(b"")                                   # empty
    good = torch_bytes({"w": torch.ones(3)}, tmp_path)
    data = bytearray(good)
    (ckpt / "alexnet-owt-7be5be79.pth").write_bytes(good)                            # wrong hash for its name
    snap = put_in_hf_cache(DEEPSIM_REPO, "upconvGAN_pool5.pt", fc6_bytes)          # the hub's sha256 is the blob name
    rows = {r["name"]: r for r in W.weights_table()}
    assert rows["deepsim-fc6"]["status"] == "corrupt" and "zip" in rows["deepsim-fc6"]["detail"]
    assert "actmax weights --download deepsim-fc6" in rows["deepsim-fc6"]["fix"]
    assert rows["deepsim-fc7"]["status"] == "present" and rows["deepsim-fc7"]["present"]
    assert rows["deepsim-fc8"]["status"] == "corrupt" and "empty" in rows["deepsim-fc8"]["detail"]
    assert rows["torchvision-alexnet"]["status"] == "corrupt" and "7be5be79" in rows["torchvision-alexnet"]["detail"]
    assert rows["deepsim-pool5"]["status"] == "verified"
    blob = snap.resolve()
    blob.write_bytes(bytes(data[:10]) + fc6_bytes[10:-1])                            # truncated in the HF cache
    assert W.verify(snap, "deepsim-pool5")[0] == "corrupt"
    out = CliRunner().invoke(app, ["weights"])
    assert out.exit_code == 0, out.output
    text = out.output
    fc6_block = text[text.index("deepsim-fc6:"):text.index("deepsim-fc6_eucl:")]
    assert "corrupt" in fc6_block and "delete" in fc6_block and "--download deepsim-fc6" in fc6_block
    assert "deepsim-fc7: present" in text
    st = tmp_path / "w.safetensors"
    from safetensors.torch import save_file
    save_file({"w": torch.randn(64, 64)}, str(st))
    assert W.verify(st)[0] == "present"
    st.write_bytes(st.read_bytes()[:-5])
    assert W.verify(st)[0] == "corrupt"


# -- provenance ---------------------------------------------------------------------------------
def test_every_manifest_lists_the_weight_files_used_and_the_part_packages(tmp_path, fc6_state):
    import numpy as np
    from actmax.core.evolve import evolve
    from actmax.core.provenance import distribution_of
    from actmax.core.records import RunRecord

    assert distribution_of("numpy.linalg") == ("numpy", np.__version__)
    path = tmp_path / "upconvGAN_fc6.pt"
    torch.save(fc6_state, path)
    live = DeePSimGenerator(weights=str(path), size=16)
    for run in ("a", "b"):                              # the same live generator in two runs: listed in both
        evolve(live, "model:n=1,size=16", "cholesky_cma:popsize=4", generations=1, out_dir=tmp_path / run)
        weights = RunRecord(tmp_path / run).manifest()["provenance"]["weights"]
        [entry] = [w for w in weights if w.get("path") == str(path.absolute())]
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    evolve("deepsim:pretrained=False,size=16,init_seed=3", "model:n=1,size=16", "cholesky_cma:popsize=4",
           generations=1, out_dir=tmp_path / "c")
    manifest = RunRecord(tmp_path / "c").manifest()
    weights = manifest["provenance"]["weights"]
    assert [w for w in weights if w.get("random")] == [
        {"name": "deepsim-fc6", "random": True, "seed": 3, "used_by": "generator deepsim:variant=fc6,pretrained=False"}]
    assert not any(w.get("path") == str(path.absolute()) for w in weights)     # only this run's files
    parts = {(p["kind"], p["name"]): p for p in manifest["provenance"]["parts"]}
    assert set(parts) == {("generator", "deepsim"), ("scorer", "model"), ("optimizer", "cholesky_cma")}
    assert all(p["distribution"] == "actmax" and p["version"] for p in parts.values())

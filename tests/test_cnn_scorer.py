"""CNN scorer: hooked unit values equal the layer's own output (also before in-place ReLUs),
unit convention, preprocessing, receptive-field paste, pretrained-weight resolution."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from actmax.core.errors import WeightsError
from actmax.core.registry import scorers
from actmax.scorers.cnn import CNNScorer, find_module, receptive_field_box, receptive_field_map, resize_and_pad

torch.manual_seed(0)


def _images(n: int = 3, c: int = 3, size: int = 48, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_alexnet_spec_string_scores_the_hooked_layer_at_the_centre():
    s = scorers.create("cnn:model=alexnet,layer=features.10,channels=[0,1,2],weights=random,seed=0,input_size=96")
    assert s.units == 3 and s.output_shape[0] == 256
    x = _images(2)
    with torch.no_grad():
        direct = s.net.features[:11](s.preprocess_tensor(x))          # up to and including features.10
    h, w = direct.shape[-2:]
    assert (s.x, s.y) == (h // 2, w // 2)
    torch.testing.assert_close(s(x), direct[:, [0, 1, 2], h // 2, w // 2])


@pytest.mark.parametrize("truncate", [False, True])
def test_pre_relu_value_survives_following_inplace_relu(truncate):
    """resnet18: layer1.0.bn1 is followed by the block's in-place ReLU; the hook must clone."""
    s = CNNScorer("resnet18", layer="layer1.0.bn1", channels=list(range(16)), input_size=64, truncate=truncate,
                  weights="random")
    net = s.net
    assert isinstance(net.layer1[0].relu, nn.ReLU) and net.layer1[0].relu.inplace
    x = _images(4, size=40)
    with torch.no_grad():
        inp = s.preprocess_tensor(x)
        stem = net.maxpool(net.relu(net.bn1(net.conv1(inp))))
        block = net.layer1[0]
        expected = block.bn1(block.conv1(stem))[:, :16, s.x, s.y]
    got = s(x)
    assert (expected < 0).sum() > 5, "the test needs negative pre-ReLU values to be able to fail"
    torch.testing.assert_close(got, expected)


def test_a_view_storing_hook_would_be_overwritten():
    """Control: the same read without a clone is zeroed by the in-place ReLU (what the scorer avoids)."""
    torch.manual_seed(0)                               # a conv with negative outputs here, whatever ran before
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
    stored = {}
    net[0].register_forward_hook(lambda m, i, o: stored.__setitem__("v", o[:, :, 2, 2]))
    x = _images(2, size=5)
    with torch.no_grad():
        pre = net[0](x)[:, :, 2, 2].clone()
        net(x)
    assert (pre < 0).any() and torch.equal(stored["v"], pre.clamp_min(0))
    s = CNNScorer(net, layer="0", truncate=False, input_size=5, normalize=False)
    torch.testing.assert_close(s(x), pre)


def test_module_object_linear_layer_and_position_convention():
    net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(6 * 6 * 6, 5))
    conv = CNNScorer(net, layer="0", channels=[1, 4], x=1, y=4, in_channels=1, input_size=8, normalize=False)
    x = _images(3, c=1, size=8)
    with torch.no_grad():
        out = net[0](x)
    # x indexes height (rows), y indexes width (columns)
    torch.testing.assert_close(conv(x), out[:, [1, 4], 1, 4])
    lin = CNNScorer(net, layer="3", channels=[0, 2], in_channels=1, input_size=8, normalize=False)
    with torch.no_grad():
        torch.testing.assert_close(lin(x), net(x)[:, [0, 2]])
    assert lin.units == 2 and lin.x is None
    grey = CNNScorer(net, layer="3", in_channels=1, input_size=8, normalize=False)
    assert grey.units == 5


def test_gradients_flow_and_rgb_grey_inputs_agree():
    s = CNNScorer("resnet18", layer="layer1.0.conv1", channels=[3], input_size=64, weights="random")
    grey = _images(2, c=1, size=32).requires_grad_(True)
    out = s(grey)
    out.sum().backward()
    assert grey.grad is not None and grey.grad.abs().sum() > 0
    torch.testing.assert_close(s(grey.detach()), s(grey.detach().expand(-1, 3, -1, -1)))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no layer 'features.99'"):
        CNNScorer("alexnet", layer="features.99", weights="random")
    with pytest.raises(ValueError, match="unknown torchvision model"):
        CNNScorer("alexnett", layer="features.0")
    with pytest.raises(ValueError, match="out of range"):
        CNNScorer("resnet18", layer="layer1", channels=[64], input_size=32, weights="random")
    with pytest.raises(ValueError, match="outside"):
        CNNScorer("resnet18", layer="layer1", channels=[0], x=50, input_size=32, weights="random")
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()))
    with pytest.raises(ValueError, match=r"did you mean \['0.1'"):
        find_module(net, "0.l")
    with pytest.raises(ValueError, match="some layers"):
        find_module(net, "")


def test_pretrained_offline_is_one_clear_error_and_local_file_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTMAX_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("ACTMAX_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd\.pth.*offline"):
        CNNScorer("resnet18", layer="layer1", input_size=32)
    # a local state dict with torchvision's exact key names, through weights= and through ACTMAX_WEIGHTS_DIR
    from safetensors.torch import save_file
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    s = CNNScorer("resnet18", layer="fc", channels=[0, 1], weights=str(path), input_size=32)
    x = _images(2, size=32)
    with torch.no_grad():
        torch.testing.assert_close(s(x), ref.eval()(s.preprocess_tensor(x))[:, :2])
    torch.save(ref.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    monkeypatch.setenv("ACTMAX_WEIGHTS_DIR", str(tmp_path))
    s2 = CNNScorer("resnet18", layer="fc", channels=[0, 1], input_size=32)
    torch.testing.assert_close(s2(x), s(x))
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(WeightsError, match="shape mismatch|does not match"):
        CNNScorer("resnet18", layer="fc", weights=str(bad), input_size=32)


def test_resize_and_pad_and_receptive_field_paste():
    img = torch.ones(1, 1, 4, 4)
    canvas = resize_and_pad(img, 6, (2, 3), 12)
    assert canvas.shape == (1, 1, 12, 12)
    assert canvas[0, 0, 2:8, 3:9].eq(1).all() and canvas.sum() == pytest.approx(36 + 0.5 * (144 - 36))
    with pytest.raises(ValueError, match="does not fit"):
        resize_and_pad(img, 6, (8, 8), 12)
    # a conv unit near the top-left sees only a small patch: its RF box is found and the paste uses it
    net = nn.Sequential(nn.Conv2d(1, 2, 5, padding=2), nn.Conv2d(2, 2, 5, padding=2))
    s = CNNScorer(net, layer="1", channels=[0], x=6, y=9, in_channels=1, input_size=32, normalize=False)
    rf = receptive_field_map(s, 0, reps=4)
    top, left, size = receptive_field_box(rf, rel_threshold=1e-6)
    assert (top, left, size) == (2, 5, 9)          # rows 6-4..6+4, cols 9-4..9+4
    s.paste = [top, left, size]
    x = _images(2, c=1, size=20)
    pasted = resize_and_pad(x, size, (top, left), 32)
    torch.testing.assert_close(s(x), CNNScorer(net, layer="1", channels=[0], x=6, y=9, in_channels=1,
                                               input_size=32, normalize=False)(pasted))


# -- no silent random networks; downloads only on request, never unpickled -----------------------
@pytest.fixture
def no_local_weights(tmp_path, monkeypatch):
    """No weight file anywhere local, the hub reachable (not offline)."""
    import os
    for var in list(os.environ):
        if var.startswith("ACTMAX_") and var != "ACTMAX_NO_PLUGINS":
            monkeypatch.delenv(var, raising=False)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def test_named_model_without_its_file_exits_2_naming_the_file_and_how_to_provide_it(no_local_weights):
    from tests.conftest import run_cli
    out = no_local_weights / "run"
    r = run_cli("evolve", "-g", "gabor:size=16", "-s", "cnn:model=alexnet,layer=features.10,channels=[0]",
                "--generations", "1", "--out", str(out), "--no-progress")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("error:")
    for needle in ("alexnet-owt-7be5be79.pth", "weights=/path/to/alexnet-owt-7be5be79.pth", "ACTMAX_ALEXNET_WEIGHTS",
                   "actmax weights --download torchvision-alexnet", "weights=random,seed=0"):
        assert needle in r.stderr, needle
    assert not (out / "manifest.json").exists()
    img = no_local_weights / "a.png"
    from PIL import Image
    Image.new("RGB", (16, 16), (200, 10, 10)).save(img)
    Image.new("RGB", (16, 16), (10, 10, 200)).save(no_local_weights / "b.png")
    r = run_cli("analyze", "similarity", str(img), str(no_local_weights / "b.png"), "--metric", "cosine",
                "--features", "cnn:model=alexnet,layer=features.10", "--out", str(no_local_weights / "an"))
    assert r.returncode == 2 and "alexnet-owt-7be5be79.pth" in r.stderr and "Traceback" not in r.stderr


def test_random_weights_only_when_asked_seeded_and_said_in_the_manifest(no_local_weights):
    import json

    import pandas as pd
    from tests.conftest import run_cli
    spec = "cnn:model=alexnet,layer=features.10,channels=[0,1],weights=random,seed={},input_size=64"
    tables = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = no_local_weights / name
        r = run_cli("evolve", "-g", "gabor:size=16", "-s", spec.format(seed), "--unit", "1",
                    "--generations", "2", "--out", str(out), "--no-progress")
        assert r.returncode == 0, r.stderr
        tables[name] = pd.read_parquet(out / "scores.parquet")
        manifest = json.loads((out / "manifest.json").read_text())
        [net] = [w for w in manifest["provenance"]["weights"] if w.get("random")]
        assert net["name"] == "torchvision-alexnet" and net["seed"] == seed
    pd.testing.assert_frame_equal(tables["a"], tables["b"])              # same seed: identical scores
    assert not tables["a"]["score"].equals(tables["c"]["score"])          # another seed: another network
    a = CNNScorer("alexnet", layer="features.3", weights="random", seed=0, input_size=32)
    b = CNNScorer("alexnet", layer="features.3", weights="random", seed=0, input_size=32)
    assert torch.equal(a.net.features[3].weight, b.net.features[3].weight)
    with pytest.raises(ValueError, match="weights=random"):
        CNNScorer("alexnet", layer="features.3", pretrained=False)
    with pytest.raises(ValueError, match="needs weights=random"):
        CNNScorer("alexnet", layer="features.3", seed=3)


def test_download_only_on_request_hash_checked_and_never_unpickled(no_local_weights, monkeypatch):
    import huggingface_hub
    import torchvision

    calls = []

    def record_hf(*args, **kwargs):
        calls.append(("hf", args))
        raise AssertionError("no hub request was asked for")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", record_hf)

    ran = []

    class Payload:                                   # what a substituted download could carry
        def __reduce__(self):
            return (ran.append, ("payload ran",))

    def fake_url_download(url, dst, hash_prefix=None, progress=True):
        calls.append(("url", url, hash_prefix))
        torch.save({"features.0.weight": Payload()}, dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_url_download)
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth"):
        CNNScorer("resnet18", layer="fc", input_size=32)
    assert calls == []                               # nothing fetched behind the user's back
    with pytest.raises(WeightsError, match="never unpickles|corrupt|does not start with"):
        CNNScorer("resnet18", layer="fc", input_size=32, download=True)
    assert calls == [("url", "https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd")]
    assert ran == []                                 # the pickle payload never ran

    def honest_download(url, dst, hash_prefix=None, progress=True):
        calls.append(("url", url, hash_prefix))
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", honest_download)
    monkeypatch.setattr("actmax.core.weights.verify", lambda path, spec=None: ("present", "test: hash not checked"))
    s = CNNScorer("resnet18", layer="fc", channels=[0], input_size=32, download=True)
    assert s.units == 1 and len(calls) == 2 and not any(c[0] == "hf" for c in calls)

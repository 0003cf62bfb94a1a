"""Units of any torch network as a scorer: a layer by dotted module name, channels, a position.

``cnn:model=alexnet,layer=features.10,channels=[0,1,2]`` scores channels 0-2 of ImageNet-trained
AlexNet's ``features.10`` at the centre of its feature map. The unit convention follows
the reference TorchScorer: for a 4-D output ``(B, C, H, W)`` a unit is ``out[:, c, x, y]``
(``x`` indexes H, ``y`` indexes W; default the centre ``(H // 2, W // 2)``); for a 2-D
output ``(B, C)`` it is ``out[:, c]``.

The forward hook stores a **clone** of what it selects: a following in-place ReLU would
otherwise overwrite a stored view of a pre-ReLU activation (the defect fixed in AMOD
f920479). With ``truncate=True`` (default) the hook ends the forward pass right after the
layer, so later layers are never computed.

Preprocessing: grey -> RGB, an optional receptive-field paste (the image resized to a box
and pasted on a 0.5-grey canvas, ``paste=[top,left,size]``), a resize to ``input_size``
and ImageNet normalisation.

Weights: a named torchvision model always gets its pretrained ImageNet weights, found by
``actmax.core.weights`` (``weights=/path/file``, ``ACTMAX_<MODEL>_WEIGHTS``, ``$ACTMAX_WEIGHTS_DIR``,
torch hub's ``checkpoints/`` folder); when the file is nowhere local that is one error naming it
and how to provide it. It is downloaded only when asked (``download=True`` or
``actmax weights --download torchvision-<model>``), with ``torch.hub.download_url_to_file``
(torchvision's sha256 prefix checked) and read with ``weights_only=True``: no pickle runs. A random
network only when asked: ``weights=random,seed=N`` (seeded, and said in the run's manifest).
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from actmax.core.errors import InputError, WeightsError
from actmax.core.registry import scorers
from actmax.core.weights import WeightSpec, register_weights, torchvision_env_var
from actmax.scorers.base import Scorer, to_channels, to_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _StopForward(Exception):
    """Raised by the hook to end the forward pass once the layer has run (truncation)."""


# -- torchvision's weight files (the kernel's resolver finds them; `actmax weights` lists them) ---------
TORCHVISION_URL = "https://download.pytorch.org/models/"
TORCHVISION_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth", "vgg16": "vgg16-397923af.pth",
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth", "resnet18": "resnet18-f37072fd.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
}
"""torchvision's default ImageNet weights (torchvision 0.13+ file names; the part after the last
'-' is the first hex digits of the file's sha256, which torchvision itself checks)."""


def torchvision_spec(model_name: str, filename: str, *, description: str | None = None) -> WeightSpec:
    """The entry of a torchvision model's default ImageNet weight file (used by the ``cnn`` scorer)."""
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]
    return WeightSpec(
        name=f"torchvision-{model_name}", filename=filename,
        description=description or f"torchvision {model_name} ImageNet weights (cnn scorer)",
        env_var=torchvision_env_var(model_name), option=f"cnn:model={model_name},weights=",
        legacy=("torch_hub_checkpoints",), used_by=f"scorer cnn:model={model_name}",
        url=TORCHVISION_URL + filename, sha256_prefix=prefix if all(c in "0123456789abcdef" for c in prefix) else None)


for _model, _file in TORCHVISION_FILES.items():
    register_weights(torchvision_spec(_model, _file))


# -- building networks -------------------------------------------------------------------------
def torchvision_weight_spec(model_name: str) -> Any:
    """The ``actmax.core.weights`` entry of a torchvision model's default ImageNet weights (registered once)."""
    import torchvision
    from actmax.core.weights import KNOWN_WEIGHTS, register_weights

    if f"torchvision-{model_name}" in KNOWN_WEIGHTS:
        return KNOWN_WEIGHTS[f"torchvision-{model_name}"]
    try:
        enum = torchvision.models.get_model_weights(model_name)
    except (ValueError, KeyError) as exc:
        raise InputError(f"cnn: torchvision has no pretrained weights for {model_name!r}: {exc}; "
                         "use weights=/path/to/a/state_dict or weights=random,seed=0") from exc
    default = enum.DEFAULT
    spec = torchvision_spec(model_name, os.path.basename(default.url),
                            description=f"torchvision {model_name} ImageNet weights ({default})")
    return register_weights(spec)


RANDOM = "random"


def build_torchvision(model_name: str, *, weights: str | None = None, seed: int | None = None,
                      download: bool = False) -> nn.Module:
    """A torchvision classification model by name with its pretrained ImageNet weights.

    ``weights``: None (the default file, resolved locally or downloaded when ``download``), a
    path to a state dict, or ``"random"`` for a random network seeded with ``seed`` (default 0).
    """
    import torchvision
    from actmax.core.weights import record_random

    available = torchvision.models.list_models()
    if model_name not in available:
        close = difflib.get_close_matches(model_name, available, n=5)
        raise InputError(f"cnn: unknown torchvision model {model_name!r}" +
                         (f"; did you mean {close}?" if close else f"; known: {', '.join(available[:20])}..."))
    random_net = str(weights).strip().lower() == RANDOM if weights is not None else False
    if seed is not None and not random_net:
        raise InputError("cnn: seed= seeds a random network; it needs weights=random")
    kwargs: dict[str, Any] = {"weights": None}
    if model_name.startswith(("inception", "googlenet")):
        kwargs.update(aux_logits=False, init_weights=True)
    seed = 0 if seed is None else int(seed)
    with torch.random.fork_rng(devices=[]):   # random init is seeded and leaves the global RNG alone
        torch.manual_seed(seed)
        model = torchvision.models.get_model(model_name, **kwargs)
    if random_net:
        record_random(f"torchvision-{model_name}", seed=seed, used_by=f"scorer cnn:model={model_name}")
    else:
        _load_pretrained(model, model_name, weights, download=download)
    return model


def _load_pretrained(model: nn.Module, model_name: str, weights: str | None, *, download: bool) -> None:
    from actmax.core.weights import load_into, load_state_dict_file, resolve

    if weights and Path(weights).expanduser().is_file():
        path = Path(str(weights)).expanduser()
    else:
        spec = torchvision_weight_spec(model_name)
        try:
            path = resolve(spec, weights, download=download, used_by=f"scorer cnn:model={model_name}")
        except WeightsError as exc:
            raise WeightsError(f"cnn: {exc} For a random network instead, ask for one: "
                               f"cnn:model={model_name},weights=random,seed=0.") from exc
    state = load_state_dict_file(path, what=f"cnn {model_name} weights")
    load_into(model, state, what=f"cnn {model_name} weights", source=str(path))


def find_module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule at dotted ``layer`` (a clear error listing close names if it does not exist)."""
    modules = dict(model.named_modules())
    if layer in modules and layer != "":
        return modules[layer]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(layer, names, n=6, cutoff=0.5)
    hint = f"did you mean {close}?" if close else f"some layers: {names[:12]}"
    raise InputError(f"cnn: the model has no layer {layer!r}; {hint}")


def resize_and_pad(images: torch.Tensor, size: int | Sequence[int], offset: Sequence[int],
                   canvas_size: int | Sequence[int], *, fill: float = 0.5) -> torch.Tensor:
    """Resize images to ``size`` (h, w) and paste them at ``offset`` (top, left) on a grey canvas.

    This places a stimulus inside a unit's receptive field; the canvas is the network's input.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    ch, cw = (canvas_size, canvas_size) if isinstance(canvas_size, int) else (int(canvas_size[0]), int(canvas_size[1]))
    top, left = int(offset[0]), int(offset[1])
    if h < 1 or w < 1 or top < 0 or left < 0 or top + h > ch or left + w > cw:
        raise InputError(f"resize_and_pad: a {h}x{w} box at (top={top}, left={left}) does not fit a {ch}x{cw} canvas")
    canvas = images.new_full((images.shape[0], images.shape[1], ch, cw), fill)
    canvas[:, :, top:top + h, left:left + w] = to_size(images, (h, w))
    return canvas


# -- the scorer ---------------------------------------------------------------------------------
@scorers.register("cnn")
class CNNScorer(Scorer):
    """Channels of one layer of a torch network (torchvision name or module), via a cloning hook."""

    differentiable = True

    def __init__(self, model: str | nn.Module = "alexnet", layer: str = "features.10",
                 channels: int | Sequence[int] | None = None, x: int | None = None, y: int | None = None,
                 weights: str | None = None, seed: int | None = None, download: bool = False,
                 pretrained: bool | None = None, input_size: int = 224,
                 normalize: bool = True, paste: Sequence[int] | None = None, in_channels: int = 3,
                 truncate: bool = True, device: str = "cpu") -> None:
        super().__init__()
        if pretrained is False:
            raise InputError("cnn: pretrained=False is gone (it built an unseeded random network); ask for "
                             "a seeded random network with weights=random,seed=0, or drop it for ImageNet weights")
        if isinstance(model, str):
            self.model_name = model
            net = build_torchvision(model, weights=weights, seed=seed, download=download)
        elif isinstance(model, nn.Module):
            if weights or seed is not None or download:
                raise InputError("cnn: weights/seed/download apply to torchvision names; load a module's weights yourself")
            self.model_name, net = type(model).__name__, model
        else:
            raise InputError(f"cnn: model must be a torchvision name or an nn.Module, got {type(model).__name__}")
        if in_channels not in (1, 3):
            raise InputError(f"cnn: in_channels must be 1 or 3, got {in_channels}")
        self.net = net.to(device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.layer, self.truncate = layer, bool(truncate)
        self.input_size, self.normalize, self.in_channels = int(input_size), bool(normalize), int(in_channels)
        self.paste = None if paste is None else [int(v) for v in paste]
        if self.paste is not None and len(self.paste) not in (3, 4):
            raise InputError(f"cnn: paste must be [top, left, size] or [top, left, height, width], got {paste}")
        mean = IMAGENET_MEAN if in_channels == 3 else (sum(IMAGENET_MEAN) / 3,)
        std = IMAGENET_STD if in_channels == 3 else (sum(IMAGENET_STD) / 3,)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self._module = find_module(self.net, layer)
        self._stored: torch.Tensor | None = None
        self._active = False
        self._index: tuple[Any, ...] | None = None
        self._handle = self._module.register_forward_hook(self._hook)
        # one probe pass tells the layer's output shape (channels, map size)
        shape = self._probe_shape(device)
        self.output_shape = shape
        n_ch = shape[0]
        if channels is None:
            chans = list(range(n_ch))
        elif isinstance(channels, int):
            chans = [channels]
        else:
            chans = [int(c) for c in channels]
        if not chans:
            raise InputError("cnn: channels is empty")
        bad = [c for c in chans if not 0 <= c < n_ch]
        if bad:
            raise InputError(f"cnn: channels {bad} out of range: layer {layer!r} has {n_ch} channels")
        self.channels = chans
        if len(shape) == 3:
            h, w = shape[1], shape[2]
            self.x = h // 2 if x is None else int(x)
            self.y = w // 2 if y is None else int(y)
            if not (0 <= self.x < h and 0 <= self.y < w):
                raise InputError(f"cnn: position (x={self.x}, y={self.y}) outside layer {layer!r}'s {h}x{w} map "
                                 "(x indexes height, y indexes width)")
        elif len(shape) == 1:
            if x is not None or y is not None:
                raise InputError(f"cnn: layer {layer!r} has no spatial map (output (B, {n_ch})); drop x/y")
            self.x = self.y = None
        else:
            raise InputError(f"cnn: layer {layer!r} outputs shape (B, {', '.join(map(str, shape))}); "
                             "only (B, C, H, W) and (B, C) layers are supported")
        self.units = len(chans)
        self.register_buffer("channel_index", torch.tensor(chans, dtype=torch.long), persistent=False)

    # -- hook -------------------------------------------------------------------------------------
    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not self._active:                     # only the scorer's own passes record (and stop)
            return
        out = output[0] if isinstance(output, (tuple, list)) else output
        if self._index is None:                  # probe pass: keep only the shape
            self._stored = out.detach().clone()
        elif len(self._index) == 2:              # (B, C, H, W) at (x, y); basic indexing gives a view
            x, y = self._index
            self._stored = out[:, :, x, y].clone()[:, self.channel_index]
        else:
            self._stored = out.clone()[:, self.channel_index]
        if self.truncate:
            raise _StopForward

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        self._stored, self._active = None, True
        try:
            self.net(x)
        except _StopForward:
            pass
        finally:
            self._active = False
        if self._stored is None:
            raise RuntimeError(f"cnn: layer {self.layer!r} did not run during the forward pass")
        out, self._stored = self._stored, None
        return out

    def _probe_shape(self, device: str) -> tuple[int, ...]:
        probe = torch.full((1, self.in_channels, self.input_size, self.input_size), 0.5, device=device)
        with torch.no_grad():
            out = self._run(self.preprocess_tensor(probe, paste=False))
        self._index = None
        return tuple(out.shape[1:])

    # -- scoring ----------------------------------------------------------------------------------
    def preprocess_tensor(self, images: torch.Tensor, *, paste: bool = True) -> torch.Tensor:
        """[0, 1] images -> the network's input (channels, RF paste, resize, normalisation)."""
        x = to_channels(images, self.in_channels)
        if paste and self.paste is not None:
            top, left = self.paste[0], self.paste[1]
            size = self.paste[2:] if len(self.paste) == 4 else self.paste[2]
            x = resize_and_pad(x, size, (top, left), self.input_size)
        else:
            x = to_size(x, self.input_size)
        if self.normalize:
            x = (x - self.mean) / self.std
        return x

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        dev = self.mean.device
        self._index = (self.x, self.y) if self.x is not None else ()
        out = self._run(self.preprocess_tensor(images.to(dev)))
        return out.to(images.device)

    @property
    def unit_names(self) -> list[str]:
        where = f"@{self.x},{self.y}" if self.x is not None else ""
        return [f"{self.model_name}.{self.layer}:{c}{where}" for c in self.channels]

    def remove_hook(self) -> None:
        self._handle.remove()


def receptive_field_map(scorer: CNNScorer, unit: int = 0, *, reps: int = 16, seed: int = 0,
                        batch: int = 8) -> torch.Tensor:
    """Mean |d unit / d input| over uniform-noise images, (input_size, input_size): where the unit looks."""
    scorer.check_unit(unit)
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(scorer.input_size, scorer.input_size)
    paste, scorer.paste = scorer.paste, None
    try:
        done = 0
        while done < reps:
            n = min(batch, reps - done)
            img = torch.rand(n, scorer.in_channels, scorer.input_size, scorer.input_size, generator=gen)
            img = img.to(scorer.mean.device).requires_grad_(True)
            out = scorer(img)[:, unit].sum()
            (grad,) = torch.autograd.grad(out, img)
            total += grad.abs().mean(1).sum(0).cpu()
            done += n
    finally:
        scorer.paste = paste
    return total / reps


def receptive_field_box(rf_map: torch.Tensor, *, rel_threshold: float = 0.05) -> list[int]:
    """A square ``[top, left, size]`` around the part of ``rf_map`` above ``rel_threshold`` x max,
    shifted to lie inside the map: the ``paste`` box for :class:`CNNScorer`."""
    m = rf_map.detach().float()
    if m.ndim != 2 or float(m.max()) <= 0:
        raise InputError("receptive_field_box: the map must be 2-D with a positive maximum")
    rows, cols = torch.nonzero(m >= rel_threshold * m.max(), as_tuple=True)
    top, bottom = int(rows.min()), int(rows.max()) + 1
    left, right = int(cols.min()), int(cols.max()) + 1
    size = max(bottom - top, right - left)
    h, w = m.shape
    size = min(size, h, w)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    top = int(min(max(round(cy - size / 2), 0), h - size))
    left = int(min(max(round(cx - size / 2), 0), w - size))
    return [top, left, size]


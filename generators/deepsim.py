"""DeePSim upconvolution generators (Dosovitskiy & Brox 2016), the fc6 space of the Ponce lab.

The network is ``self.G``, an ``nn.Sequential`` whose layer names and shapes are those of the
public checkpoints ``binxu/DeePSim_DosovitskiyBrox2016`` ``upconvGAN_<variant>.pt`` (``G.defc7``,
``G.defc6``, ``G.defc5``, ``G.deconv5``, ``G.conv5_1`` ... ``G.deconv0``; LeakyReLU 0.3;
ConvTranspose2d everywhere after the linear layers), so those files load key for key. As in the
reference loader, every key has ``".1."`` rewritten to ``"."`` before loading.

Output convention: the raw network output is BGR, mean-subtracted, on a 0-255 scale. ``render``
flips it to RGB, adds the mean [123, 117, 104] and divides by 255, then clamps to [0, 1]:
that clamp is where actmax's [0, 1] image contract is applied (as the reference ``visualize``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from actmax.core.registry import generators
from actmax.core.weights import WeightSpec, load_into, load_state_dict_file, record_random, register_weights, resolve
from actmax.generators.base import Generator, seeded_normal
from actmax.core.errors import InputError

RGB_MEAN = (123.0, 117.0, 104.0)
"""ImageNet channel means (R, G, B) on the 0-255 scale, added back to the raw output."""

VARIANTS = ("fc6", "fc6_eucl", "fc7", "fc8", "pool5")
LEAK = 0.3

LAB_SIGMA0 = 3.0
"""The lab's CholeskyCMAES step size in DeePSim fc6 (``label2optimizer`` 'CholCMA': init_sigma 3)."""
LAB_POPSIZE = 40
"""The lab's population in fc6: CholeskyCMAES' default 4 + floor(3 log2 4096) = 40 (GECCO: 75 x 40)."""
LAB_SPHERE_NORM = 300.0
"""The lab's SphereCMA radius in fc6 (``ZOHA_Sphere_lr_euclid(sphere_norm=300)``)."""
LAB_PRESETS = {"CholCMA": f"cholesky_cma:sigma0={LAB_SIGMA0},popsize={LAB_POPSIZE}"}
"""The lab's named optimizer presets for DeePSim fc6 (the default when a run names no optimizer).
fc7 and fc8 use the same preset; pool5 (9216-d) has no published one and gets sigma0 3 with
CholeskyCMAES' default population."""


def _act() -> nn.LeakyReLU:
    # Not in-place: a forward hook on a layer's output must not be overwritten by the next ReLU.
    return nn.LeakyReLU(negative_slope=LEAK, inplace=False)


def _upsampling_stack(first_in: int) -> list[tuple[str, nn.Module]]:
    """deconv5 ... deconv0: 4x4 -> 256x256 (k4/s2/p1 doubles, k3/s1/p1 keeps the size)."""
    def up(cin: int, cout: int) -> nn.ConvTranspose2d:
        return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)

    def same(cin: int, cout: int) -> nn.ConvTranspose2d:
        return nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=1, padding=1)

    return [
        ("deconv5", up(first_in, 256)), ("relu_deconv5", _act()),
        ("conv5_1", same(256, 512)), ("relu_conv5_1", _act()),
        ("deconv4", up(512, 256)), ("relu_deconv4", _act()),
        ("conv4_1", same(256, 256)), ("relu_conv4_1", _act()),
        ("deconv3", up(256, 128)), ("relu_deconv3", _act()),
        ("conv3_1", same(128, 128)), ("relu_conv3_1", _act()),
        ("deconv2", up(128, 64)), ("relu_deconv2", _act()),
        ("deconv1", up(64, 32)), ("relu_deconv1", _act()),
        ("deconv0", up(32, 3)),
    ]


def build_upconv(variant: str) -> tuple[nn.Sequential, tuple[int, ...]]:
    """The generator network of a variant and the shape of its latent code."""
    if variant in ("fc6", "fc6_eucl", "fc7", "fc8"):
        code_len = 1000 if variant == "fc8" else 4096
        layers: list[tuple[str, nn.Module]] = [
            ("defc7", nn.Linear(code_len, 4096)), ("relu_defc7", _act()),
            ("defc6", nn.Linear(4096, 4096)), ("relu_defc6", _act()),
            ("defc5", nn.Linear(4096, 4096)), ("relu_defc5", _act()),
            ("reshape", nn.Unflatten(1, (256, 4, 4))),
        ]
        return nn.Sequential(OrderedDict(layers + _upsampling_stack(256))), (code_len,)
    if variant == "pool5":
        layers = [
            ("Rconv6", nn.Conv2d(256, 512, kernel_size=3, stride=1, padding=1)), ("Rrelu6", _act()),
            ("Rconv7", nn.Conv2d(512, 512, kernel_size=3, stride=1, padding=1)), ("Rrelu7", _act()),
            ("Rconv8", nn.Conv2d(512, 512, kernel_size=3, stride=1, padding=0)), ("Rrelu8", _act()),
        ]
        return nn.Sequential(OrderedDict(layers + _upsampling_stack(512))), (256, 6, 6)
    raise InputError(f"deepsim: unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def rename_public_key(key: str) -> str:
    """Map a key of a public checkpoint to ``self.G``'s names (the reference's ``.1.`` rewrite)."""
    if key.startswith("G."):
        key = key[2:]
    return key.replace(".1.", ".")



# -- DeePSim's weight files (the kernel's resolver finds them; `actmax weights` lists them) ---------
DEEPSIM_REPO = "binxu/DeePSim_DosovitskiyBrox2016"
_DEEPSIM_WHAT = {
    "fc6": "DeePSim generator inverting CaffeNet fc6 (4096-d code -> RGB 256 px), the lab's default",
    "fc6_eucl": "DeePSim fc6 generator trained with a Euclidean loss only (4096-d)",
    "fc7": "DeePSim generator inverting CaffeNet fc7 (4096-d code)",
    "fc8": "DeePSim generator inverting CaffeNet fc8 (1000-d code)",
    "pool5": "DeePSim generator inverting CaffeNet pool5 (256x6x6 code)",
}
for _variant, _what in _DEEPSIM_WHAT.items():
    register_weights(WeightSpec(
        name=f"deepsim-{_variant}", filename=f"upconvGAN_{_variant}.pt", description=_what,
        env_var=f"ACTMAX_DEEPSIM_{_variant.upper()}_WEIGHTS", hub_repo=DEEPSIM_REPO,
        legacy=("torch_hub_checkpoints",), option=f"deepsim:variant={_variant},weights=",
        used_by=f"generator deepsim:variant={_variant}"))

@generators.register("deepsim")
class DeePSimGenerator(Generator):
    """DeePSim upconv GAN (fc6 default: 4096-d code -> RGB 256 px); pretrained public weights.

    Options:
        variant: fc6 (4096-d, the lab's), fc6_eucl, fc7, fc8 (1000-d) or pool5
        weights: path of the weight file (default: looked up; `actmax weights` lists where)
        pretrained: False builds seeded random weights (tests, stand-ins; no file needed)
        size: output image side in pixels (default: the native 256)
        init_std: standard deviation of random start codes
        sigma: CMA step size of this space (default: the lab's 3.0)
        init_seed: seed of random weights and start codes
        download: fetch missing weights from their published location
    """

    def __init__(self, variant: str = "fc6", weights: str | None = None, pretrained: bool = True,
                 size: int | None = None, init_std: float = 1.0, sigma: float | None = None,
                 init_seed: int = 0, download: bool = False) -> None:
        super().__init__()
        self.variant = str(variant)
        with torch.random.fork_rng(devices=[]):  # random weights (pretrained=False) are seeded
            torch.manual_seed(int(init_seed))
            self.G, self.latent_shape = build_upconv(self.variant)
        self.dim = int(torch.Size(self.latent_shape).numel())
        self.channels = 3
        self.native_size = 256
        self.image_size = int(size) if size else self.native_size
        if self.image_size < 1:
            raise InputError(f"deepsim: size must be positive, got {size}")
        self.init_std = float(init_std)
        # fc6: sigma0 = 3 is the lab's CMA preset for this space; no published preset exists for the
        # other variants, so they start from the same value (override with sigma=...).
        self.default_sigma = float(sigma) if sigma is not None else LAB_SIGMA0
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.weights_path: str | None = None
        if pretrained:
            path = resolve(f"deepsim-{self.variant}", weights, download=download)
            self.load_weights(path)
        else:
            if weights:
                raise InputError("deepsim: weights= given together with pretrained=False; drop one of them")
            self._calibrate_random_weights(seed=int(init_seed))
            record_random(f"deepsim-{self.variant}", seed=int(init_seed),
                          used_by=f"generator deepsim:variant={self.variant},pretrained=False")
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def _calibrate_random_weights(self, *, seed: int, out_std: float = 64.0) -> None:
        """Random weights only: rescale each layer (LSUV-style, on a seeded probe batch) so activations
        keep unit spread and the raw output has the spread of natural images (std ~64 on 0-255).
        PyTorch's default init shrinks the signal at every layer, which would render flat grey images."""
        x = seeded_normal(4, self.dim, seed + 1).view(4, *self.latent_shape)
        names = [n for n, m in self.G.named_children() if hasattr(m, "weight")]
        for name, layer in self.G.named_children():
            y = layer(x)
            if name in names:
                gain = (out_std if name == names[-1] else 1.0) / float(y.std())
                layer.weight.mul_(gain)
                layer.bias.mul_(gain)
                y = layer(x)
            x = y

    @property
    def optimizer_preset(self) -> str:
        """The lab's CholCMA preset (sigma0 3, popsize 40); ``sigma=`` overrides the step size."""
        if self.variant == "pool5":
            return f"cholesky_cma:sigma0={self.default_sigma!r}"
        return f"cholesky_cma:sigma0={self.default_sigma!r},popsize={LAB_POPSIZE}"

    @property
    def sphere_norm(self) -> float:
        """The lab's SphereCMA radius, 300 (published for fc6; the other variants inherit it)."""
        return LAB_SPHERE_NORM

    def load_weights(self, path: Any) -> None:
        """Load a public ``upconvGAN_<variant>.pt`` (or an equivalent safetensors file) into ``G``."""
        what = f"DeePSim {self.variant} weights"
        state = load_state_dict_file(path, what=what)
        load_into(self.G, state, what=what, source=str(path), rename=rename_public_key)
        self.weights_path = str(path)

    def raw(self, codes: torch.Tensor) -> torch.Tensor:
        """The network's own output: BGR, mean-subtracted, 0-255 scale (no clamp)."""
        x = codes.to(self.rgb_mean.dtype).view(codes.shape[0], *self.latent_shape)
        return self.G(x)

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        rgb = self.raw(codes).flip(1)  # BGR -> RGB
        images = torch.clamp((rgb + self.rgb_mean) / 255.0, 0.0, 1.0)  # the [0, 1] contract
        if self.image_size != images.shape[-1]:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=self.image_size < images.shape[-1])
            images = images.clamp(0.0, 1.0)
        return images

    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        """``randn * init_std`` as the reference ``sample_vector`` (std 1 by default)."""
        return seeded_normal(n, self.dim, seed, std=self.init_std)

    def extra_repr(self) -> str:
        return f"variant={self.variant}, " + super().extra_repr()

"""BigGAN-deep-256 through pytorch-pretrained-biggan, as the Ponce lab's BigGAN space.

The code is 256-d: ``[noise 128 | class embedding 128]``, fed straight to
``model.generator(code, truncation)`` (bypassing ``BigGAN.forward``, which would embed a one-hot
class), so evolution moves through the class-embedding space as well as the noise. Truncation
0.7 (the reference default) only selects and interpolates the precomputed batch-norm statistics;
it does not clip the noise. Output tanh in [-1, 1] becomes ``clamp((x + 1) / 2, 0, 1)``.

Initial codes are ``0.7 * randn(128)`` joined with a column of ``embeddings.weight`` (shape
(128, n_classes)): the given ``class_id`` or a class drawn per code from the seed.

Weights: ``biggan-deep-256-config.json`` and ``biggan-deep-256-pytorch_model.bin`` (or
``config.json``/``pytorch_model.bin``) from the ``weights=`` folder or file,
``ACTMAX_BIGGAN_WEIGHTS``, ``$ACTMAX_WEIGHTS_DIR``, ``torch.hub.get_dir()`` (where the reference
keeps them), pytorch-pretrained-biggan's download cache, or a Hugging Face repo given by
``hub_repo=``/``ACTMAX_BIGGAN_HUB_REPO`` (no mirror is assumed by default). The state dict is read
with ``torch.load(weights_only=True)`` and loaded strictly; spectral norm is then folded into
plain weights (exactly what the eval-mode forward computes), which makes rendering stateless.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from actmax.core.errors import InputError, WeightsError
from actmax.core.registry import generators
from actmax.core.weights import (Located, WeightSpec, load_into, load_state_dict_file, record_random,
                                 register_weights, resolve)
from actmax.generators.base import Generator

BIGGAN_DEEP_256 = {
    "output_dim": 256, "z_dim": 128, "class_embed_dim": 128, "channel_width": 128,
    "num_classes": 1000, "attention_layer_position": 8, "eps": 1e-4, "n_stats": 51,
    "layers": [[False, 16, 16], [True, 16, 16], [False, 16, 16], [True, 16, 8], [False, 8, 8],
               [True, 8, 8], [False, 8, 8], [True, 8, 4], [False, 4, 4], [True, 4, 2],
               [False, 2, 2], [True, 2, 1]],
}
"""Architecture of biggan-deep-256 (6 upsamplings 4 -> 256 px, attention at 64 px); used for
``pretrained=False`` only: pretrained runs read the shipped config file."""

TINY = {
    "output_dim": 64, "z_dim": 128, "class_embed_dim": 128, "channel_width": 4,
    "num_classes": 10, "attention_layer_position": 2, "eps": 1e-4, "n_stats": 51,
    "layers": [[True, 16, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1]],
}
"""A small random BigGAN-deep (64 px, 10 classes, 4 upsamplings) with the same code layout, for tests.
(A block that changes width must halve it, and the last block must end at ``channel_width``.)"""

CONFIGS = {"biggan-deep-256": BIGGAN_DEEP_256, "full": BIGGAN_DEEP_256, "tiny": TINY}

LAB_PRESETS = {
    "CholCMA": "cholesky_cma:sigma0=0.2,popsize=28",
    "CholCMA_class": "cholesky_cma:sigma0=0.06,popsize=25",
    "CholCMA_noise": "cholesky_cma:sigma0=0.3,popsize=25",
}
"""The lab's named CholeskyCMAES presets in BigGAN (``label2optimizer``): the whole 256-d code
(sigma0 0.2; lambda = 4 + floor(3 log2 256) = 28), the 128-d class embedding with the noise fixed
(sigma0 0.06) and the 128-d noise with the class fixed (sigma0 0.3; lambda 25 at 128-d).
``biggan:search=full|class|noise`` picks the searched part and with it the preset."""
SEARCH = {"full": "CholCMA", "class": "CholCMA_class", "noise": "CholCMA_noise"}
LAB_SIGMA = {"full": 0.2, "class": 0.06, "noise": 0.3}


def _require_package() -> Any:
    try:
        import pytorch_pretrained_biggan
    except ImportError as exc:
        raise ImportError(
            "the biggan generator needs the package pytorch-pretrained-biggan: "
            "pip install 'actmax[gan]' (or pip install pytorch-pretrained-biggan)") from exc
    return pytorch_pretrained_biggan


def _config_from(config: str | Mapping[str, Any]) -> Any:
    pkg = _require_package()
    if isinstance(config, str):
        if config in CONFIGS:
            return pkg.BigGANConfig.from_dict(dict(CONFIGS[config]))
        path = Path(config).expanduser()
        if path.is_file():
            return _config_from_file(path)
        raise InputError(f"biggan: config must be one of {', '.join(CONFIGS)}, a JSON file or a dict; "
                         f"got {config!r}")
    return pkg.BigGANConfig.from_dict(dict(config))


def _config_from_file(path: Path) -> Any:
    pkg = _require_package()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"BigGAN config {str(path)!r} is not readable JSON (corrupt or truncated?): {exc}") from exc
    if not isinstance(data, dict) or "layers" not in data or "z_dim" not in data:
        raise WeightsError(f"BigGAN config {str(path)!r} is not a pytorch-pretrained-biggan config "
                           "(no 'layers' / 'z_dim')")
    return pkg.BigGANConfig.from_dict(data)


def fold_spectral_norm(model: nn.Module) -> None:
    """Replace every spectral-normed weight by its eval-mode value ``weight_orig / sigma(u, v)``."""
    from torch.nn.utils import remove_spectral_norm
    from torch.nn.utils.spectral_norm import SpectralNorm

    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                remove_spectral_norm(module, name=hook.name)


def _init_unset_parameters(model: nn.Module, power_iterations: int = 20) -> None:
    """Random models only, so they render finite images.

    pytorch-pretrained-biggan creates the unconditional batch norm's affine parameters
    uninitialised (``torch.Tensor(n)``): give them the identity (weight 1, bias 0). The spectral-norm
    vectors u, v start random, so sigma = u^T W v is meaningless (near 0 or negative) until power
    iteration has run: run it here, as training would have.
    """
    from torch.nn.utils.spectral_norm import SpectralNorm

    with torch.no_grad():
        for module in model.modules():
            if not getattr(module, "conditional", True):
                module.weight.fill_(1.0)
                module.bias.zero_()
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, SpectralNorm):
                    for _ in range(power_iterations):
                        hook.compute_weight(module, do_power_iteration=True)



# -- BigGAN's weight files and its reference code's cache rule --------------------------------------
def biggan_cache_dir() -> Path:
    """pytorch-pretrained-biggan's own download cache (its environment variable, else its default)."""
    return Path(os.environ.get("PYTORCH_PRETRAINED_BIGGAN_CACHE",
                               str(Path.home() / ".pytorch_pretrained_biggan"))).expanduser()


def biggan_cached_file(spec: WeightSpec) -> Located | None:
    """pytorch-pretrained-biggan caches a URL as sha256(url)[.sha256(etag)] (+ a .json sidecar)."""
    if not spec.legacy_url:
        return None
    folder = biggan_cache_dir()
    if not folder.is_dir():
        return None
    stem = hashlib.sha256(spec.legacy_url.encode("utf-8")).hexdigest()
    hits = sorted(p for p in folder.glob(stem + "*") if p.is_file() and not p.name.endswith(".json"))
    return Located(hits[-1], "pytorch-pretrained-biggan cache") if hits else None


_BIGGAN_S3 = "https://s3.amazonaws.com/models.huggingface.co/biggan/"
register_weights(WeightSpec(
    name="biggan-deep-256", filename="biggan-deep-256-pytorch_model.bin",
    description="BigGAN-deep 256 px generator weights (pytorch-pretrained-biggan conversion; its config biggan-deep-256-config.json goes beside it)",
    env_var="ACTMAX_BIGGAN_WEIGHTS", aliases=("pytorch_model.bin",), hub_filename="pytorch_model.bin",
    hub_repo_env="ACTMAX_BIGGAN_HUB_REPO", legacy=("torch_hub",),
    legacy_url=_BIGGAN_S3 + "biggan-deep-256-pytorch_model.bin", option="biggan:weights=",
    used_by="generator biggan", url=_BIGGAN_S3 + "biggan-deep-256-pytorch_model.bin",
    download_dir="torch_hub", requires=("biggan-deep-256-config",), finder=biggan_cached_file))
register_weights(WeightSpec(
    name="biggan-deep-256-config", filename="biggan-deep-256-config.json",
    description="BigGAN-deep 256 px architecture config (JSON, read beside the weights)",
    env_var="ACTMAX_BIGGAN_WEIGHTS", aliases=("config.json",), hub_filename="config.json",
    hub_repo_env="ACTMAX_BIGGAN_HUB_REPO", legacy=("torch_hub",),
    legacy_url=_BIGGAN_S3 + "biggan-deep-256-config.json", companion=True, option="biggan:weights=",
    used_by="generator biggan", url=_BIGGAN_S3 + "biggan-deep-256-config.json", download_dir="torch_hub", finder=biggan_cached_file))

@generators.register("biggan")
class BigGANGenerator(Generator):
    """BigGAN-deep-256 (pytorch-pretrained-biggan): 256-d code [noise 128 | class embedding 128]."""

    def __init__(self, weights: str | None = None, pretrained: bool = True, truncation: float = 0.7,
                 class_id: int | None = None, noise_std: float = 0.7, size: int | None = None,
                 config: str | dict | None = None, hub_repo: str | None = None,
                 sigma: float | None = None, init_seed: int = 0, search: str = "full",
                 download: bool = False) -> None:
        super().__init__()
        pkg = _require_package()
        if search not in SEARCH:
            raise InputError(f"biggan: search must be one of {', '.join(SEARCH)} (the searched part of the "
                             f"[noise | class] code), got {search!r}")
        self.search = search
        if not 0.0 < float(truncation) <= 1.0:
            raise InputError(f"biggan: truncation must lie in (0, 1], got {truncation}")
        self.truncation = float(truncation)
        self.noise_std = float(noise_std)
        self.weights_path: str | None = None
        if pretrained:
            if config is not None:
                raise InputError("biggan: config= is for pretrained=False; pretrained weights bring their own")
            weights_file = resolve("biggan-deep-256", weights, hub_repo=hub_repo, download=download)
            config_file = resolve("biggan-deep-256-config", weights, hub_repo=hub_repo, download=download)
            cfg = _config_from_file(config_file)
            self.model = pkg.BigGAN(cfg)
            self.load_weights(weights_file)
        else:
            if weights:
                raise InputError("biggan: weights= given together with pretrained=False; drop one of them")
            cfg = _config_from(config if config is not None else "biggan-deep-256")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(init_seed))
                self.model = pkg.BigGAN(cfg)
            _init_unset_parameters(self.model)
            record_random("biggan-deep-256" if config is None else f"biggan:config={config}", seed=int(init_seed),
                          used_by="generator biggan:pretrained=False")
        self.config = cfg
        if cfg.class_embed_dim != cfg.z_dim:
            raise InputError("biggan: class_embed_dim must equal z_dim (the code is [noise | embedding])")
        self.z_dim = int(cfg.z_dim)
        self.num_classes = int(cfg.num_classes)
        if class_id is not None and not 0 <= int(class_id) < self.num_classes:
            raise InputError(f"biggan: class_id must lie in [0, {self.num_classes}), got {class_id}")
        self.class_id = None if class_id is None else int(class_id)
        self.dim = 2 * self.z_dim if search == "full" else self.z_dim
        self.channels = 3
        self.native_size = int(cfg.output_dim)
        self.image_size = int(size) if size else self.native_size
        self.default_sigma = float(sigma) if sigma is not None else LAB_SIGMA[search]
        self.model.eval()
        fold_spectral_norm(self.model)
        self.model.requires_grad_(False)
        # search=class / noise: the other half of the code stays at the seed's initial code (as the
        # lab's fix_param_wrapper keeps the init code's other half)
        self.register_buffer("fixed_code", self._full_init_codes(1, int(init_seed))[0], persistent=False)

    @property
    def optimizer_preset(self) -> str:
        """The lab's preset for the searched part (CholCMA / CholCMA_class / CholCMA_noise);
        ``sigma=`` overrides the step size."""
        popsize = LAB_PRESETS[SEARCH[self.search]].rsplit("popsize=", 1)[1]
        return f"cholesky_cma:sigma0={self.default_sigma!r},popsize={popsize}"

    def full_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The 256-d [noise | class] codes of searched codes (the fixed half filled in)."""
        if self.search == "full":
            return codes
        fixed = self.fixed_code.to(device=codes.device, dtype=codes.dtype).expand(codes.shape[0], -1)
        if self.search == "class":
            return torch.cat([fixed[:, :self.z_dim], codes], dim=1)
        return torch.cat([codes, fixed[:, self.z_dim:]], dim=1)

    def load_weights(self, path: Any) -> None:
        """Strictly load a pytorch-pretrained-biggan state dict (before spectral norm is folded)."""
        state = load_state_dict_file(path, what="BigGAN weights")
        load_into(self.model, state, what="BigGAN weights", source=str(path))
        self.weights_path = str(path)

    @property
    def class_embeddings(self) -> torch.Tensor:
        """(z_dim, num_classes): column c is the embedding of ImageNet class c."""
        return self.model.embeddings.weight

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        weight = self.class_embeddings
        codes = self.full_codes(codes)
        x = self.model.generator(codes.to(device=weight.device, dtype=weight.dtype), self.truncation)
        images = torch.clamp((x + 1.0) / 2.0, 0.0, 1.0)
        if self.image_size != images.shape[-1]:
            images = torch.nn.functional.interpolate(
                images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                antialias=self.image_size < images.shape[-1]).clamp(0.0, 1.0)
        return images

    def init_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        """``noise_std * randn(z_dim)`` joined with a class-embedding column (seeded class if none given);
        with ``search=class`` / ``noise`` only that half."""
        codes = self._full_init_codes(n, seed)
        if self.search == "class":
            return codes[:, self.z_dim:]
        if self.search == "noise":
            return codes[:, :self.z_dim]
        return codes

    def _full_init_codes(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(n, self.z_dim, generator=g) * self.noise_std
        if self.class_id is None:
            classes = torch.randint(self.num_classes, (n,), generator=g)
        else:
            classes = torch.full((n,), self.class_id, dtype=torch.long)
        embed = self.class_embeddings.detach().cpu().float()[:, classes].T
        return torch.cat([noise, embed], dim=1)

    def extra_repr(self) -> str:
        return f"truncation={self.truncation}, search={self.search}, " + super().extra_repr()


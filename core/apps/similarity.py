"""Image similarity: LPIPS distance (the ``lpips`` package; its trunk weights declared here and found
by :mod:`actmax.core.weights`) and the cosine between feature vectors of any scorer / CNN."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from actmax.core.errors import InputError

# ============================================================================================
# Image similarity
# ============================================================================================
#: lpips net name -> (weights name, torchvision model whose ImageNet weights are the trunk)
LPIPS_TRUNKS = {"alex": ("lpips-alex-trunk", "alexnet"), "vgg": ("lpips-vgg-trunk", "vgg16"),
                "squeeze": ("lpips-squeeze-trunk", "squeezenet1_1")}


def _register_lpips_weights() -> None:
    """The LPIPS trunks' weight specs (torchvision's files, found by the kernel's resolver)."""
    from actmax.core.weights import KNOWN_WEIGHTS, WeightSpec, register_weights
    from actmax.scorers.cnn import TORCHVISION_FILES, TORCHVISION_URL

    for net, (name, model) in LPIPS_TRUNKS.items():
        if name in KNOWN_WEIGHTS:
            continue
        file = TORCHVISION_FILES[model]
        register_weights(WeightSpec(
            name=name, filename=file, description=f"torchvision {model} ImageNet weights (the LPIPS '{net}' trunk)",
            env_var=f"ACTMAX_LPIPS_{net.upper()}_WEIGHTS", hub_repo_env="ACTMAX_LPIPS_HUB_REPO",
            legacy=("torch_hub_checkpoints",), option="analyze similarity --weights ",
            used_by=f"actmax.core.apps.analysis.LPIPSDistance(net='{net}')", url=TORCHVISION_URL + file,
            sha256_prefix=file.rsplit("-", 1)[-1].split(".")[0]))


_register_lpips_weights()


class LPIPSDistance(torch.nn.Module):
    """LPIPS perceptual distance (Zhang et al. 2018) through the ``lpips`` package.

    The linear calibration layers ship inside the ``lpips`` wheel; the trunk (torchvision
    AlexNet / VGG16 / SqueezeNet ImageNet weights) is found by :func:`actmax.core.weights.resolve`
    (``trunk_weights=`` path, ``ACTMAX_LPIPS_<NET>_WEIGHTS``, ``$ACTMAX_WEIGHTS_DIR``,
    ``torch.hub.get_dir()/checkpoints``); nothing is downloaded by torchvision, and a missing
    file is one :class:`~core.errors.WeightsError` naming it. ``random_trunk=True`` skips the
    trunk weights (for tests only: the distance is then not perceptual). Inputs are images in
    [0, 1] (grey is repeated to RGB; images smaller than 64 px are upsampled).
    """

    def __init__(self, net: str = "alex", *, trunk_weights: str | None = None, lin_weights: str | None = None,
                 random_trunk: bool = False) -> None:
        super().__init__()
        try:
            import lpips
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("LPIPS needs the `lpips` package: pip install 'actmax[similarity]'") from exc
        import warnings
        from pathlib import Path

        from actmax.core.weights import load_into, load_state_dict_file, resolve

        if net not in LPIPS_TRUNKS:
            raise InputError(f"LPIPS net must be one of {sorted(LPIPS_TRUNKS)}, got {net!r}")
        from actmax.scorers.cnn import TORCHVISION_FILES
        name, model = LPIPS_TRUNKS[net]
        filename = TORCHVISION_FILES[model]
        trunk_path = None if random_trunk else resolve(name, trunk_weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation of pretrained=False inside lpips
            self.model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        lin_path = Path(lin_weights) if lin_weights else Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
        lin_state = load_state_dict_file(lin_path, what=f"LPIPS {net} linear layers")
        lins = {k: v for k, v in self.model.state_dict().items() if k.startswith("lin") and not k.startswith("lins.")}
        from actmax.core.weights import check_state_dict
        check_state_dict(lins, lin_state, what=f"LPIPS {net} linear layers", source=str(lin_path))
        self.model.load_state_dict(lin_state, strict=False)
        if trunk_path is not None:
            state = load_state_dict_file(trunk_path, what=f"LPIPS {net} trunk ({filename})")
            mapping = _trunk_key_map(self.model.net)
            trunk = {mapping[k]: v for k, v in state.items() if k in mapping}
            load_into(self.model.net, trunk, what=f"LPIPS {net} trunk ({filename})", source=str(trunk_path))
        self.trunk_path = trunk_path
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (B,) between image batches ``a`` and ``b`` (B, C, H, W) in [0, 1] (B may broadcast)."""
        from actmax.core.contracts import check_images
        from actmax.core.contracts import to_channels, to_size

        a, b = check_images(a, where="LPIPS input a"), check_images(b, where="LPIPS input b")
        if a.shape[-2:] != b.shape[-2:]:
            b = to_size(b, tuple(a.shape[-2:]))
        a, b = to_channels(a, 3), to_channels(b, 3)
        if min(a.shape[-2:]) < 64:
            side = (max(64, a.shape[-2]), max(64, a.shape[-1]))
            a = torch.nn.functional.interpolate(a, size=side, mode="bilinear", align_corners=False)
            b = torch.nn.functional.interpolate(b, size=side, mode="bilinear", align_corners=False)
        return self.model(a, b, normalize=True).flatten()


def _trunk_key_map(trunk: torch.nn.Module) -> dict[str, str]:
    """torchvision ``features.<i>.<param>`` -> lpips ``slice<k>.<i>.<param>``."""
    out = {}
    for key in trunk.state_dict():
        slice_name, index, rest = key.split(".", 2)
        out[f"features.{index}.{rest}"] = key
    return out


def lpips_distance(a: torch.Tensor, b: torch.Tensor, *, net: str = "alex", trunk_weights: str | None = None) -> np.ndarray:
    """LPIPS distances between two image batches (one-off helper; build :class:`LPIPSDistance` to reuse)."""
    with torch.no_grad():
        return LPIPSDistance(net, trunk_weights=trunk_weights)(a, b).numpy()


def feature_cosine(a: torch.Tensor, b: torch.Tensor, *, features: Any) -> np.ndarray:
    """Cosine similarity (B,) of feature vectors of two image batches.

    ``features`` is a scorer spec or instance (its responses are the features: e.g. a CNN layer's
    channels or a model population) or any callable / module mapping images to (B, ...) tensors.
    """
    from actmax.core.registry import scorers

    f = scorers.create(features) if isinstance(features, (str, Mapping)) else features
    if not callable(f):
        raise InputError(f"features must be a scorer spec, a module or a callable, got {type(features).__name__}")
    with torch.no_grad():
        fa, fb = f(a).flatten(1).double(), f(b).flatten(1).double()
    if fa.shape[1] != fb.shape[1]:
        raise InputError(f"feature sizes differ: {fa.shape[1]} vs {fb.shape[1]}")
    fa, fb = torch.broadcast_tensors(fa, fb)
    denom = fa.norm(dim=1) * fb.norm(dim=1)
    cos = (fa * fb).sum(1) / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, cos, torch.full_like(cos, float("nan"))).numpy()



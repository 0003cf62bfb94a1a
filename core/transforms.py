"""Image and gradient transforms of the synthesis loop (the recipe around the optimiser).

The gradient optimiser (``ascent``) only moves codes along gradients. Everything that shapes
what the scorer sees or how the gradient is conditioned lives here and is applied by the
synthesis loop (``core/synthesize.py``):

* on the scorer's input, every training step: random translation ``jitter`` (reflected),
  additive pixel ``noise``;
* on the scorer's input, always: a contrast budget, either an RMS ``contrast`` (pixel std about
  each image's own mean, measured at ``contrast_size`` pixels, e.g. the twin's data resolution)
  or the older L2 ``norm`` of ``image - 0.5``; images are only ever scaled *down* to the budget;
* on the gradient of image-shaped codes (pixel space): a Gaussian ``blur_sigma`` decaying
  linearly to 0.01 over the run (Walker et al. 2019) and/or a Fourier ``precondition`` that
  scales the gradient's spectrum by 1/f**p (low frequencies first).

Kernel module: imports nothing from the plugin folders.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from actmax.core.contracts import to_size
from actmax.core.errors import InputError

#: spec keys of the synthesis recipe that belong to the loop's transforms, not to the optimiser
TRANSFORM_KEYS = ("jitter", "noise", "blur_sigma", "precondition", "norm", "contrast", "contrast_size")


# -- image statistics ---------------------------------------------------------------------------
def rms_contrast(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """RMS contrast per image (B,): pixel std about each channel's mean, at ``size`` pixels if given.

    Unlike ``||x - 0.5||`` this ignores the mean luminance, and measured at a fixed ``size``
    it does not depend on the resolution an image was rendered at.
    """
    x = images if size is None else to_size(images, int(size))
    c = x - x.mean(dim=(2, 3), keepdim=True)
    return c.pow(2).mean(dim=(1, 2, 3)).sqrt()


# -- input transforms ---------------------------------------------------------------------------
def limit_input(images: torch.Tensor, *, norm: float | None = None, contrast: float | None = None,
                contrast_size: int | None = None) -> torch.Tensor:
    """Scale each image's contrast down (never up) to a budget.

    ``norm``: L2 norm of ``x - 0.5`` (scaled about grey). ``contrast``: RMS contrast (see
    :func:`rms_contrast`, measured at ``contrast_size``), scaled about each channel's mean, so
    the mean luminance is kept and the result stays inside [0, 1].
    """
    if norm is None and contrast is None:
        return images
    if norm is not None:
        c = images - 0.5
        n = c.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
        images = 0.5 + c * torch.clamp(norm / n, max=1.0)
    if contrast is not None:
        s = rms_contrast(images, contrast_size).clamp_min(1e-8).view(-1, 1, 1, 1)
        mean = images.mean(dim=(2, 3), keepdim=True)
        images = mean + (images - mean) * torch.clamp(contrast / s, max=1.0)
    return images


def jitter(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random integer shift in [-max_shift, max_shift] (reflected)."""
    if max_shift <= 0:
        return images
    n, _, h, w = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).to(images)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shifts[:, 0] * 2 / w
    theta[:, 1, 2] = shifts[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# -- gradient transforms ------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def fourier_precondition(x: torch.Tensor, power: float) -> torch.Tensor:
    """Scale the spectrum of (N, C, H, W) by 1 / max(f, 1)**power (f in cycles per image).

    The weights are normalised to unit RMS, so the gradient's overall size is kept while its
    energy moves towards low spatial frequencies (natural images fall off as 1/f).
    """
    if power <= 0:
        return x
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device, dtype=x.dtype) * h
    fx = torch.fft.rfftfreq(w, device=x.device, dtype=x.dtype) * w
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).clamp_min(1.0)
    weight = f ** -power
    weight = weight / weight.pow(2).mean().sqrt()
    return torch.fft.irfft2(torch.fft.rfft2(x) * weight, s=(h, w))


# -- the loop's transforms ----------------------------------------------------------------------
@dataclass
class SynthesisTransforms:
    """What the synthesis loop does around each optimiser step (see the module docstring)."""

    jitter: int = 1
    noise: float = 0.0
    blur_sigma: float = 0.0
    precondition: float = 0.0
    norm: float | None = None
    contrast: float | None = None
    contrast_size: int | None = None

    def __post_init__(self) -> None:
        self.jitter, self.noise = int(self.jitter), float(self.noise)
        self.blur_sigma, self.precondition = float(self.blur_sigma), float(self.precondition)
        if self.jitter < 0 or self.noise < 0 or self.blur_sigma < 0 or self.precondition < 0:
            raise InputError(f"synthesis transforms must be >= 0, got {self.options()}")
        for key in ("norm", "contrast"):
            value = getattr(self, key)
            if value is not None and not float(value) > 0:
                raise InputError(f"synthesis: {key} must be > 0 or None, got {value}")
            setattr(self, key, None if value is None else float(value))
        if self.contrast_size is not None:
            self.contrast_size = int(self.contrast_size)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "SynthesisTransforms":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in known})

    def options(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def has_budget(self) -> bool:
        return self.norm is not None or self.contrast is not None

    def budget(self) -> dict[str, Any]:
        """The contrast budget applied to the scorer's input (for the run manifest)."""
        if self.contrast is not None:
            return {"kind": "rms_contrast", "value": self.contrast, "measured_at_px": self.contrast_size}
        if self.norm is not None:
            return {"kind": "l2_norm_about_grey", "value": self.norm}
        return {"kind": "none"}

    def input(self, images: torch.Tensor, rng: torch.Generator | None, *, train: bool) -> torch.Tensor:
        """The scorer's input: jittered and noised on training steps, then limited to the budget."""
        if train and rng is not None:
            images = jitter(images, self.jitter, rng)
            if self.noise > 0:
                eps = torch.randn(images.shape, generator=rng).to(images)
                images = (images + self.noise * eps).clamp(0, 1)
        return limit_input(images, norm=self.norm, contrast=self.contrast, contrast_size=self.contrast_size)

    def gradient(self, grad: torch.Tensor, code_shape: tuple[int, ...] | None, step: int,
                 steps: int) -> torch.Tensor:
        """Condition the gradient (targets, dim) of image-shaped codes; other codes pass through."""
        if code_shape is None or (self.blur_sigma <= 0 and self.precondition <= 0):
            return grad
        g = grad.view(-1, *code_shape)
        if self.precondition > 0:
            g = fourier_precondition(g, self.precondition)
        if self.blur_sigma > 0:
            sigma = self.blur_sigma * (1 - step / steps) + 0.01 * step / steps
            g = gaussian_blur(g, sigma)
        return g.reshape(grad.shape)

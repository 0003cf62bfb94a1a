"""Image and gradient transforms of the synthesis loop (the recipe around the optimiser).

The gradient optimiser (``ascent``) only moves codes along gradients. Everything that shapes
what the scorer sees or how the gradient is conditioned lives here and is applied by the
synthesis loop (``core/synthesize.py``):

* on the scorer's input, every training step: random translation ``jitter`` (reflected),
  additive pixel ``noise``;
* on the scorer's input, always: for grey targets of an RGB scorer (``colour``), the image's
  luminance broadcast to the three channels (a grey parameterisation); a contrast budget,
  either an RMS ``contrast`` (pixel std about each image's own mean, measured at
  ``contrast_size`` pixels, e.g. the twin's data resolution) or the older L2 ``norm`` of
  ``image - 0.5``; images are only ever scaled *down* to the budget; then the mean
  ``luminance``: pinned, kept within a budget around grey, or free;
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

from actmax.core.contracts import LUMINANCE, to_size
from actmax.core.errors import InputError

#: spec keys of the synthesis recipe that belong to the loop's transforms, not to the optimiser
TRANSFORM_KEYS = ("jitter", "noise", "blur_sigma", "precondition", "norm", "contrast", "contrast_size",
                  "luminance", "colour")
#: ``colour`` modes: ``auto`` decides per unit from the scorer (see ``core/colour.py``), ``grey``
#: synthesises every unit in grey, ``rgb`` lets every unit use colour.
COLOUR_MODES = ("auto", "grey", "rgb")


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


def parse_luminance(value: Any) -> tuple[str, float | None]:
    """A ``luminance`` recipe value -> (canonical text, fixed mean or None).

    ``free`` (or None/``none``): the mean luminance is not constrained. ``pin``: the mean is
    fixed (at the scorer's ``input_mean``, else 0.5); ``pin:0.4``: fixed at 0.4.
    ``budget:0.05`` (or a bare number): ``|mean - centre| <= 0.05``, centre as for ``pin``.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("free", "none")):
        return "free", None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"budget:{value}"
    if isinstance(value, str):
        text = value.strip().lower()
        head, _, arg = text.partition(":")
        try:
            number = float(arg) if arg else None
        except ValueError:
            number = float("nan")
        if head == "pin" and (number is None or 0 < number < 1):
            return text, number
        if head == "budget" and number is not None and number >= 0:
            return f"budget:{number:g}", None
    raise InputError(f"synthesis: luminance must be 'free', 'pin', 'pin:<mean in (0, 1)>' or "
                     f"'budget:<max |mean - centre| >= 0>', got {value!r}")


def limit_luminance(images: torch.Tensor, *, centre: float = 0.5, deviation: float | None = None) -> torch.Tensor:
    """Shift each image's mean luminance (over channels and pixels) into ``centre +/- deviation``.

    ``deviation=0`` pins the mean, None leaves the image alone. All channels shift by the same
    amount (the chromaticity is kept); where the shifted image would leave [0, 1] its contrast
    about the mean is scaled down just enough to fit. Differentiable: inside the band the mean
    follows the code, outside it is held at the band's edge.
    """
    if deviation is None:
        return images
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    if deviation > 0:
        new = centre + (mean - centre).clamp(-deviation, deviation)
    else:                      # pinned: a constant (a clamp at zero width would pass gradient on exact ties)
        new = torch.full_like(mean, centre)
    dev = images - mean
    above = dev.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    below = (-dev).amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    scale = torch.minimum((1 - new) / above, new / below).clamp(max=1.0)
    return new + dev * scale


def grey_projection(images: torch.Tensor, grey: torch.Tensor | None) -> torch.Tensor:
    """RGB images whose rows ``grey`` (bool, (B,)) become their luminance on all three channels.

    The luminance uses the weights every RGB -> grey conversion in actmax uses, so a unit that
    sees only luminance gets exactly the same input from the grey image as from the colour one.
    """
    if grey is None or images.shape[1] != 3 or not bool(grey.any()):
        return images
    w = images.new_tensor(LUMINANCE).view(1, 3, 1, 1)
    lum = (images * w).sum(1, keepdim=True).expand_as(images)
    return torch.where(grey.to(images.device).view(-1, 1, 1, 1), lum, images)


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
    luminance: Any = "free"
    colour: str = "rgb"

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
        self.luminance, pinned_at = parse_luminance(self.luminance)
        #: the centre of the luminance pin/budget: ``pin:<m>``, else the scorer's (set by the loop), else grey
        self.luminance_centre = 0.5 if pinned_at is None else pinned_at
        self.colour = "rgb" if self.colour is None else str(self.colour).lower()
        if self.colour not in COLOUR_MODES:
            raise InputError(f"synthesis: colour must be one of {COLOUR_MODES}, got {self.colour!r}")
        #: per target (bool, (targets,)): synthesised in grey; set by the synthesis loop
        self.grey_targets: torch.Tensor | None = None

    @property
    def luminance_deviation(self) -> float | None:
        """The allowed ``|mean - centre|``: 0 when pinned, None when free."""
        if self.luminance.startswith("pin"):
            return 0.0
        if self.luminance.startswith("budget:"):
            return float(self.luminance.split(":", 1)[1])
        return None

    def luminance_budget(self) -> dict[str, Any]:
        """The mean-luminance constraint applied to the scorer's input (for the run manifest)."""
        if self.luminance_deviation is None:
            return {"kind": "free"}
        kind = "pin" if self.luminance_deviation == 0 else "budget"
        return {"kind": kind, "centre": self.luminance_centre, "max_deviation": self.luminance_deviation}

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
        """The scorer's input: jittered and noised on training steps; grey targets made grey; then
        limited to the contrast budget and the mean-luminance constraint."""
        if train and rng is not None:
            images = jitter(images, self.jitter, rng)
            if self.noise > 0:
                eps = torch.randn(images.shape, generator=rng).to(images)
                images = (images + self.noise * eps).clamp(0, 1)
        images = grey_projection(images, self.grey_targets)
        images = limit_input(images, norm=self.norm, contrast=self.contrast, contrast_size=self.contrast_size)
        return limit_luminance(images, centre=self.luminance_centre, deviation=self.luminance_deviation)

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

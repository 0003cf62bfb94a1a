"""Gradient ascent on codes for many targets at once (the MEI/LEI synthesiser's optimiser).

One batch holds every target (unit x pole x seed); each element ascends its own signed
objective, so one forward/backward pass serves them all. Robustness transforms on the
scorer's input (random translation jitter, additive noise), a norm or contrast limit on the
scorer's input, a gradient blur for image-shaped codes (pixel space), a code clip, and a
cosine or constant step schedule follow DualNeuron / the Walker et al. 2019 recipe.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from actmax.core.registry import optimizers


def limit_input(images: torch.Tensor, *, norm: float | None = None, contrast: float | None = None) -> torch.Tensor:
    """Scale each image's contrast (x - 0.5) down to an L2 ``norm`` and/or a pixel-std ``contrast``."""
    if norm is None and contrast is None:
        return images
    c = images - 0.5
    scale = torch.ones(images.shape[0], 1, 1, 1, device=images.device, dtype=images.dtype)
    if norm is not None:
        n = c.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
        scale = torch.minimum(scale, norm / n)
    if contrast is not None:
        s = c.flatten(1).std(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
        scale = torch.minimum(scale, contrast / s)
    return 0.5 + c * scale


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


@optimizers.register("ascent")
class Ascent:
    """Gradient ascent (Adam/SGD) on codes of many targets at once, with jitter, blur, norm limit."""

    gradient_based = True

    def __init__(self, *, steps: int = 256, lr: float = 0.05, method: str = "adam",
                 schedule: str = "cosine", jitter: int = 1, noise: float = 0.0,
                 blur_sigma: float = 0.0, norm: float | None = None, contrast: float | None = None,
                 code_clip: float | None = None, seed: int = 0) -> None:
        if method not in ("adam", "sgd"):
            raise ValueError(f"ascent: method must be 'adam' or 'sgd', got {method!r}")
        if schedule not in ("cosine", "constant"):
            raise ValueError(f"ascent: schedule must be 'cosine' or 'constant', got {schedule!r}")
        if steps < 1 or lr <= 0:
            raise ValueError(f"ascent: need steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
        self.steps, self.lr, self.method, self.schedule = int(steps), float(lr), method, schedule
        self.jitter, self.noise, self.blur_sigma = int(jitter), float(noise), float(blur_sigma)
        self.norm, self.contrast, self.code_clip, self.seed = norm, contrast, code_clip, int(seed)
        self.codes: torch.Tensor | None = None
        self.step_index = 0

    # -- set-up ---------------------------------------------------------------------------
    def start(self, codes: torch.Tensor, *, code_shape: tuple[int, ...] | None = None) -> None:
        """Begin from initial codes (targets, dim); ``code_shape`` enables gradient blur."""
        self.codes = codes.detach().clone().requires_grad_(True)
        self.code_shape = code_shape
        if self.method == "adam":
            self.opt = torch.optim.Adam([self.codes], lr=self.lr)
        else:
            self.opt = torch.optim.SGD([self.codes], lr=self.lr, momentum=0.9)
        self.sched = (torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.steps, eta_min=0.0)
                      if self.schedule == "cosine" else None)
        self.rng = torch.Generator().manual_seed(self.seed)
        self.step_index = 0

    def prepare(self, images: torch.Tensor, *, train: bool) -> torch.Tensor:
        """The scorer's input: jittered and noised (training steps only), then norm-limited."""
        if train:
            images = jitter(images, self.jitter, self.rng)
            if self.noise > 0:
                eps = torch.randn(images.shape, generator=self.rng).to(images)
                images = (images + self.noise * eps).clamp(0, 1)
        return limit_input(images, norm=self.norm, contrast=self.contrast)

    # -- one step -------------------------------------------------------------------------
    def step(self, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Ascend ``objective(codes) -> (targets,)`` (each element's signed objective) once.

        Returns the objective values of this step (detached, before the update).
        """
        if self.codes is None:
            raise RuntimeError("ascent: call start(codes) before step()")
        self.opt.zero_grad(set_to_none=True)
        values = objective(self.codes)
        (-values.sum()).backward()
        grad = self.codes.grad
        if self.blur_sigma > 0 and self.code_shape is not None and grad is not None:
            sigma = self.blur_sigma * (1 - self.step_index / self.steps) + 0.01 * self.step_index / self.steps
            self.codes.grad = gaussian_blur(grad.view(-1, *self.code_shape), sigma).view_as(grad)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        if self.code_clip is not None:
            with torch.no_grad():
                self.codes.clamp_(-self.code_clip, self.code_clip)
        self.step_index += 1
        return values.detach()

    @property
    def done(self) -> bool:
        return self.step_index >= self.steps

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": "ascent", "step": self.step_index, "codes": self.codes.detach().clone(),
                "torch_optimizer": self.opt.state_dict(),
                "scheduler": None if self.sched is None else self.sched.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("optimizer") != "ascent":
            raise ValueError("ascent: state dict is not an ascent state")
        self.start(state["codes"], code_shape=getattr(self, "code_shape", None))
        self.opt.load_state_dict(state["torch_optimizer"])
        if self.sched is not None and state["scheduler"] is not None:
            self.sched.load_state_dict(state["scheduler"])
        self.rng.set_state(state["rng"])
        self.step_index = int(state["step"])

"""Gradient ascent on codes for many targets at once (the MEI/LEI synthesiser's optimiser).

One batch holds every target (unit x pole x seed); each element ascends its own signed
objective, so one forward/backward pass serves them all. ``ascent`` only optimises: given the
gradient of the objectives it takes an Adam or SGD (momentum 0.9) step with a cosine or
constant step schedule, and optionally clips codes. The image and gradient transforms of the
recipe (jitter, noise, contrast budget, gradient blur / preconditioning) are applied by the
synthesis loop (``actmax.core.transforms``, ``actmax.core.synthesize``).
"""
from __future__ import annotations

from typing import Any

import torch

from actmax.core.registry import optimizers
# Re-exported for callers that imported the transforms from here before they moved to the loop.
from actmax.core.transforms import gaussian_blur, jitter, limit_input  # noqa: F401
from actmax.core.errors import InputError


@optimizers.register("ascent")
class Ascent:
    """Gradient ascent (Adam or SGD with momentum) on the codes of many targets at once.

    Options:
        steps: number of gradient steps
        lr: learning rate
        method: 'adam' or 'sgd' (with momentum)
        schedule: 'cosine' (learning rate annealed to 0) or 'constant'
        normalize: divide each target's gradient by its RMS before the step
        decay: weight decay of the codes towards 0 (grey in pixel space)
        code_clip: clip codes to [-code_clip, code_clip] after each step (None: no clip)
        seed: random seed (start codes)

    A synthesis recipe also takes the loop's transforms (jitter, blur_sigma, precondition, ...;
    see actmax.core.transforms) in the same spec.
    """

    gradient_based = True

    def __init__(self, *, steps: int = 256, lr: float = 0.05, method: str = "adam",
                 schedule: str = "cosine", normalize: bool = False, decay: float = 0.0,
                 code_clip: float | None = None, seed: int = 0) -> None:
        if method not in ("adam", "sgd"):
            raise InputError(f"ascent: method must be 'adam' or 'sgd', got {method!r}")
        if schedule not in ("cosine", "constant"):
            raise InputError(f"ascent: schedule must be 'cosine' or 'constant', got {schedule!r}")
        if decay < 0:
            raise InputError(f"ascent: decay must be >= 0, got {decay}")
        if steps < 1 or lr <= 0:
            raise InputError(f"ascent: need steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
        self.steps, self.lr, self.method, self.schedule = int(steps), float(lr), method, schedule
        #: divide each target's gradient by its RMS before the step (step size independent of the
        #: scorer's response scale; the spatial profile of the gradient is kept, unlike Adam's)
        self.normalize = bool(normalize)
        #: weight decay of the codes towards 0 (grey in pixel space): entries the objective does
        #: not care about (e.g. the initial noise outside the receptive field) fade away
        self.decay = float(decay)
        self.code_clip, self.seed = code_clip, int(seed)
        self.codes: torch.Tensor | None = None
        self.step_index = 0

    # -- set-up ---------------------------------------------------------------------------
    def start(self, codes: torch.Tensor) -> None:
        """Begin from initial codes (targets, dim)."""
        self.codes = codes.detach().clone().requires_grad_(True)
        if self.method == "adam":
            self.opt = torch.optim.Adam([self.codes], lr=self.lr, weight_decay=self.decay)
        else:
            self.opt = torch.optim.SGD([self.codes], lr=self.lr, momentum=0.9, weight_decay=self.decay)
        self.sched = (torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.steps, eta_min=0.0)
                      if self.schedule == "cosine" else None)
        self.step_index = 0

    # -- one step -------------------------------------------------------------------------
    def ascend(self, grad: torch.Tensor) -> None:
        """One step up ``grad`` (targets, dim), the gradient of each target's objective."""
        if self.codes is None:
            raise RuntimeError("ascent: call start(codes) before ascend(grad)")
        if grad.shape != self.codes.shape:
            raise InputError(f"ascent: gradient shape {tuple(grad.shape)} != codes {tuple(self.codes.shape)}")
        if self.normalize:
            grad = grad / grad.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        self.codes.grad = -grad  # torch optimisers minimise
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        if self.code_clip is not None:
            with torch.no_grad():
                self.codes.clamp_(-self.code_clip, self.code_clip)
        self.codes.grad = None
        self.step_index += 1

    @property
    def done(self) -> bool:
        return self.step_index >= self.steps

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": "ascent", "step": self.step_index, "codes": self.codes.detach().clone(),
                "torch_optimizer": self.opt.state_dict(),
                "scheduler": None if self.sched is None else self.sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("optimizer") != "ascent":
            raise InputError("ascent: state dict is not an ascent state")
        self.start(state["codes"])
        self.opt.load_state_dict(state["torch_optimizer"])
        if self.sched is not None and state["scheduler"] is not None:
            self.sched.load_state_dict(state["scheduler"])
        self.step_index = int(state["step"])

"""A plain ``torch.nn.Module`` or function as a scorer (Python API), as torch-lucent users pass models.

``actmax.synthesize(..., scorer=net)`` / ``actmax.evolve(..., scorer=fn)``: anything that is not
already a scorer is wrapped by :func:`as_scorer`. The object must map images (B, C, H, W) in
[0, 1] to responses (B, units). The wrapper probes it once on a grey batch to learn the input it
takes (channels 3 or 1; side 64, 224, 32, 128, 96 or 256 px, unless ``channels``/``size`` are given)
and how many units it has; afterwards every batch is converted to that input (colour, size), and
every output is checked to be (B, units). It is differentiable when the probe's output carries
gradients back to the images; otherwise synthesis says why not. Anything else is one clear error
naming what is wrong.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from actmax.scorers.base import Scorer

__all__ = ["ModuleScorer", "ScorerWrapError", "as_scorer", "is_scorer"]

#: input sides tried by the probe (the first that the object accepts wins)
PROBE_SIZES = (64, 224, 32, 128, 96, 256)
PROBE_CHANNELS = (3, 1)


from actmax.core.errors import ScorerWrapError  # noqa: E402,F401  (defined in the bottom layer; re-exported)


def is_scorer(obj: Any) -> bool:
    """Already a scorer (an actmax Scorer, or anything with its interface)."""
    return isinstance(obj, Scorer) or all(hasattr(obj, a) for a in ("units", "respond", "check_unit"))


def _name(obj: Any) -> str:
    return type(obj).__name__ if isinstance(obj, nn.Module) else getattr(obj, "__qualname__", repr(obj))


def _as_tensor(out: Any, name: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        raise ScorerWrapError(f"scorer {name}: returned a {type(out).__name__} of tensors; "
                              "return one tensor (B, units)")
    try:
        return torch.as_tensor(np.asarray(out, dtype=np.float32))
    except (TypeError, ValueError):
        raise ScorerWrapError(f"scorer {name}: returned {type(out).__name__}; expected a tensor (B, units)") from None


def _shape_problem(out: torch.Tensor, batch: int) -> str | None:
    if out.ndim == 1 and out.shape[0] == batch:
        return None                                  # one unit: (B,) is taken as (B, 1)
    if out.ndim == 2 and out.shape[0] == batch:
        return None
    hint = ""
    if out.ndim == 4:
        hint = (" (a feature map: pool or index it to one value per unit, e.g. end the network with "
                "nn.AdaptiveAvgPool2d(1), nn.Flatten(), or use the cnn scorer to pick a layer's channels)")
    elif out.ndim >= 1 and out.shape[0] != batch:
        hint = f" (the first dimension must be the batch, {batch})"
    return f"returned shape {tuple(out.shape)}; expected (B, units) = ({batch}, units){hint}"


class ModuleScorer(Scorer):
    """A plain ``nn.Module`` or function images (B, C, H, W) in [0, 1] -> (B, units), shape-checked."""

    def __init__(self, fn: Callable[[torch.Tensor], Any], *, channels: int | None = None,
                 size: int | None = None) -> None:
        super().__init__()
        if not callable(fn):
            raise ScorerWrapError(f"scorer {_name(fn)}: not callable; pass a spec, a Scorer, an nn.Module or "
                                  "a function images (B, C, H, W) -> (B, units)")
        if isinstance(fn, nn.Module):
            self.module = fn                         # a submodule: .to(device) / .eval() reach it
            self.module.eval()
        else:
            self._fn = fn
        self.fn_name = _name(fn)
        self.channels, self.size, self.units, self.differentiable, self.not_differentiable_why = \
            self._probe(channels, size)

    def _call(self, images: torch.Tensor) -> Any:
        return self.module(images) if hasattr(self, "module") else self._fn(images)

    def _probe(self, channels: int | None, size: int | None) -> tuple[int, int, int, bool, str]:
        tried, first_error = [], None
        for c in ([channels] if channels else PROBE_CHANNELS):
            for s in ([size] if size else PROBE_SIZES):
                device = next((p.device for p in self.parameters()), torch.device("cpu"))
                images = torch.full((2, c, s, s), 0.5, device=device, requires_grad=True)
                tried.append(f"({2}, {c}, {s}, {s})")
                try:
                    with torch.enable_grad():
                        out = self._call(images)
                except Exception as exc:  # noqa: BLE001 - wrong input shape: try the next one
                    first_error = first_error or f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
                    continue
                out = _as_tensor(out, self.fn_name)
                problem = _shape_problem(out, 2)
                if problem:
                    raise ScorerWrapError(f"scorer {self.fn_name}: on a grey batch {tried[-1]} it {problem}")
                units = 1 if out.ndim == 1 else int(out.shape[1])
                if units < 1:
                    raise ScorerWrapError(f"scorer {self.fn_name}: returned 0 units")
                grads = out.requires_grad and out.grad_fn is not None
                why = "" if grads else ("its output carries no gradient (computed under torch.no_grad(), "
                                        "detached, or through numpy)")
                return c, s, units, bool(grads), why
        raise ScorerWrapError(f"scorer {self.fn_name}: cannot be called on images; tried {', '.join(tried)} "
                              f"in [0, 1] (first error: {first_error}); a scorer maps images (B, C, H, W) to "
                              "(B, units): pass channels=/size= to ModuleScorer if it needs another input")

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        from actmax.core.contracts import to_channels, to_size

        x = to_size(to_channels(images, self.channels), self.size)
        out = _as_tensor(self._call(x), self.fn_name).to(images.device)
        problem = _shape_problem(out, images.shape[0])
        if problem:
            raise ScorerWrapError(f"scorer {self.fn_name}: {problem}")
        out = out[:, None] if out.ndim == 1 else out
        return out.float()

    def __repr__(self) -> str:
        return (f"ModuleScorer({self.fn_name}, input ({self.channels}, {self.size}, {self.size}), "
                f"units={self.units}, differentiable={self.differentiable})")


def as_scorer(obj: Any) -> Any:
    """A scorer as is; an ``nn.Module`` or function wrapped in :class:`ModuleScorer`; else one clear error."""
    if is_scorer(obj):
        return obj
    if isinstance(obj, nn.Module) or callable(obj):
        return ModuleScorer(obj)
    raise ScorerWrapError(f"cannot use a {type(obj).__name__} as a scorer: pass a spec ('model:kind=simple'), "
                          "a Scorer, an nn.Module or a function images (B, C, H, W) in [0, 1] -> (B, units)")

"""Which units of an RGB scorer are colour-blind (grey), decided from the scorer itself.

A unit is *grey* when its response depends on the image's luminance only: at every pixel of a
few probe images its input gradient points along one colour direction, and that direction
drives all three channels the same way (no colour opponency). Such a unit is synthesised in
grey (``colour=auto`` in the synthesis recipe): whatever colour an RGB synthesis adds is
invisible to it, and only spends the contrast budget. Works on any differentiable scorer
(model neurons, twins, CNN units): it only needs input gradients.

Measured per unit over the probes' gradients g (3 x pixels):

* ``chromatic_share``: the share of gradient energy outside the unit's dominant colour
  direction v (1 - s1^2 / sum s^2 of the 3 x pixels gradient matrix): 0 for a unit that sees
  one fixed mix of R, G and B (any grey conversion), > 0 when different pixels or images
  drive it through different colours (double-opponent, colour-texture units);
* ``colour_direction`` v (sign fixed so it sums to > 0): opponent when a component is negative.

Grey: ``chromatic_share <= GREY_MAX_CHROMATIC_SHARE`` and every component of v >=
``-GREY_MAX_OPPONENT`` (a colour cell's v has a negative component: red-on/green-off).
Kernel module: imports nothing from the plugin folders.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

#: most gradient energy a grey unit may have outside its one colour direction (isotropic: 2/3)
GREY_MAX_CHROMATIC_SHARE = 0.2
#: how negative a grey unit's colour direction may be in any channel (unit vector components)
GREY_MAX_OPPONENT = 0.1
#: probe images: seeded smooth colour noise around grey at this RMS contrast per channel
PROBES, PROBE_CONTRAST = 4, 0.1


def probe_images(n: int, size: int, *, contrast: float = PROBE_CONTRAST, seed: int = 0) -> torch.Tensor:
    """Seeded smooth RGB noise (n, 3, size, size) about 0.5 at RMS ``contrast`` per channel."""
    gen = torch.Generator().manual_seed(seed)
    coarse = max(2, size // 4)
    x = torch.randn(n, 3, coarse, coarse, generator=gen)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    x = x / x.pow(2).mean(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-8) * contrast
    return (0.5 + x).clamp(0, 1)


def colour_tuning(scorer: Any, units: Sequence[int], *, size: int, probes: int = PROBES,
                  seed: int = 0) -> dict[int, dict[str, Any]]:
    """Per unit: ``chromatic_share``, ``colour_direction`` and ``grey`` (see the module docstring).

    A unit whose gradient vanishes at every probe cannot be judged and is left in colour.
    """
    units = list(dict.fromkeys(int(u) for u in units))
    device = next((b.device for b in list(scorer.parameters()) + list(scorer.buffers())), torch.device("cpu"))
    base = probe_images(probes, size, seed=seed).to(device)
    grads = []
    for start in range(0, len(units), 16):                              # 16 units x probes per batch
        chunk = units[start:start + 16]
        x = base.repeat(len(chunk), 1, 1, 1).requires_grad_(True)      # (U * P, 3, H, W)
        index = torch.tensor(chunk, device=device).repeat_interleave(probes)
        with torch.enable_grad():
            resp = scorer(x)
            (g,) = torch.autograd.grad(resp.gather(1, index[:, None]).sum(), x)
        grads.append(g.detach().float().cpu())
    grad = torch.cat(grads).view(len(units), probes, 3, -1).permute(0, 2, 1, 3).reshape(len(units), 3, -1)
    out: dict[int, dict[str, Any]] = {}
    for i, u in enumerate(units):
        g = grad[i]
        energy = float(g.pow(2).sum())
        if not energy > 1e-20:
            out[u] = {"chromatic_share": None, "colour_direction": None, "grey": False}
            continue
        left, s, _ = torch.linalg.svd(g.double(), full_matrices=False)
        v = left[:, 0]
        v = v if float(v.sum()) >= 0 else -v
        share = float(1 - s[0] ** 2 / s.pow(2).sum())
        grey = share <= GREY_MAX_CHROMATIC_SHARE and float(v.min()) >= -GREY_MAX_OPPONENT
        out[u] = {"chromatic_share": round(share, 4), "colour_direction": [round(float(c), 4) for c in v],
                  "grey": bool(grey)}
    return out

"""The contracts every part obeys, checked where data crosses a module boundary.

Images: float tensors (B, C, H, W), C in {1, 3}, values in [0, 1].
Scores: float tensors (B, units).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from actmax.core.errors import ContractError, InputError, OptimizerStateError  # noqa: F401  (ContractError re-exported)

Pole = Literal["high", "low"]
POLES: tuple[str, str] = ("high", "low")




_VALUE_CHECKS: ContextVar[bool] = ContextVar("actmax_value_checks", default=True)


@contextmanager
def shape_checks_only() -> Iterator[None]:
    """Inside a hot loop whose first step was fully checked: keep shape/dtype checks, skip the
    value-range/NaN checks, which need a device-to-host sync on every call."""
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def check_images(images: torch.Tensor, *, where: str = "images", range_tol: float = 1e-4) -> torch.Tensor:
    """Raise a clear error unless ``images`` is a float (B, C, H, W) tensor in [0, 1], C in {1, 3}."""
    if not isinstance(images, torch.Tensor):
        raise ContractError(f"{where}: expected a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ContractError(f"{where}: expected shape (B, C, H, W), got {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ContractError(f"{where}: expected 1 or 3 channels, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ContractError(f"{where}: expected a float tensor in [0, 1], got dtype {images.dtype}")
    if images.numel() and _VALUE_CHECKS.get() and not torch.compiler.is_compiling():
        lo, hi = torch.aminmax(images.detach())
        lo, hi = float(lo), float(hi)
        if lo != lo or hi != hi:
            raise ContractError(f"{where}: contains NaN")
        if lo < -range_tol or hi > 1 + range_tol:
            raise ContractError(f"{where}: values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return images


def check_codes(codes: torch.Tensor, dim: int, *, where: str = "codes") -> torch.Tensor:
    """Raise a clear error unless ``codes`` is a float (n, dim) tensor."""
    if not isinstance(codes, torch.Tensor):
        raise ContractError(f"{where}: expected a torch.Tensor (n, {dim}), got {type(codes).__name__}")
    if codes.ndim != 2 or codes.shape[1] != dim:
        raise ContractError(f"{where}: expected shape (n, {dim}), got {tuple(codes.shape)}")
    if not codes.is_floating_point():
        raise ContractError(f"{where}: expected a float tensor, got dtype {codes.dtype}")
    return codes


def check_scores(scores: torch.Tensor, batch: int, units: int, *, where: str = "scores") -> torch.Tensor:
    """Raise a clear error unless ``scores`` is a finite (batch, units) tensor."""
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (batch, units):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ContractError(f"{where}: expected shape ({batch}, {units}), got {shape}")
    return scores


#: What each kind of part must have (attributes, then methods); see docs/PLUGINS.md.
PART_CONTRACTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "generator": (("dim", "channels", "image_size"), ("forward", "init_codes")),
    "optimizer": ((), ("ask", "tell", "state_dict", "load_state_dict")),
    "gradient optimizer": ((), ("start", "ascend", "state_dict", "load_state_dict")),
    "scorer": (("units",), ("forward",)),
}


#: Optional attributes the loops read, with their defaults (the part base classes declare the same):
#: a part that lacks one gets the default when it is checked, so loops read ``part.x`` directly.
PART_DEFAULTS: dict[str, dict[str, Any]] = {
    "generator": {"optimizer_preset": None, "sphere_norm": None, "code_shape": None, "default_sigma": 1.0,
                  "weights_path": None, "weights_used": ()},
    "optimizer": {"gradient_based": False, "popsize": None, "seed": None},
    "gradient optimizer": {"gradient_based": True, "seed": None},
    "scorer": {"differentiable": False, "input_contrast": None, "input_contrast_size": None, "input_norm": None,
               "size": None, "channels": None, "weights_path": None, "weights_used": (), "state": None},
}


def _declare_defaults(key: str, part: object, label: str) -> None:
    defaults = dict(PART_DEFAULTS.get(key, {}))
    if key == "scorer" and not hasattr(part, "unit_names"):
        defaults["unit_names"] = [str(i) for i in range(int(part.units))]  # type: ignore[attr-defined]
    for name, default in defaults.items():
        if not hasattr(part, name):
            try:
                setattr(part, name, default)
            except (AttributeError, TypeError):
                raise ContractError(f"{label} ({type(part).__name__}) has no {name!r} and takes no attributes; "
                                    f"declare {name} = {default!r} on its class (see docs/PLUGINS.md)") from None


def check_part(kind: str, part: object, label: str) -> object:
    """Raise one :class:`ContractError` naming ``label`` unless ``part`` has what its kind needs.

    Generators need int ``dim``, ``channels``, ``image_size`` and ``forward``/``init_codes``;
    gradient-free optimizers ``ask``/``tell``/``state_dict``/``load_state_dict`` (gradient ones,
    ``gradient_based = True``, ``start``/``step`` instead of ``ask``/``tell``); scorers an int
    ``units`` and ``forward``. Optional attributes the loops read (:data:`PART_DEFAULTS`) that the
    part lacks are set to their defaults.
    """
    key = "gradient optimizer" if kind == "optimizer" and getattr(part, "gradient_based", False) else kind
    if key not in PART_CONTRACTS:
        return part
    attrs, methods = PART_CONTRACTS[key]
    missing = [a for a in attrs if not hasattr(part, a)]
    missing += [f"{m}()" for m in methods if not callable(getattr(part, m, None))]
    not_int = [a for a in attrs if hasattr(part, a) and
               (isinstance(getattr(part, a), bool) or not isinstance(getattr(part, a), (int, np.integer))
                or int(getattr(part, a)) < 1)]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if not_int:
        problems.append("not a positive int: " + ", ".join(f"{a}={getattr(part, a)!r}" for a in not_int))
    if problems:
        raise ContractError(f"{label} breaks the {key} contract ({type(part).__name__}): "
                            + "; ".join(problems) + " (see docs/PLUGINS.md)")
    _declare_defaults(key, part, label)
    return part


def check_pole(pole: str) -> str:
    if pole not in POLES:
        raise ContractError(f"pole must be 'high' (MEI) or 'low' (LEI), got {pole!r}")
    return pole


@dataclass(frozen=True)
class Target:
    """One optimisation target: a unit, a pole and a seed."""

    unit: int
    pole: str = "high"
    seed: int = 0

    @property
    def sign(self) -> float:
        return 1.0 if self.pole == "high" else -1.0


def make_targets(units: Sequence[int], poles: Sequence[str] = ("high",),
                 seeds: Sequence[int] = (0,)) -> list[Target]:
    """All units x poles x seeds, in that nesting order (unit outermost)."""
    for p in poles:
        check_pole(p)
    return [Target(int(u), p, int(s)) for u in units for p in poles for s in seeds]


LUMINANCE = (0.299, 0.587, 0.114)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey <-> RGB conversion (luminance weights for RGB -> grey)."""
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 1:
        w = images.new_tensor(LUMINANCE).view(1, 3, 1, 1)
        return (images * w).sum(1, keepdim=True)
    return images.expand(-1, 3, -1, -1)


def to_size(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize to ``size``."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    shrink = images.shape[-1] > hw[1] or images.shape[-2] > hw[0]
    return F.interpolate(images, size=hw, mode="bilinear", align_corners=False, antialias=shrink)


def check_asked_codes(codes: object, dim: int, label: str) -> object:
    """Raise a :class:`ContractError` blaming the optimizer ``label`` unless ``ask()`` gave (pop, dim) codes."""
    shape = getattr(codes, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != dim or shape[0] < 1:
        raise ContractError(f"{label}: ask() returned codes of shape {shape if shape is not None else type(codes).__name__}, "
                            f"expected (pop, {dim}) for this generator space; this is a bug in the optimizer")
    return codes


def check_state_roundtrip(opt: Any) -> None:
    """Save ``opt.state_dict()`` with ``torch.save`` and load it with ``weights_only=True``.

    Raises :class:`OptimizerStateError` naming the optimizer and the offending key (e.g. a numpy
    float in the state), so a bad state fails at the first checkpoint instead of at ``resume``.
    """
    import io


    name = getattr(opt, "part_name", None) or f"optimizer {type(opt).__name__}"
    state = opt.state_dict()
    buf = io.BytesIO()
    try:
        torch.save(state, buf)
        buf.seek(0)
        torch.load(buf, weights_only=True)
        return
    except Exception as exc:  # noqa: BLE001 - report any failure with the optimizer's name
        error = exc
    bad = _unsafe_entry(state, "state")
    if bad is None:
        raise OptimizerStateError(f"{name}: state_dict() does not round-trip through "
                                  f"torch.load(weights_only=True): {error}") from None
    path, value = bad
    raise OptimizerStateError(
        f"{name}: state_dict() entry {path} holds a {type(value).__module__}.{type(value).__name__}, "
        "which torch.load(weights_only=True) refuses; keep only tensors, int, float, str, bool, None, "
        "lists, tuples and dicts (e.g. float(x) for a numpy float, torch.from_numpy(a) for an array)")


_SAFE_SCALARS = (bool, int, float, str, type(None))


def _unsafe_entry(value: Any, path: str) -> tuple[str, Any] | None:
    """First entry (path, value) of a state that weights_only loading would refuse, or None."""
    if isinstance(value, torch.Tensor) or type(value) in _SAFE_SCALARS:
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) not in _SAFE_SCALARS:
                return f"{path} key {k!r}", k
            found = _unsafe_entry(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _unsafe_entry(v, f"{path}[{i}]")
            if found:
                return found
        return None
    return path, value


def check_device(device: str | torch.device | None) -> torch.device:
    """A usable torch device, or one ValueError (unknown name, or CUDA/MPS asked for but absent)."""
    if device is None or device == "":
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps "
                         f"({str(exc).splitlines()[0][:120]})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but no CUDA GPU is available here "
                             "(torch.cuda.is_available() is False); leave --device out to run on the CPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} asked for, but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {device!r} is not supported: use cpu, cuda, cuda:N or mps")
    return dev


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (2.5, "3" and True are errors, never silently truncated)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)

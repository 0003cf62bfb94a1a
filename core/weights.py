"""One place that finds and loads pretrained weights (generators now, CNN/LPIPS scorers later).

Resolution order for a known weight file (first hit wins):

1. an explicit local path (a generator's ``weights=`` option), then the weight's own
   environment variable (e.g. ``ACTMAX_DEEPSIM_FC6_WEIGHTS``): a file, or a folder holding it;
2. ``$ACTMAX_WEIGHTS_DIR/<filename>``;
3. the places the reference code keeps them (``torch.hub.get_dir()``, pytorch-pretrained-biggan's
   cache), so files that are already on a lab machine are found;
4. the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``), read without network;
5. the Hugging Face hub, unless offline (``HF_HUB_OFFLINE=1`` or ``ACTMAX_OFFLINE=1``).

Files are read with safetensors or ``torch.load(weights_only=True)``: nothing is unpickled.
A missing file is ONE :class:`~core.errors.WeightsError` naming the file, the hub id and the
option / variable that points actmax at a local copy; mismatched keys or shapes and corrupt or
truncated files get their own clear errors.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from actmax.core.errors import WeightsError

__all__ = [
    "WeightSpec", "Located", "KNOWN_WEIGHTS", "register_weights", "weight_spec", "locate",
    "resolve", "load_state_dict_file", "load_into", "check_state_dict", "weights_table",
    "hf_cache_dir", "is_offline",
]

WEIGHTS_DIR_ENV = "ACTMAX_WEIGHTS_DIR"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WeightSpec:
    """A weight file actmax knows how to find.

    ``filename`` is the name looked for in folders; ``aliases`` are other accepted names there.
    ``hub_repo``/``hub_filename`` say where it lives on the Hugging Face hub (``hub_repo_env``
    names a variable that sets or overrides the repo, for mirrors). ``legacy`` lists the
    reference code's own locations to search: ``"torch_hub"``, ``"torch_hub_checkpoints"``,
    ``"biggan_cache"`` (with ``legacy_url``). ``companion=True`` marks a file that sits next to
    another (a config beside its weights): an explicit *file* path means "look in its folder".
    """

    name: str
    filename: str
    description: str
    env_var: str
    option: str = "weights="
    hub_repo: str | None = None
    hub_filename: str | None = None
    hub_repo_env: str | None = None
    aliases: tuple[str, ...] = ()
    legacy: tuple[str, ...] = ()
    legacy_url: str | None = None
    companion: bool = False
    used_by: str = ""

    def repo(self, override: str | None = None) -> str | None:
        if override:
            return override
        if self.hub_repo_env and os.environ.get(self.hub_repo_env, "").strip():
            return os.environ[self.hub_repo_env].strip()
        return self.hub_repo

    @property
    def names(self) -> tuple[str, ...]:
        return (self.filename, *self.aliases)


@dataclass(frozen=True)
class Located:
    """Where a weight file was found: the path and a short description of the source."""

    path: Path
    source: str


KNOWN_WEIGHTS: dict[str, WeightSpec] = {}


def register_weights(spec: WeightSpec) -> WeightSpec:
    """Add a weight file to the table (scorers with pretrained weights call this on import)."""
    old = KNOWN_WEIGHTS.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"weights {spec.name!r} are already registered with a different spec")
    KNOWN_WEIGHTS[spec.name] = spec
    return spec


def weight_spec(name: str | WeightSpec) -> WeightSpec:
    if isinstance(name, WeightSpec):
        return name
    try:
        return KNOWN_WEIGHTS[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN_WEIGHTS))}") from None


# -- the table of known weights ------------------------------------------------------------
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

_BIGGAN_S3 = "https://s3.amazonaws.com/models.huggingface.co/biggan/"
register_weights(WeightSpec(
    name="biggan-deep-256", filename="biggan-deep-256-pytorch_model.bin",
    description="BigGAN-deep 256 px generator weights (pytorch-pretrained-biggan conversion; its config biggan-deep-256-config.json goes beside it)",
    env_var="ACTMAX_BIGGAN_WEIGHTS", aliases=("pytorch_model.bin",), hub_filename="pytorch_model.bin",
    hub_repo_env="ACTMAX_BIGGAN_HUB_REPO", legacy=("torch_hub", "biggan_cache"),
    legacy_url=_BIGGAN_S3 + "biggan-deep-256-pytorch_model.bin", option="biggan:weights=",
    used_by="generator biggan"))
register_weights(WeightSpec(
    name="biggan-deep-256-config", filename="biggan-deep-256-config.json",
    description="BigGAN-deep 256 px architecture config (JSON, read beside the weights)",
    env_var="ACTMAX_BIGGAN_WEIGHTS", aliases=("config.json",), hub_filename="config.json",
    hub_repo_env="ACTMAX_BIGGAN_HUB_REPO", legacy=("torch_hub", "biggan_cache"),
    legacy_url=_BIGGAN_S3 + "biggan-deep-256-config.json", companion=True, option="biggan:weights=",
    used_by="generator biggan"))


# -- environment -----------------------------------------------------------------------------
def is_offline() -> bool:
    """True when the hub must not be contacted (read at call time, not import time)."""
    for var in ("HF_HUB_OFFLINE", "ACTMAX_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return True
    return False


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment at call time (huggingface_hub's rules)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _torch_hub_dir() -> Path:
    return Path(torch.hub.get_dir())


def _biggan_cache_dir() -> Path:
    return Path(os.environ.get("PYTORCH_PRETRAINED_BIGGAN_CACHE",
                               str(Path.home() / ".pytorch_pretrained_biggan"))).expanduser()


# -- locating ----------------------------------------------------------------------------------
def _in_folder(folder: Path, spec: WeightSpec) -> Path | None:
    for name in spec.names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _explicit(path: str | os.PathLike[str], spec: WeightSpec, how: str) -> Located:
    """Resolve a path the user gave; a wrong one is an error, never a silent fallback."""
    p = Path(path).expanduser()
    if p.is_file() and not spec.companion:
        return Located(p, how)
    folder = p.parent if p.is_file() else p
    if folder.is_dir():
        found = _in_folder(folder, spec)
        if found is not None:
            return Located(found, how)
        raise WeightsError(
            f"{spec.description}: {how} points at {str(p)!r}, but no file named "
            f"{' or '.join(repr(n) for n in spec.names)} is in {str(folder)!r}")
    raise WeightsError(f"{spec.description}: {how} points at {str(p)!r}, which does not exist")


def _legacy_locations(spec: WeightSpec) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for kind in spec.legacy:
        if kind == "torch_hub":
            out.append((_torch_hub_dir(), "torch hub dir"))
        elif kind == "torch_hub_checkpoints":
            out.append((_torch_hub_dir() / "checkpoints", "torch hub checkpoints"))
    return out


def _biggan_cached_file(spec: WeightSpec) -> Path | None:
    """pytorch-pretrained-biggan caches a URL as sha256(url)[.sha256(etag)] (+ a .json sidecar)."""
    if "biggan_cache" not in spec.legacy or not spec.legacy_url:
        return None
    folder = _biggan_cache_dir()
    if not folder.is_dir():
        return None
    stem = hashlib.sha256(spec.legacy_url.encode("utf-8")).hexdigest()
    hits = sorted(p for p in folder.glob(stem + "*") if p.is_file() and not p.name.endswith(".json"))
    return hits[-1] if hits else None


def _hf_cached(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo, filename, cache_dir=str(hf_cache_dir()))
    except Exception:  # noqa: BLE001 - a malformed cache entry is just "not cached"
        return None
    return Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None


def locate(name: str | WeightSpec, path: str | os.PathLike[str] | None = None, *,
           hub_repo: str | None = None) -> Located | None:
    """Find a weight file locally (never downloads). ``None`` if it is nowhere local.

    An explicit ``path`` or a set environment variable that does not lead to the file raises
    :class:`WeightsError` instead of falling back, so a typo is never silently ignored.
    """
    spec = weight_spec(name)
    if path is not None and str(path) != "":
        return _explicit(path, spec, f"option {spec.option}")
    env_value = os.environ.get(spec.env_var, "").strip()
    if env_value:
        return _explicit(env_value, spec, f"environment variable {spec.env_var}")
    base = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if base:
        found = _in_folder(Path(base).expanduser(), spec)
        if found is not None:
            return Located(found, f"${WEIGHTS_DIR_ENV}")
    for folder, label in _legacy_locations(spec):
        found = _in_folder(folder, spec)
        if found is not None:
            return Located(found, label)
    cached = _biggan_cached_file(spec)
    if cached is not None:
        return Located(cached, "pytorch-pretrained-biggan cache")
    repo = spec.repo(hub_repo)
    if repo:
        hit = _hf_cached(repo, spec.hub_filename or spec.filename)
        if hit is not None:
            return Located(hit, f"Hugging Face cache ({repo})")
    return None


def _how_to_get(spec: WeightSpec, repo: str | None) -> str:
    local = (f"point actmax at a local copy with the option `{spec.option}/path/to/{spec.filename}`, "
             f"the environment variable {spec.env_var}=/path/to/{spec.filename} (a file or its folder), "
             f"or put it in ${WEIGHTS_DIR_ENV}/" + (" or torch.hub.get_dir()" if "torch_hub" in spec.legacy else "")
             + (" or torch.hub.get_dir()/checkpoints/" if "torch_hub_checkpoints" in spec.legacy else ""))
    if repo:
        hub = (f"; or download it once with `hf download {repo} "
               f"{spec.hub_filename or spec.filename}` (or `actmax weights --download {spec.name}`)")
    elif spec.hub_repo_env:
        hub = (f"; no Hugging Face mirror is configured for it: set {spec.hub_repo_env}=<owner/repo> "
               f"to a hub repo holding {spec.hub_filename or spec.filename}")
    else:
        hub = ""
    return local + hub


def _missing_message(spec: WeightSpec, repo: str | None, reason: str) -> str:
    hub = f"Hugging Face hub id {repo!r}, file {spec.hub_filename or spec.filename!r}" if repo \
        else "no Hugging Face hub id configured"
    return (f"{spec.description}: weight file {spec.filename!r} not found ({hub}; {reason}). "
            f"To use it, {_how_to_get(spec, repo)}.")


def resolve(name: str | WeightSpec, path: str | os.PathLike[str] | None = None, *,
            hub_repo: str | None = None, download: bool = True) -> Path:
    """The path of a weight file: local first, then the hub (unless offline or ``download=False``)."""
    spec = weight_spec(name)
    found = locate(spec, path, hub_repo=hub_repo)
    if found is not None:
        return found.path
    repo = spec.repo(hub_repo)
    if not repo:
        raise WeightsError(_missing_message(spec, repo, "not in any local location"))
    if is_offline() or not download:
        why = "offline mode (HF_HUB_OFFLINE/ACTMAX_OFFLINE) and not in the local cache" if is_offline() \
            else "not in any local location and downloading is off"
        raise WeightsError(_missing_message(spec, repo, why))
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, spec.hub_filename or spec.filename, cache_dir=str(hf_cache_dir())))
    except Exception as exc:  # noqa: BLE001 - network, auth or missing-file errors all mean "not available"
        raise WeightsError(_missing_message(
            spec, repo, f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )) from exc


# -- loading -----------------------------------------------------------------------------------
def load_state_dict_file(path: str | os.PathLike[str], *, what: str = "weights") -> dict[str, torch.Tensor]:
    """Read a state dict (safetensors, or a torch file through ``weights_only=True``) onto the CPU."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{what}: file {str(p)!r} does not exist")
    if p.stat().st_size == 0:
        raise WeightsError(f"{what}: file {str(p)!r} is empty (an interrupted download?); delete it and fetch it again")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            state: Any = load_file(str(p), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise WeightsError(f"{what}: {str(p)!r} is not a readable safetensors file (corrupt or "
                               f"truncated?): {exc}") from exc
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
                raise WeightsError(
                    f"{what}: {str(p)!r} holds Python objects besides tensors; actmax loads weights with "
                    "torch.load(weights_only=True) and never unpickles arbitrary objects (that could run "
                    "code). Save a plain state dict or a .safetensors file instead.") from exc
            raise WeightsError(f"{what}: {str(p)!r} is corrupt or truncated (cannot be read as a "
                               f"torch file: {str(exc).splitlines()[0]}); delete it and fetch it again") from exc
        except Exception as exc:  # noqa: BLE001 - garbage bytes raise anything from the unpickler
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WeightsError(f"{what}: {str(p)!r} is corrupt or truncated (cannot be read as a "
                               f"torch file: {first}); delete it and fetch it again") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{what}: {str(p)!r} holds a {type(state).__name__}, not a state dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{what}: {str(p)!r} is not a plain state dict (entry {bad[0]!r} is not a tensor)")
    return dict(state)


def check_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], *,
                     what: str = "weights", source: str = "") -> None:
    """Raise one clear error unless ``given`` has exactly the keys and shapes of ``expected``."""
    where = f" in {source}" if source else ""
    for key, tensor in expected.items():
        if key in given and tuple(given[key].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"{what}: shape mismatch for key {key!r}{where}: the file has {tuple(given[key].shape)}, "
                f"the model expects {tuple(tensor.shape)} (wrong variant or a different architecture?)")
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        raise WeightsError(f"{what}: the state dict{where} does not match the model: {'; '.join(parts)} "
                           "(wrong file or wrong variant?)")


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, what: str = "weights",
              source: str = "", rename: Callable[[str], str] | None = None) -> None:
    """Check keys and shapes, then load ``state`` into ``module`` strictly (dtype cast to the model's)."""
    if rename is not None:
        renamed: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            new = rename(key)
            if new in renamed:
                raise WeightsError(f"{what}: keys collide after renaming ({key!r} -> {new!r})")
            renamed[new] = value
        state = renamed
    check_state_dict(module.state_dict(), state, what=what, source=source)
    module.load_state_dict(dict(state), strict=True)


# -- listing (``actmax weights``) --------------------------------------------------------------
def weights_table(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per known weight: where it is (or ``None``) and how to get it."""
    rows = []
    for name in sorted(names or KNOWN_WEIGHTS):
        spec = weight_spec(name)
        repo = spec.repo()
        try:
            found = locate(spec)
            path, source, problem = (str(found.path), found.source, "") if found else (None, "", "")
        except WeightsError as exc:
            path, source, problem = None, "", str(exc)
        rows.append({"name": spec.name, "file": spec.filename, "description": spec.description,
                     "hub_repo": repo, "env_var": spec.env_var, "used_by": spec.used_by,
                     "present": path is not None, "path": path, "source": source, "problem": problem,
                     "how_to_get": "" if path else _how_to_get(spec, repo)})
    return rows


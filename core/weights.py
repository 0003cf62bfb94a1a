"""One place that finds and loads pretrained weights (generators now, CNN/LPIPS scorers later).

Resolution order for a known weight file (first hit wins):

1. an explicit local path (a generator's ``weights=`` option), then the weight's own
   environment variable (e.g. ``ACTMAX_DEEPSIM_FC6_WEIGHTS``): a file, or a folder holding it;
2. ``$ACTMAX_WEIGHTS_DIR/<filename>``;
3. the places the reference code keeps them (``torch.hub.get_dir()``, pytorch-pretrained-biggan's
   cache), so files that are already on a lab machine are found;
4. the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``), read without network.

Nothing is downloaded unless asked: :func:`download` (``actmax weights --download NAME``, or a
part's ``download=True`` option) fetches from the Hugging Face hub, or from the file's own
published URL (torchvision's, pytorch-pretrained-biggan's), into the place the reference code
uses, and checks it. Files are read with safetensors or ``torch.load(weights_only=True)``:
nothing is unpickled. :func:`verify` checks a file against what is known of it (the sha256 the
hub publishes, which the Hugging Face cache keeps as the blob's name; torchvision's sha256 prefix
in the file name; a known size) and its structure (zip / safetensors / JSON): a truncated or
empty file is ``corrupt``. Every file resolved or loaded (and every random network built on
request) is logged for the run's provenance (:mod:`actmax.core.provenance`).
A missing file is ONE :class:`~core.errors.WeightsError` naming the file, the hub id and the
option / variable that points actmax at a local copy; mismatched keys or shapes and corrupt or
truncated files get their own clear errors.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from actmax.core.errors import InputError, WeightsError

__all__ = [
    "WeightSpec", "Located", "KNOWN_WEIGHTS", "register_weights", "weight_spec", "load_weight_tables", "locate",
    "resolve", "download", "fetch", "verify", "sha256_file", "load_state_dict_file", "load_into",
    "check_state_dict", "weights_table", "hf_cache_dir", "is_offline", "record_use",
    "record_random",
]

WEIGHTS_DIR_ENV = "ACTMAX_WEIGHTS_DIR"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WeightSpec:
    """A weight file actmax knows how to find.

    ``filename`` is the name looked for in folders; ``aliases`` are other accepted names there.
    ``hub_repo``/``hub_filename`` say where it lives on the Hugging Face hub (``hub_repo_env``
    names a variable that sets or overrides the repo, for mirrors). ``legacy`` lists the
    reference code's own locations to search: ``"torch_hub"``, ``"torch_hub_checkpoints"``;
    ``finder`` is a part's own cache lookup (BigGAN's, with ``legacy_url``). ``companion=True`` marks a file that sits next to
    another (a config beside its weights): an explicit *file* path means "look in its folder".
    ``url`` is the file's own published address (downloaded only on request, into
    ``download_dir``: ``"torch_hub_checkpoints"`` or ``"torch_hub"``); ``sha256`` /
    ``sha256_prefix`` / ``size`` are what is known of the file, checked by :func:`verify`;
    ``requires`` names companion files fetched with it.
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
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    requires: tuple[str, ...] = ()
    download_dir: str = "torch_hub_checkpoints"
    #: a part's own lookup in its reference code's cache (e.g. pytorch-pretrained-biggan's), or None
    finder: Callable[["WeightSpec"], "Located | None"] | None = field(default=None, compare=False)

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
        raise InputError(f"weights {spec.name!r} are already registered with a different spec")
    KNOWN_WEIGHTS[spec.name] = spec
    return spec


def weight_spec(name: str | WeightSpec) -> WeightSpec:
    if isinstance(name, WeightSpec):
        return name
    if name not in KNOWN_WEIGHTS:
        load_weight_tables()
    try:
        return KNOWN_WEIGHTS[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN_WEIGHTS))}") from None


# -- the parts' tables ---------------------------------------------------------------------------
#: modules whose import registers weight specs beyond the registered parts (imported on first need;
#: generators and scorers register theirs when their registry loads them)
WEIGHT_TABLES: list[str] = ["actmax.core.apps.similarity"]
_TABLES_LOADED = False


def load_weight_tables() -> None:
    """Import the parts (and :data:`WEIGHT_TABLES`), which register their weight specs beside their code."""
    global _TABLES_LOADED
    if _TABLES_LOADED:
        return
    _TABLES_LOADED = True
    import importlib

    from actmax.core.registry import registry_for
    for kind in ("generator", "scorer"):
        registry_for(kind).names()
    for module in WEIGHT_TABLES:
        importlib.import_module(module)


def torchvision_env_var(model_name: str) -> str:
    return "ACTMAX_" + "".join(ch if ch.isalnum() else "_" for ch in model_name.upper()) + "_WEIGHTS"


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
    if spec.finder is not None:   # the part's own rule for its reference code's cache
        found_by_part = spec.finder(spec)
        if found_by_part is not None:
            return found_by_part
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
        fetch = (f"; or download it once, on request: `actmax weights --download {spec.name}` "
                 f"(or `hf download {repo} {spec.hub_filename or spec.filename}`, or the option download=True)")
    elif spec.url:
        fetch = (f"; or download it once, on request, from {spec.url}: `actmax weights --download {spec.name}` "
                 "(or the option download=True)")
    else:
        fetch = ""
    if not repo and spec.hub_repo_env:
        fetch += (f"; to use a Hugging Face mirror instead, set {spec.hub_repo_env}=<owner/repo> "
                  f"to a hub repo holding {spec.hub_filename or spec.filename}")
    return local + fetch


def _missing_message(spec: WeightSpec, repo: str | None, reason: str) -> str:
    hub = f"Hugging Face hub id {repo!r}, file {spec.hub_filename or spec.filename!r}" if repo \
        else "no Hugging Face hub id configured"
    return (f"{spec.description}: weight file {spec.filename!r} not found ({hub}; {reason}). "
            f"To use it, {_how_to_get(spec, repo)}.")


def resolve(name: str | WeightSpec, path: str | os.PathLike[str] | None = None, *,
            hub_repo: str | None = None, download: bool = False, used_by: str | None = None) -> Path:
    """The path of a weight file found locally; fetched (see :func:`fetch`) only if ``download=True``.

    Without ``download`` nothing touches the network: a file that is nowhere local is one
    :class:`WeightsError` naming it and every way to provide it. The file used is logged for the
    run's provenance.
    """
    spec = weight_spec(name)
    found = locate(spec, path, hub_repo=hub_repo)
    if found is not None and download and path is None and verify(found.path, spec)[0] == "corrupt":
        found = None                      # asked to download: replace a corrupt local copy
    if found is not None:
        record_use(found.path, name=spec.name, source=found.source, used_by=used_by or spec.used_by)
        return found.path
    repo = spec.repo(hub_repo)
    if not download:
        why = ("offline mode (HF_HUB_OFFLINE/ACTMAX_OFFLINE) and not in the local cache" if is_offline()
               else "not in any local location; actmax downloads only when asked")
        raise WeightsError(_missing_message(spec, repo, why))
    got = fetch(spec, hub_repo=hub_repo)
    record_use(got, name=spec.name, source="downloaded", used_by=used_by or spec.used_by)
    return got


def fetch(name: str | WeightSpec, *, hub_repo: str | None = None) -> Path:
    """Fetch a known weight file (and the files it ``requires``) on explicit request, then verify it.

    From the Hugging Face hub when a repo is known (into the HF cache), else from the file's own
    URL with ``torch.hub.download_url_to_file`` (sha256 prefix checked where known) into
    ``torch.hub.get_dir()`` or its ``checkpoints/`` folder, where the reference code keeps it.
    A file already present locally is not fetched again. Never unpickles anything.
    """
    spec = weight_spec(name)
    for extra in spec.requires:
        fetch(extra, hub_repo=hub_repo)
    found = locate(spec, hub_repo=hub_repo)
    if found is not None and verify(found.path, spec)[0] != "corrupt":
        return found.path
    repo = spec.repo(hub_repo)
    if is_offline():
        raise WeightsError(_missing_message(spec, repo, "download asked for, but offline mode "
                                            "(HF_HUB_OFFLINE/ACTMAX_OFFLINE) is on"))
    try:
        if repo:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(repo, spec.hub_filename or spec.filename, cache_dir=str(hf_cache_dir())))
        elif spec.url:
            folder = _torch_hub_dir() / ("checkpoints" if spec.download_dir == "torch_hub_checkpoints" else "")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / spec.filename
            torch.hub.download_url_to_file(spec.url, str(path), hash_prefix=spec.sha256_prefix, progress=True)
        else:
            raise WeightsError(_missing_message(spec, repo, "no download source is known"))
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, auth, hash or missing-file errors all mean "not available"
        raise WeightsError(_missing_message(
            spec, repo, f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )) from exc
    status, detail = verify(path, spec)
    if status == "corrupt":
        if not repo:
            path.unlink(missing_ok=True)   # never leave a bad download where the resolver would find it
        raise WeightsError(f"{spec.description}: the downloaded file {str(path)!r} is corrupt ({detail})"
                           + ("; it was deleted, try again" if not repo else "; delete it and try again"))
    return path


download = fetch  # the public name (``actmax weights --download``); ``resolve``'s flag shadows it there


# -- verification (actmax.core.weight_checks) ---------------------------------------------------
from actmax.core.weight_checks import sha256_file, verify  # noqa: E402,F401  (re-exported)


# -- the log of files used (for provenance): owned by each run, see actmax.core.runs.context ----
from actmax.core.runs.context import record_random, record_use  # noqa: E402,F401  (re-exported for parts)


# -- loading -----------------------------------------------------------------------------------
def load_state_dict_file(path: str | os.PathLike[str], *, what: str = "weights") -> dict[str, torch.Tensor]:
    """Read a state dict (safetensors, or a torch file through ``weights_only=True``) onto the CPU."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{what}: file {str(p)!r} does not exist")
    record_use(p, used_by=what)
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
def weights_table(names: Iterable[str] | None = None, *, check: bool = True) -> list[dict[str, Any]]:
    """One row per known weight: where it is (or ``None``), its state and how to get it.

    ``status`` is ``verified`` / ``present`` / ``corrupt`` (see :func:`verify`; ``check=False``
    skips hashing) or ``missing``; ``present`` (bool) is True only for a usable file.
    """
    load_weight_tables()
    rows = []
    for name in sorted(names or KNOWN_WEIGHTS):
        spec = weight_spec(name)
        repo = spec.repo()
        try:
            found = locate(spec)
            path, source, problem = (str(found.path), found.source, "") if found else (None, "", "")
        except WeightsError as exc:
            path, source, problem = None, "", str(exc)
        status, detail, size = "missing", "", None
        if path is not None:
            size = Path(path).stat().st_size
            status, detail = verify(path, spec) if check else ("present", "not checked")
        fix = ""
        if status == "corrupt":
            fix = (f"delete {path} and fetch it again: `actmax weights --download {spec.name}`, or "
                   + _how_to_get(spec, repo).split("; or download")[0])
        rows.append({"name": spec.name, "file": spec.filename, "description": spec.description,
                     "hub_repo": repo, "env_var": spec.env_var, "used_by": spec.used_by, "url": spec.url,
                     "status": status, "present": status in ("verified", "present"), "path": path,
                     "bytes": size, "detail": detail, "source": source, "problem": problem, "fix": fix,
                     "how_to_get": "" if path else _how_to_get(spec, repo)})
    return rows

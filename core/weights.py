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
    "resolve", "download", "fetch", "verify", "sha256_file", "load_state_dict_file", "load_into",
    "check_state_dict", "weights_table", "hf_cache_dir", "is_offline", "record_use",
    "record_random", "take_used",
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
    used_by="generator biggan", url=_BIGGAN_S3 + "biggan-deep-256-pytorch_model.bin",
    download_dir="torch_hub", requires=("biggan-deep-256-config",)))
register_weights(WeightSpec(
    name="biggan-deep-256-config", filename="biggan-deep-256-config.json",
    description="BigGAN-deep 256 px architecture config (JSON, read beside the weights)",
    env_var="ACTMAX_BIGGAN_WEIGHTS", aliases=("config.json",), hub_filename="config.json",
    hub_repo_env="ACTMAX_BIGGAN_HUB_REPO", legacy=("torch_hub", "biggan_cache"),
    legacy_url=_BIGGAN_S3 + "biggan-deep-256-config.json", companion=True, option="biggan:weights=",
    used_by="generator biggan", url=_BIGGAN_S3 + "biggan-deep-256-config.json", download_dir="torch_hub"))

_TORCHVISION = "https://download.pytorch.org/models/"
TORCHVISION_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth", "vgg16": "vgg16-397923af.pth",
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth", "resnet18": "resnet18-f37072fd.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
}
"""torchvision's default ImageNet weights (torchvision 0.13+ file names; the part after the last
'-' is the first hex digits of the file's sha256, which torchvision itself checks)."""


def torchvision_env_var(model_name: str) -> str:
    return "ACTMAX_" + "".join(ch if ch.isalnum() else "_" for ch in model_name.upper()) + "_WEIGHTS"


def torchvision_spec(model_name: str, filename: str, *, description: str | None = None) -> WeightSpec:
    """The entry of a torchvision model's default ImageNet weight file (used by the ``cnn`` scorer)."""
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]
    return WeightSpec(
        name=f"torchvision-{model_name}", filename=filename,
        description=description or f"torchvision {model_name} ImageNet weights (cnn scorer)",
        env_var=torchvision_env_var(model_name), option=f"cnn:model={model_name},weights=",
        legacy=("torch_hub_checkpoints",), used_by=f"scorer cnn:model={model_name}",
        url=_TORCHVISION + filename, sha256_prefix=prefix if all(c in "0123456789abcdef" for c in prefix) else None)


for _model, _file in TORCHVISION_FILES.items():
    register_weights(torchvision_spec(_model, _file))

for _net, (_model, _label) in {"alex": ("alexnet", "alexnet"), "vgg": ("vgg16", "vgg16"),
                               "squeeze": ("squeezenet1_1", "squeezenet1_1")}.items():
    _file = TORCHVISION_FILES[_model]
    register_weights(WeightSpec(
        name=f"lpips-{_net}-trunk", filename=_file,
        description=f"torchvision {_label} ImageNet weights (the LPIPS '{_net}' trunk)",
        env_var=f"ACTMAX_LPIPS_{_net.upper()}_WEIGHTS", hub_repo_env="ACTMAX_LPIPS_HUB_REPO",
        legacy=("torch_hub_checkpoints",), option="analyze similarity --weights ",
        used_by=f"actmax.core.apps.analysis.LPIPSDistance(net='{_net}')", url=_TORCHVISION + _file,
        sha256_prefix=_file.rsplit("-", 1)[-1].split(".")[0]))


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


# -- verification ------------------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The file's sha256 (hex), cached per (path, size, mtime) within the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    h.update(path.read_bytes())
    return h.hexdigest()


def _structure_problem(path: Path) -> str | None:
    """Why the file cannot be a whole weight/config file (None when its structure is intact)."""
    import json
    import struct
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(8)
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        if size < 8:
            return "shorter than a safetensors header"
        (n,) = struct.unpack("<Q", head)
        try:
            with open(path, "rb") as fh:
                fh.seek(8)
                header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a broken header
            return f"unreadable safetensors header ({type(exc).__name__})"
        return None if size == 8 + n + end else f"{size} bytes, the header says {8 + n + end}"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001
            return f"not valid JSON ({type(exc).__name__}: truncated?)"
        return None
    if head[:2] == b"PK":  # torch's zip format: the central directory sits at the end
        try:
            with zipfile.ZipFile(path) as zf:
                if not any(n.endswith("data.pkl") for n in zf.namelist()):
                    return "a zip file without a torch data.pkl"
        except (zipfile.BadZipFile, OSError) as exc:
            return f"truncated or damaged zip archive ({exc})"
        return None
    return None  # the legacy (pre-1.6) torch format has no cheap structural check


def _hf_blob_id(path: Path) -> str | None:
    """The Hugging Face cache's blob name for a cached file: the hub's sha256 (LFS) or git sha1."""
    try:
        target = path.resolve()
    except OSError:
        return None
    if target.parent.name == "blobs" and target.parent.parent.name.startswith("models--"):
        name = target.name
        if len(name) in (40, 64) and all(c in "0123456789abcdef" for c in name):
            return name
    return None


def verify(path: str | os.PathLike[str], spec: str | WeightSpec | None = None) -> tuple[str, str]:
    """``("verified" | "present" | "corrupt", detail)`` for a weight file.

    ``verified``: its sha256 matches what the hub publishes (the HF cache's blob name), actmax's
    table or torchvision's file-name prefix. ``present``: whole as far as its structure tells,
    no hash known to compare with. ``corrupt``: empty, wrong size, hash mismatch or broken
    structure (what an interrupted download leaves).
    """
    p = Path(path)
    sp = weight_spec(spec) if spec is not None else None
    if not p.is_file():
        return "corrupt", "not a file"
    size = p.stat().st_size
    if size == 0:
        return "corrupt", "empty file (an interrupted download?)"
    if sp is not None and sp.size is not None and size != sp.size:
        return "corrupt", f"{size} bytes, expected {sp.size}"
    blob = _hf_blob_id(p)
    if blob is not None:
        actual = sha256_file(p) if len(blob) == 64 else _git_blob_sha1(p.resolve())
        if actual != blob:
            return "corrupt", f"{'sha256' if len(blob) == 64 else 'git sha1'} {actual[:12]}... differs from the hub's {blob[:12]}..."
        return "verified", f"{'sha256' if len(blob) == 64 else 'git sha1'} matches the hub's"
    if sp is not None and sp.sha256:
        actual = sha256_file(p)
        if actual != sp.sha256:
            return "corrupt", f"sha256 {actual[:12]}... differs from the known {sp.sha256[:12]}..."
        return "verified", "sha256 matches"
    if sp is not None and sp.sha256_prefix and p.name == sp.filename:
        actual = sha256_file(p)
        if not actual.startswith(sp.sha256_prefix):
            return "corrupt", f"sha256 {actual[:12]}... does not start with {sp.sha256_prefix} (the name's hash)"
        return "verified", "sha256 prefix in the file name matches"
    problem = _structure_problem(p)
    if problem:
        return "corrupt", problem
    return "present", "structure intact; no published hash to compare with"


# -- the log of files used (for provenance) ----------------------------------------------------
_USED: dict[str, dict[str, Any]] = {}


def record_use(path: str | os.PathLike[str], *, name: str = "", source: str = "", used_by: str = "") -> None:
    """Log a weight file a part is about to use (read by :mod:`actmax.core.provenance`)."""
    p = Path(path)
    key = str(p.absolute())
    entry = _USED.pop(key, {"path": key, "name": name, "source": source, "used_by": used_by})
    for k, v in (("name", name), ("source", source), ("used_by", used_by)):
        if v and not entry.get(k):
            entry[k] = v
    _USED[key] = entry


def record_random(name: str, *, seed: int | None, used_by: str = "") -> None:
    """Log that a part built a *random* network on request (said in the run's manifest)."""
    key = f"random:{name}:{seed}:{used_by}"
    _USED.pop(key, None)
    _USED[key] = {"name": name, "random": True, "seed": seed, "used_by": used_by}


def take_used() -> list[dict[str, Any]]:
    """The files (and random networks) logged since the last call, oldest first; clears the log."""
    out = list(_USED.values())
    _USED.clear()
    return out


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

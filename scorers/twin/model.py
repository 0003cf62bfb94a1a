"""Digital twin: a small convolutional core, a Gaussian point readout per neuron, ELU+1 output.

The architecture follows neuralpredictors' ``Stacked2dCore`` + ``FullGaussian2d`` +
``FiringRateEncoder`` (facts in DESIGN/reference; the code is our own):

* core: ``layers`` blocks of conv -> batchnorm -> ELU; the output concatenates the blocks
  (``stack="all"``) or keeps only the last one (``stack="last"``);
* readout: every neuron reads the feature map at one learned position ``mu`` in grid
  coordinates [-1, 1] with ``grid_sample(align_corners=True)``, sums the features with its
  own weights and adds a bias. Parameters are ``_mu (1, n, 1, 2)`` (clamped to [-1, 1]),
  ``sigma`` ((1, n, 1, 1) isotropic, (1, n, 1, 2) uncorrelated or (1, n, 2, 2) full),
  ``_features (1, c, 1, n)`` initialised to 1/c and ``bias (n)``. In training the read
  position is sampled, ``mu + sigma * N(0, 1)`` (one sample per image), in eval it is ``mu``;
* output: ``ELU(x) + 1`` (positive firing rates).

``centered=True`` sets every ``mu`` to 0 so all neurons read the centre of the map and their
MEIs come out centred (DualNeuron's synthesis setting).

Optional parts for recordings with per-trial eye position and behaviour (the mouse labs' twins,
issue 24; trained jointly with the rest, see :mod:`scorers.twin.train`):

* shifter (``config.shifter``): a small MLP from the eye position (x, y, z-scored with the
  training statistics) to one shift (dx, dy) in grid units added to *every* neuron's read
  position. It is anchored: ``shift(e) = f(e) - f(training mean)``, so at the training-mean eye
  position the readout reads at ``mu`` (the shift is identified only up to a constant);
* modulator (``config.modulator``): a small MLP from behaviour (pupil dilation, its derivative,
  treadmill speed; z-scored) to one log-gain per neuron; the firing rate (after ELU + 1) is
  multiplied by ``exp(g(b) - g(training mean))``, a positive per-cell gain that is 1 at the
  training-mean behaviour.

Without a state (``eye=None`` / ``behavior=None``) a part is skipped: no shift, gain 1.

Twins are stored as a folder: ``twin.json`` (architecture, preprocessing, neuron ids, member
files, training summary) and one ``member_<k>.safetensors`` per ensemble member. Nothing is
unpickled.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from actmax.core.errors import InputError, RecordError, WeightsError
from actmax.core.registry import scorers
from actmax.scorers.base import Scorer, to_channels, to_size

FORMAT = "actmax-twin/1"
CONFIG_FILE = "twin.json"
GAUSS_TYPES = ("isotropic", "uncorrelated", "full")


@dataclass
class TwinConfig:
    """Architecture and preprocessing of a twin (everything needed to rebuild it)."""

    n_neurons: int
    channels: int = 1                 #: input channels the core sees (1 grey, 3 RGB)
    image_size: int = 32              #: images are resized to this before the core
    input_mean: float = 0.5           #: pixel mean of the training images (after resizing)
    input_std: float = 0.2            #: pixel std of the training images
    hidden_channels: int = 16
    layers: int = 3
    input_kernel: int = 9
    hidden_kernel: int = 5
    stack: str = "all"                #: "all" layers concatenated, or "last"
    gauss_type: str = "isotropic"
    init_mu_range: float = 0.3        #: random initial positions (when not estimated from data)
    #: initial spread of the sampled read position (grid units). Small, because training starts
    #: the positions at data estimates; a wide spread early on washes out phase-sensitive
    #: (simple-cell-like) signals, whose sign flips within half a wavelength.
    init_sigma: float = 0.1
    neuron_ids: list[str] = field(default_factory=list)
    #: median L2 norm of (image - 0.5) of the training images, at ``data_size`` (a fair
    #: contrast for synthesis: MEIs at this norm are as strong as the images the twin saw)
    input_norm: float | None = None
    data_size: int | None = None
    #: median RMS contrast (pixel std about the image mean) of the training images at
    #: ``data_size``: the synthesis contrast budget (twins saved without it fall back to input_norm)
    input_contrast: float | None = None
    #: eye-position shifter and behavioural modulator (issue 24); twins saved without these
    #: keys load with both off
    shifter: bool = False
    modulator: bool = False
    shifter_hidden: int = 8
    modulator_hidden: int = 8
    #: training statistics of the state variables (per variable): z-scoring and the range a
    #: state chosen for synthesis must lie in
    eye_mean: list[float] | None = None
    eye_std: list[float] | None = None
    eye_min: list[float] | None = None
    eye_max: list[float] | None = None
    behavior_mean: list[float] | None = None
    behavior_std: list[float] | None = None
    behavior_min: list[float] | None = None
    behavior_max: list[float] | None = None

    def __post_init__(self) -> None:
        if self.n_neurons < 1:
            raise InputError(f"twin: n_neurons must be >= 1, got {self.n_neurons}")
        if self.channels not in (1, 3):
            raise InputError(f"twin: channels must be 1 or 3, got {self.channels}")
        if self.layers < 1 or self.hidden_channels < 1:
            raise InputError(f"twin: need layers >= 1 and hidden_channels >= 1, got {self.layers}, "
                             f"{self.hidden_channels}")
        if self.input_kernel % 2 == 0 or self.hidden_kernel % 2 == 0:
            raise InputError(f"twin: kernel sizes must be odd, got {self.input_kernel}, {self.hidden_kernel}")
        if self.stack not in ("all", "last"):
            raise InputError(f"twin: stack must be 'all' or 'last', got {self.stack!r}")
        if self.gauss_type not in GAUSS_TYPES:
            raise InputError(f"twin: gauss_type must be one of {GAUSS_TYPES}, got {self.gauss_type!r}")
        if not self.neuron_ids:
            self.neuron_ids = [str(i) for i in range(self.n_neurons)]
        if len(self.neuron_ids) != self.n_neurons:
            raise InputError(f"twin: {len(self.neuron_ids)} neuron ids for {self.n_neurons} neurons")
        self.neuron_ids = [str(i) for i in self.neuron_ids]
        for part, var, dims in (("shifter", "eye", 2), ("modulator", "behavior", 3)):
            if getattr(self, part):
                stats = [getattr(self, f"{var}_{k}") for k in ("mean", "std", "min", "max")]
                if any(v is None or len(v) != dims for v in stats):
                    raise InputError(f"twin: a {part} needs {var}_mean/std/min/max with {dims} values each")

    @property
    def core_channels(self) -> int:
        return self.hidden_channels * (self.layers if self.stack == "all" else 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TwinConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecordError(f"twin config has unknown keys {unknown}")
        return cls(**data)


class ConvCore(nn.Module):
    """Stacked conv -> batchnorm -> ELU blocks ("same" padding, stride 1)."""

    def __init__(self, config: TwinConfig) -> None:
        super().__init__()
        self.stack = config.stack
        blocks = []
        c_in = config.channels
        for i in range(config.layers):
            k = config.input_kernel if i == 0 else config.hidden_kernel
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, config.hidden_channels, k, padding=k // 2, bias=False),
                nn.BatchNorm2d(config.hidden_channels, momentum=0.1),
                nn.ELU(),
            ))
            c_in = config.hidden_channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return torch.cat(outs, dim=1) if self.stack == "all" else outs[-1]

    def laplace_penalty(self) -> torch.Tensor:
        """Smoothness of the first layer's filters: squared Laplacian, normalised by filter energy."""
        w = self.blocks[0][0].weight                      # (out, in, k, k)
        lap = w.new_tensor([[0.5, 1.0, 0.5], [1.0, -6.0, 1.0], [0.5, 1.0, 0.5]]).view(1, 1, 3, 3)
        flat = w.reshape(-1, 1, *w.shape[-2:])
        return F.conv2d(flat, lap, padding=1).pow(2).sum() / (flat.pow(2).sum() + 1e-8)


class GaussianReadout(nn.Module):
    """FullGaussian2d-style readout: one (sampled) point of the feature map per neuron."""

    def __init__(self, in_channels: int, n_neurons: int, *, gauss_type: str = "isotropic",
                 init_mu_range: float = 0.3, init_sigma: float = 0.1) -> None:
        super().__init__()
        if not 0 < init_mu_range <= 1 or init_sigma <= 0:
            raise InputError(f"readout: need 0 < init_mu_range <= 1 and init_sigma > 0, got "
                             f"{init_mu_range}, {init_sigma}")
        self.gauss_type, self.n = gauss_type, n_neurons
        self._mu = nn.Parameter(torch.empty(1, n_neurons, 1, 2).uniform_(-init_mu_range, init_mu_range))
        if gauss_type == "isotropic":
            sigma = torch.full((1, n_neurons, 1, 1), float(init_sigma))
        elif gauss_type == "uncorrelated":
            sigma = torch.full((1, n_neurons, 1, 2), float(init_sigma))
        else:
            sigma = torch.eye(2).mul(init_sigma).expand(1, n_neurons, 2, 2).clone()
        self.sigma = nn.Parameter(sigma)
        self._features = nn.Parameter(torch.full((1, in_channels, 1, n_neurons), 1.0 / in_channels))
        self.bias = nn.Parameter(torch.zeros(n_neurons))

    @property
    def mu(self) -> torch.Tensor:
        return self._mu

    @property
    def features(self) -> torch.Tensor:
        return self._features

    def center(self) -> None:
        """Move every neuron's read position to the centre of the map (``centered=True``)."""
        with torch.no_grad():
            self._mu.zero_()

    def sample_grid(self, batch: int, *, sample: bool, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Read positions (batch, n, 1, 2): ``mu + sigma * N`` if ``sample`` else ``mu``, plus the
        shifter's ``shift`` (batch, 2) shared by every neuron."""
        with torch.no_grad():
            self._mu.clamp_(-1.0, 1.0)
        mu = self._mu.expand(batch, -1, -1, -1)
        if shift is not None:
            mu = (mu + shift.to(mu)[:, None, None, :]).clamp(-1.0, 1.0)
        if not sample:
            return mu
        noise = torch.randn(batch, self.n, 1, 2, device=mu.device, dtype=mu.dtype)
        if self.gauss_type == "full":
            offset = noise @ self.sigma                   # (B, n, 1, 2) @ (1, n, 2, 2)
        else:
            offset = noise * self.sigma
        return (mu + offset).clamp(-1.0, 1.0)

    def forward(self, x: torch.Tensor, *, sample: bool | None = None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        sample = self.training if sample is None else sample
        grid = self.sample_grid(x.shape[0], sample=sample, shift=shift)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        # (B, c, n, 1) * (1, c, 1, n) -> summed over channels
        y = (y.squeeze(-1) * self._features.squeeze(2)).sum(1)
        return y + self.bias

    def feature_l1(self) -> torch.Tensor:
        return self._features.abs().sum() / self.n


class _StateMLP(nn.Module):
    """z-scored state -> tanh hidden layer -> outputs, anchored so the training mean maps to 0."""

    def __init__(self, inputs: int, hidden: int, outputs: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))
        with torch.no_grad():                      # starts near 0: no shift, gain 1
            self.net[2].weight.mul_(0.1)
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]), persistent=False)
        self.register_buffer("std", torch.tensor([max(float(v), 1e-6) for v in std]), persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        z = (state.to(self.mean) - self.mean) / self.std
        return self.net(z) - self.net(torch.zeros_like(z[:1]))


class Shifter(_StateMLP):
    """Eye position (B, 2) -> one readout shift (B, 2) in grid units, 0 at the training-mean eye position."""

    def __init__(self, config: TwinConfig) -> None:
        super().__init__(2, config.shifter_hidden, 2, config.eye_mean, config.eye_std)


class Modulator(_StateMLP):
    """Behaviour (B, 3) -> a positive gain per neuron (B, n), 1 at the training-mean behaviour."""

    def __init__(self, config: TwinConfig) -> None:
        super().__init__(3, config.modulator_hidden, config.n_neurons, config.behavior_mean, config.behavior_std)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.exp(super().forward(state).clamp(-10.0, 10.0))


class TwinNetwork(nn.Module):
    """One twin: preprocessing -> core -> Gaussian readout (moved by the shifter) -> ELU + 1 (x modulator gain)."""

    def __init__(self, config: TwinConfig) -> None:
        super().__init__()
        self.config = config
        self.core = ConvCore(config)
        self.readout = GaussianReadout(config.core_channels, config.n_neurons, gauss_type=config.gauss_type,
                                       init_mu_range=config.init_mu_range, init_sigma=config.init_sigma)
        self.shifter = Shifter(config) if config.shifter else None
        self.modulator = Modulator(config) if config.modulator else None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the core's input (channels, size, z-scored with training stats)."""
        x = to_size(to_channels(images, self.config.channels), self.config.image_size)
        return (x - self.config.input_mean) / self.config.input_std

    def forward(self, images: torch.Tensor, *, prepared: bool = False, eye: torch.Tensor | None = None,
                behavior: torch.Tensor | None = None) -> torch.Tensor:
        """Rates (B, n); ``eye`` (B or 1, 2) and ``behavior`` (B or 1, 3) in the recording's units
        drive the shifter and modulator (None: no shift, gain 1; ignored by a twin without them)."""
        x = images if prepared else self.prepare(images)
        shift = None
        if self.shifter is not None and eye is not None:
            shift = self.shifter(eye.reshape(-1, 2)).expand(x.shape[0], -1)
        rate = F.elu(self.readout(self.core(x), shift=shift)) + 1.0
        if self.modulator is not None and behavior is not None:
            rate = rate * self.modulator(behavior.reshape(-1, 3)).to(rate)
        return rate


class TwinEnsemble(nn.Module):
    """The average firing rate of several twins trained on the same neurons."""

    def __init__(self, members: Sequence[TwinNetwork], *, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not members:
            raise InputError("twin ensemble: needs at least one member")
        first = members[0].config
        for m in members[1:]:
            if m.config.n_neurons != first.n_neurons:
                raise InputError("twin ensemble: members predict different numbers of neurons")
        self.members = nn.ModuleList(members)
        self.config = first
        self.meta = dict(meta or {})

    def forward(self, images: torch.Tensor, *, prepared: bool = False, eye: torch.Tensor | None = None,
                behavior: torch.Tensor | None = None) -> torch.Tensor:
        if not prepared:
            images = self.members[0].prepare(images)      # members share the preprocessing
        return torch.stack([m(images, prepared=True, eye=eye, behavior=behavior) for m in self.members]).mean(0)

    def center(self) -> None:
        for m in self.members:
            m.readout.center()


def _bias_for_rate(rate: torch.Tensor) -> torch.Tensor:
    """The readout bias whose ELU + 1 equals ``rate`` (rates <= 0 clipped to a small value)."""
    rate = rate.clamp_min(1e-3)
    return torch.where(rate >= 1, rate - 1, torch.log(rate))


def init_bias(network: TwinNetwork, mean_rates: torch.Tensor) -> None:
    """Start every neuron at its mean training rate (faster, steadier Poisson training)."""
    with torch.no_grad():
        network.readout.bias.copy_(_bias_for_rate(mean_rates.to(network.readout.bias)))


# -- storage -------------------------------------------------------------------------------------
def save_twin(directory: str | Path, ensemble: TwinEnsemble | Sequence[TwinNetwork], *,
              meta: dict[str, Any] | None = None) -> Path:
    """Write ``twin.json`` and one safetensors file per member into ``directory``."""
    from safetensors.torch import save_file

    members = list(ensemble.members) if isinstance(ensemble, TwinEnsemble) else list(ensemble)
    if not members:
        raise InputError("save_twin: nothing to save")
    meta = dict(ensemble.meta if isinstance(ensemble, TwinEnsemble) else {}, **(meta or {}))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, member in enumerate(members):
        name = f"member_{k}.safetensors"
        state = {key: t.detach().cpu().contiguous() for key, t in member.state_dict().items()}
        save_file(state, str(out / f".{name}.tmp"), metadata={"format": FORMAT})
        (out / f".{name}.tmp").replace(out / name)
        files.append(name)
    doc = {"format": FORMAT, "config": members[0].config.to_dict(), "members": files, "meta": meta}
    tmp = out / f".{CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=_json_default))
    tmp.replace(out / CONFIG_FILE)
    return out


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_twin_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``twin.json`` of a twin folder (clear errors if missing or corrupt)."""
    path = Path(directory)
    if path.is_file() and path.name == CONFIG_FILE:
        path = path.parent
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise WeightsError(f"twin: no {CONFIG_FILE} in {path} (train one with `actmax twin train "
                           f"--images X --responses Y --out {path}`)")
    try:
        doc = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"twin: {cfg_path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecordError(f"twin: {cfg_path} is not an {FORMAT} file (format={doc.get('format')!r})"
                          if isinstance(doc, dict) else f"twin: {cfg_path} is not a JSON object")
    if not isinstance(doc.get("members"), list) or not doc["members"]:
        raise RecordError(f"twin: {cfg_path} lists no member files")
    return doc


def load_twin(directory: str | Path, *, centered: bool = False, members: Sequence[int] | None = None,
              device: str | torch.device = "cpu") -> TwinEnsemble:
    """Load a twin folder as an eval-mode ensemble (optionally a subset of members, centred)."""
    from safetensors.torch import load_file

    path = Path(directory)
    if path.is_file():
        path = path.parent
    doc = read_twin_config(path)
    try:
        config = TwinConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as exc:
        raise RecordError(f"twin: bad config in {path / CONFIG_FILE}: {exc}") from exc
    files = doc["members"]
    chosen = list(range(len(files))) if members is None else [int(i) for i in members]
    for i in chosen:
        if not 0 <= i < len(files):
            raise InputError(f"twin: member {i} out of range; {path} has {len(files)} members")
    nets = []
    for i in chosen:
        file = path / str(files[i])
        if not file.is_file():
            raise WeightsError(f"twin: member file {file} is missing")
        try:
            state = load_file(str(file))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own (version-dependent) error types
            raise RecordError(f"twin: {file} is not a readable safetensors file ({exc})") from exc
        net = TwinNetwork(config)
        _load_checked(net, state, file)
        nets.append(net)
    ensemble = TwinEnsemble(nets, meta=doc.get("meta") or {})
    if centered:
        ensemble.center()
    return ensemble.to(device).eval()


def _load_checked(net: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise RecordError(f"twin: {file} does not fit the architecture in {CONFIG_FILE}: "
                          f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise RecordError(f"twin: {file}: {key} has shape {tuple(state[key].shape)}, the config "
                              f"needs {tuple(tensor.shape)}")
        if state[key].is_floating_point() and not torch.isfinite(state[key]).all():
            raise RecordError(f"twin: {file}: {key} contains NaN or inf")
    net.load_state_dict(state)


# -- scorer --------------------------------------------------------------------------------------
@scorers.register("twin")
class TwinScorer(Scorer):
    """A trained digital twin (conv core + Gaussian readout, ensemble mean), from a folder.

    A twin trained with eye positions / behaviour is evaluated at one chosen state: ``eye``
    (``centre``, ``training_mean`` or ``X;Y``) and ``behavior`` (``none``, ``training_mean`` or
    ``P;DP;RUN``); see :mod:`scorers.twin.state`. The resolved state is :attr:`state` (written to
    a synthesis manifest's ``recipe``).

    Options:
        path: twin folder written by `actmax twin train` (twin.json + member_*.safetensors)
        centered: every neuron reads the centre of the feature map (its MEI centred in the image)
        members: indices of the ensemble members to average (default: all)
        device: torch device of the twin
        eye: eye position the twin is evaluated at: centre, training_mean or 'X;Y'
        behavior: behavioural state: none, training_mean or 'P;DP;RUN'
    """

    differentiable = True

    def __init__(self, path: str | Path | TwinEnsemble, centered: bool = False,
                 members: Sequence[int] | None = None, device: str = "cpu", eye: Any = "training_mean",
                 behavior: Any = "training_mean") -> None:
        from actmax.scorers.twin.state import resolve_state

        super().__init__()
        if isinstance(path, TwinEnsemble):
            model = path.to(device).eval()
            if centered:
                model.center()
            self.path = None
        else:
            model = load_twin(path, centered=centered,
                              members=[members] if isinstance(members, int) else members, device=device)
            self.path = str(path)
        self.model = model
        self.centered = bool(centered)
        self.units = model.config.n_neurons
        cfg = model.config
        eye_state = resolve_state("eye", eye, has_part=cfg.shifter, mean=cfg.eye_mean, low=cfg.eye_min,
                                  high=cfg.eye_max)
        behavior_state = resolve_state("behavior", behavior, has_part=cfg.modulator, mean=cfg.behavior_mean,
                                       low=cfg.behavior_min, high=cfg.behavior_max)
        #: the state MEIs are made at (None where the twin has no shifter / modulator)
        self.state = {"eye": eye_state, "behavior": behavior_state} if (cfg.shifter or cfg.modulator) else None
        for name, st in (("eye", eye_state), ("behavior", behavior_state)):
            value = None if st is None or st["value"] is None else torch.tensor([st["value"]], dtype=torch.float32)
            self.register_buffer(f"_{name}", value, persistent=False)
        self.input_norm = cfg.input_norm
        self.input_contrast, self.input_contrast_size = cfg.input_contrast, cfg.data_size
        self._names = list(cfg.neuron_ids)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def unit_names(self) -> list[str]:
        return list(self._names)

    def train(self, mode: bool = True) -> "TwinScorer":
        """A scorer always evaluates its twin deterministically (eval mode, no readout sampling)."""
        super().train(mode)
        self.model.eval()
        return self

    def respond(self, images: torch.Tensor) -> torch.Tensor:
        dev = next(self.model.parameters()).device
        return self.model(images.to(dev), eye=self._eye, behavior=self._behavior).to(images.device)


def describe_readout(ensemble: TwinEnsemble) -> dict[str, Any]:
    """Per-neuron read positions (mean over members) in pixels of the twin's input and in [-1, 1]."""
    mus = torch.stack([m.readout.mu.detach().clamp(-1, 1)[0, :, 0] for m in ensemble.members]).mean(0)
    size = ensemble.config.image_size
    pix = (mus + 1) / 2 * (size - 1)
    return {"mu": mus.tolist(), "position_px": pix.tolist(), "image_size": size,
            "sigma_mean": float(torch.stack([m.readout.sigma.detach().abs().mean()
                                             for m in ensemble.members]).mean())}


def receptive_field_radius_px(config: TwinConfig) -> float:
    """Half the core's receptive field in input pixels (for reports)."""
    return float(config.input_kernel // 2 + (config.layers - 1) * (config.hidden_kernel // 2))

"""Train and evaluate digital twins on recordings (images, responses).

Inputs: images as ``.npy``/``.npz`` arrays (N, H, W), (N, C, H, W) or (N, H, W, C), uint
(0..max) or float in [0, 1], or a ``.parquet`` table with a ``png`` bytes column (or a
``pixels`` list column with ``height``/``width``[/``channels``]); responses as arrays
(images, neurons) or (trials, images, neurons) with NaN for missing trials, or a
``.parquet`` table in long form (``image``, ``neuron``, ``response``[, ``trial``]) or wide
form (one numeric column per neuron[, ``image``, ``trial``]).

Training (neuralpredictors-style): Poisson loss on trial-averaged responses, Adam, an L1
penalty on readout features and a Laplacian smoothness penalty on the first conv layer;
after each epoch the validation correlation is measured, the best weights are kept, the
learning rate decays on a plateau and training stops after ``lr_decay_steps`` decays.
The report holds per-neuron test correlation (to the trial mean of held-out images),
single-trial test correlation and the leave-one-out oracle when images were repeated,
and a figure.
"""
from __future__ import annotations

import copy
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from actmax.core.transforms import rms_contrast
from actmax.scorers.base import to_channels, to_size
from actmax.scorers.twin.model import TwinConfig, TwinEnsemble, TwinNetwork, init_bias, load_twin, save_twin
from actmax.scorers.twin.selection import (as_trials, normalised_correlation, oracle_correlation,
                                    pearson_per_neuron, select_neurons, trial_counts, trial_mean)
from actmax.core.errors import InputError, MissingFileError

REPORT_JSON = "report.json"
REPORT_PNG = "report.png"


# -- loading ------------------------------------------------------------------------------------
def _load_array(path: Path, preferred_key: str) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as data:
        keys = list(data.keys())
        if preferred_key in keys:
            return data[preferred_key]
        if len(keys) == 1:
            return data[keys[0]]
        raise InputError(f"{path}: npz holds {keys}; name the array {preferred_key!r}")


def images_to_nchw(array: np.ndarray, *, where: str = "images") -> np.ndarray:
    """An image array in any common layout/dtype -> float32 (N, C, H, W) in [0, 1]."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise InputError(f"{where}: expected (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {a.shape}")
    if a.shape[1] not in (1, 3) and a.shape[-1] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.shape[1] not in (1, 3):
        raise InputError(f"{where}: expected 1 or 3 channels, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"{where}: contains NaN or inf")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise InputError(f"{where}: float images must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                             "(divide 0-255 data by 255)")
        a = a.clip(0, 1)
    return np.ascontiguousarray(a)


def load_images(path: str | Path) -> np.ndarray:
    """Images from ``.npy``/``.npz``/``.parquet`` -> float32 (N, C, H, W) in [0, 1]."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"images file {p} does not exist")
    if p.suffix in (".npy", ".npz"):
        return images_to_nchw(_load_array(p, "images"), where=str(p))
    if p.suffix == ".parquet":
        import pandas as pd

        table = pd.read_parquet(p)
        if "png" in table.columns:
            from PIL import Image

            arrays = [np.asarray(Image.open(io.BytesIO(b))) for b in table["png"]]
            if len({a.shape for a in arrays}) > 1:
                raise InputError(f"{p}: images have different shapes")
            return images_to_nchw(np.stack(arrays), where=str(p))
        if {"pixels", "height", "width"} <= set(table.columns):
            chans = table["channels"] if "channels" in table.columns else [1] * len(table)
            arrays = [np.asarray(px, dtype=np.float32).reshape(int(c), int(h), int(w))
                      for px, h, w, c in zip(table["pixels"], table["height"], table["width"], chans)]
            if len({a.shape for a in arrays}) > 1:
                raise InputError(f"{p}: images have different shapes")
            return images_to_nchw(np.stack(arrays), where=str(p))
        raise InputError(f"{p}: an image table needs a 'png' bytes column or 'pixels'+'height'+'width' columns; "
                         f"got {list(table.columns)}")
    raise InputError(f"images: unsupported file type {p.suffix!r} (use .npy, .npz or .parquet)")


def _neuron_key(value: Any) -> tuple[int, float, str]:
    """Sort key for neuron ids: numbers numerically, then names alphabetically."""
    try:
        return 0, float(value), str(value)
    except (TypeError, ValueError):
        return 1, 0.0, str(value)


def match_neurons(responses: np.ndarray, ids: list[str] | None, twin_ids: Sequence[str], *,
                  where: str = "responses") -> np.ndarray:
    """Reorder (trials, images, neurons) responses to the twin's neuron ids, matched by name.

    Tables with ids (parquet) must contain every neuron the twin predicts (extra neurons are
    dropped); id-less arrays (.npy) must have exactly the twin's neuron count, in its order.
    """
    twin_ids = [str(i) for i in twin_ids]
    if ids is None:
        if responses.shape[2] != len(twin_ids):
            raise InputError(f"the twin predicts {len(twin_ids)} neurons but {where} has {responses.shape[2]} "
                             "(an array without neuron ids must list the twin's neurons in its order)")
        return responses
    index = {str(n): i for i, n in enumerate(ids)}
    missing = [n for n in twin_ids if n not in index]
    if missing:
        raise InputError(f"neuron ids do not match the twin: {where} lacks {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''} (twin neurons: {twin_ids[:8]}"
                         f"{' ...' if len(twin_ids) > 8 else ''}; table neurons: {[str(i) for i in ids[:8]]})")
    return responses[:, :, [index[n] for n in twin_ids]]


def load_responses(path: str | Path) -> tuple[np.ndarray, list[str] | None]:
    """Responses -> (float32 (trials, images, neurons) with NaN for missing trials, neuron ids or None)."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"responses file {p} does not exist")
    if p.suffix in (".npy", ".npz"):
        arr = np.asarray(_load_array(p, "responses"), dtype=np.float32)
        return as_trials(arr).astype(np.float32), None
    if p.suffix != ".parquet":
        raise InputError(f"responses: unsupported file type {p.suffix!r} (use .npy, .npz or .parquet)")
    import pandas as pd

    table = pd.read_parquet(p)
    if {"image", "neuron", "response"} <= set(table.columns):
        if "trial" not in table.columns:
            table = table.assign(trial=table.groupby(["image", "neuron"]).cumcount())
        images = np.sort(table["image"].unique())
        neurons = sorted(pd.unique(table["neuron"]), key=_neuron_key)  # row order never matters
        trials = np.sort(table["trial"].unique())
        out = np.full((len(trials), len(images), len(neurons)), np.nan, dtype=np.float32)
        ti = np.searchsorted(trials, table["trial"].to_numpy())
        ii = np.searchsorted(images, table["image"].to_numpy())
        ni = pd.Index(neurons).get_indexer(table["neuron"])
        out[ti, ii, ni] = table["response"].to_numpy(dtype=np.float32)
        if not np.array_equal(images, np.arange(len(images))):
            raise InputError(f"{p}: image indices must be 0..N-1 (rows of the images file), got {images[:5]}...")
        return out, [str(n) for n in neurons]
    id_cols = [c for c in ("image", "trial") if c in table.columns]
    neuron_cols = [c for c in table.columns if c not in id_cols]
    bad = [c for c in neuron_cols if not pd.api.types.is_numeric_dtype(table[c])]
    if bad or not neuron_cols:
        raise InputError(f"{p}: a wide response table needs numeric neuron columns (non-numeric: {bad}); "
                         "or use long form with columns image, neuron, response[, trial]")
    if "image" not in table.columns:
        return as_trials(table[neuron_cols].to_numpy(np.float32)).astype(np.float32), [str(c) for c in neuron_cols]
    if "trial" not in table.columns:
        table = table.assign(trial=table.groupby("image").cumcount())
    n_img, n_tr = int(table["image"].max()) + 1, int(table["trial"].max()) + 1
    out = np.full((n_tr, n_img, len(neuron_cols)), np.nan, dtype=np.float32)
    out[table["trial"].to_numpy(), table["image"].to_numpy()] = table[neuron_cols].to_numpy(np.float32)
    return out, [str(c) for c in neuron_cols]


# -- splitting ----------------------------------------------------------------------------------
def split_images(counts: np.ndarray, *, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 test: str = "auto", seed: int = 0) -> dict[str, np.ndarray]:
    """Train/validation/test image indices.

    ``test="repeated"``: the repeated images (>= 2 trials) are the test set, as in recordings
    with an oracle set; ``"random"``: a random ``test_fraction``; ``"auto"``: repeated if
    some but at most half of the images are repeated, else random.
    """
    counts = np.asarray(counts)
    n = counts.size
    if test not in ("auto", "repeated", "random"):
        raise InputError(f"test must be 'auto', 'repeated' or 'random', got {test!r}")
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(f"bad split fractions val={val_fraction}, test={test_fraction}")
    rng = np.random.default_rng(seed)
    valid = np.flatnonzero(counts > 0)
    repeated = np.flatnonzero(counts >= 2)
    use_repeated = test == "repeated" or (test == "auto" and 0 < repeated.size <= n // 2)
    if use_repeated:
        if repeated.size == 0:
            raise InputError("test='repeated' but no image has two or more trials")
        test_idx = repeated
        rest = np.setdiff1d(valid, repeated)
    else:
        perm = rng.permutation(valid)
        k = int(round(test_fraction * valid.size))
        test_idx, rest = np.sort(perm[:k]), perm[k:]
    rest = rng.permutation(rest)
    k_val = max(1, int(round(val_fraction * (rest.size + test_idx.size))))
    if rest.size - k_val < 8:
        raise InputError(f"too few images to train: {rest.size} left after the test split")
    return {"train": np.sort(rest[k_val:]), "val": np.sort(rest[:k_val]), "test": np.sort(test_idx)}


# -- training -----------------------------------------------------------------------------------
@dataclass
class TrainOptions:
    """How a twin is fitted (see the module docstring)."""

    max_epochs: int = 80
    batch_size: int = 64
    lr: float = 5e-3
    patience: int = 5
    lr_decay: float = 0.3
    lr_decay_steps: int = 2
    gamma_readout: float = 2e-3
    gamma_input: float = 5e-3
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    test_images: str = "auto"
    members: int = 1
    seed: int = 0
    device: str = "cpu"
    min_oracle: float | None = None   #: keep only neurons whose oracle passes this threshold
    #: readout positions start at "data" estimates, the image "centre" or "random" (within 0.3)
    init_positions: str = "data"
    #: data estimates farther than this from the centre (grid units, 1 = the border) are not
    #: trusted and start at the centre instead: a border start with a slow position rate traps
    #: the readout there (issue 11)
    border_guard: float = 0.8
    #: after this many epochs the positions mu learn at the full rate (sigma stays slow);
    #: None keeps position_lr_scale throughout. A twin with a shifter also re-estimates its
    #: positions then, on images aligned by the learned shift (see :func:`realign_positions`)
    position_warmup: int | None = None
    #: learning-rate factor of the readout grid (positions mu and their sampling spread sigma):
    #: small, so positions estimated from data do not random-walk while the core's features are
    #: still forming, and sigma cannot drift into a wide, flat readout (Adam steps ~lr even when
    #: the gradient is only noise)
    position_lr_scale: float = 0.1
    #: explicit readout starts, one (x, y) per neuron in pixels of the training images (centre of
    #: pixel i at i + 0.5, the convention of ``ModelNeurons.receptive_fields`` and of
    #: :func:`actmax.core.apps.rf_mapping.estimate_receptive_fields`), e.g. from an RF-mapping
    #: round; a neuron given NaN starts as ``init_positions`` says. Not trusted less at the
    #: border: they are the caller's measurement.
    initial_positions: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if self.initial_positions is not None:       # plain lists: the options go into JSON reports
            arr = np.asarray(self.initial_positions, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise InputError(f"initial_positions must be (neurons, 2) pixel centres (x, y), got shape {arr.shape}")
            self.initial_positions = [[float(v) for v in row] for row in arr]


@dataclass
class TrainResult:
    ensemble: TwinEnsemble
    report: dict[str, Any]
    split: dict[str, np.ndarray] = field(repr=False)
    out_dir: Path | None = None


def poisson_loss(rate: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean Poisson negative log-likelihood (up to a constant) over valid entries."""
    nll = rate - target * torch.log(rate + 1e-8)
    return (nll * mask).sum() / mask.sum().clamp_min(1)


def predict(model: torch.nn.Module, images: torch.Tensor, *, prepared: bool = False,
            batch_size: int = 256, eye: torch.Tensor | None = None,
            behavior: torch.Tensor | None = None) -> np.ndarray:
    """Deterministic (eval-mode) predictions (images, neurons) as numpy; ``eye`` / ``behavior``
    (one row per image) give each image's state to a twin with a shifter / modulator."""
    was_training = model.training
    model.eval()
    outs = []
    dev = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(dev)
            state = {}
            if eye is not None:
                state["eye"] = eye[i:i + batch_size].to(dev)
            if behavior is not None:
                state["behavior"] = behavior[i:i + batch_size].to(dev)
            outs.append(model(x, prepared=prepared, **state).cpu())
    model.train(was_training)
    return torch.cat(outs).numpy().astype(np.float64)


def pixels_to_grid(centres: np.ndarray, data_size: int, twin_size: int) -> torch.Tensor:
    """RF centres in pixels of ``data_size`` images (centre of pixel i at i + 0.5) -> readout grid
    coordinates [-1, 1] of a twin at ``twin_size`` (``grid_sample(align_corners=True)``: -1 and 1
    are the centres of its first and last pixels; its pixel j covers data pixels
    [j * s, (j + 1) * s), s = data_size / twin_size)."""
    c = torch.as_tensor(np.asarray(centres, dtype=np.float64), dtype=torch.float32)
    twin_px = c * (twin_size / data_size) - 0.5
    return twin_px / max(twin_size - 1, 1) * 2 - 1


def estimate_positions(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Where each neuron looks, in grid coordinates (n, 2) as (x, y) in [-1, 1].

    The peak of a response-triggered map: the squared covariance of the response with the
    pixel contrast (smoothed; finds linear receptive fields) plus the squared covariance with
    local contrast energy (finds phase-invariant ones), both normalised by the image-wide
    spread. Used to start the Gaussian readout near the receptive field, so training spends
    its epochs on the features instead of searching for the position.
    """
    from actmax.core.transforms import gaussian_blur

    grey = x.mean(1)
    c = grey - grey.mean(dim=(1, 2), keepdim=True)
    size = c.shape[-1]
    energy = gaussian_blur((c ** 2)[:, None], max(size / 32, 0.5))[:, 0]
    m = torch.ones_like(y) if mask is None else mask
    yv = torch.where(m > 0, y, (y * m).sum(0) / m.sum(0).clamp_min(1))
    yz = (yv - yv.mean(0)) / yv.std(0).clamp_min(1e-8)

    def cov(a: torch.Tensor) -> torch.Tensor:
        a = a - a.mean(0)
        a = a / a.std(0).mean().clamp_min(1e-8)
        return torch.einsum("nhw,nk->khw", a, yz) / a.shape[0]

    linear = gaussian_blur((cov(c) ** 2)[:, None], max(size / 20, 0.5))[:, 0]
    score = (linear + cov(energy) ** 2).flatten(1)
    idx = score.argmax(1)
    rows, cols = idx // size, idx % size
    to_grid = lambda v: v.float() / max(size - 1, 1) * 2 - 1  # noqa: E731 (align_corners=True)
    return torch.stack([to_grid(cols), to_grid(rows)], dim=1)


def realign_positions(net: TwinNetwork, x_train: torch.Tensor, y_train: torch.Tensor, m_train: torch.Tensor,
                      eye_train: torch.Tensor, *, border_guard: float = 0.8,
                      min_move_px: float = 2.0) -> list[int]:
    """Re-estimate read positions on images aligned by the shifter; move the neurons read far from them.

    The first position estimate (:func:`estimate_positions`) sees the raw images, so eye movements
    smear a receptive field's phase over the trials: a fine-grained linear cell (wavelength of a
    few pixels, eye sd of a pixel or two) leaves no linear trace and its start is wrong, and a
    readout started pixels away from its RF finds no gradient back. Once the shifter has learned
    the shift from the other neurons, the images are translated back by each trial's shift (the RF
    then sits where it does at the training-mean eye position), the positions are estimated again,
    and every neuron read more than ``min_move_px`` pixels from its new estimate (more than the
    estimate's own pixel resolution) is moved there. Returns the neurons moved.
    """
    from actmax.scorers.model_neurons import fourier_shift

    size = x_train.shape[-1]
    with torch.no_grad():
        shift_px = net.shifter(eye_train.to(x_train)).cpu() * (size - 1) / 2      # RF displacement, pixels
        aligned = torch.cat([fourier_shift(x_train[i:i + 512], -shift_px[i:i + 512])
                             for i in range(0, x_train.shape[0], 512)])
        new = estimate_positions(aligned, y_train, m_train)
        trusted = new.abs().amax(1) <= border_guard
        old = net.readout.mu[0, :, 0]
        far = ((new.to(old) - old).norm(dim=1) * (size - 1) / 2 > min_move_px).cpu() & trusted
        old.copy_(torch.where(far[:, None].to(old.device), new.to(old), old))
    return [int(i) for i in torch.nonzero(far).flatten()]


def _fit_member(config: TwinConfig, opts: TrainOptions, seed: int, *args: Any,
                **kwargs: Any) -> tuple[TwinNetwork, list[dict[str, float]]]:
    """Train one member from ``seed`` on a forked torch RNG: the caller's global RNG state is left as it was."""
    device = torch.device(opts.device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return _fit_member_seeded(config, opts, seed, *args, **kwargs)


def _fit_member_seeded(config: TwinConfig, opts: TrainOptions, seed: int, x_train: torch.Tensor,
                       y_train: torch.Tensor, m_train: torch.Tensor, x_val: torch.Tensor, y_val: np.ndarray,
                       *, progress: bool, label: str, state_train: dict[str, torch.Tensor] | None = None,
                       state_val: dict[str, torch.Tensor] | None = None,
                       warm: TwinNetwork | None = None) -> tuple[TwinNetwork, list[dict[str, float]]]:
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    net = TwinNetwork(config).to(opts.device)
    mean_rates = (y_train * m_train).sum(0) / m_train.sum(0).clamp_min(1)
    init_bias(net, mean_rates)
    if opts.init_positions not in ("data", "centre", "random"):
        raise InputError(f"init_positions must be data, centre or random, got {opts.init_positions!r}")
    jitter = (torch.rand(config.n_neurons, 2, generator=torch.Generator().manual_seed(seed)) - 0.5) * 0.05
    if warm is not None:       # warm start: every weight (core, readout positions, bias) from the earlier twin
        _load_warm(net, warm)
    elif opts.init_positions in ("data", "centre"):
        with torch.no_grad():
            start = torch.zeros(config.n_neurons, 2)
            if opts.init_positions == "data":
                start = estimate_positions(x_train, y_train, m_train)
                start[start.abs().amax(1) > opts.border_guard] = 0.0   # untrusted border estimates
            net.readout.mu[0, :, 0].copy_((start + jitter).clamp(-1, 1))
    if opts.initial_positions is not None:
        given = pixels_to_grid(np.asarray(opts.initial_positions), config.data_size or config.image_size,
                               config.image_size)
        ok = torch.isfinite(given).all(1)
        with torch.no_grad():
            mu = net.readout.mu[0, :, 0]
            mu[ok] = (given[ok] + jitter[ok]).clamp(-1, 1).to(mu)
    grid = [net.readout._mu, net.readout.sigma]
    others = [p for p in net.parameters() if all(p is not g for g in grid)]
    optim = torch.optim.Adam([{"params": others, "scale": 1.0},
                              {"params": [net.readout._mu], "scale": opts.position_lr_scale},
                              {"params": [net.readout.sigma], "scale": opts.position_lr_scale}], lr=opts.lr)
    for group in optim.param_groups:
        group["lr"] = opts.lr * group["scale"]
    gen = torch.Generator().manual_seed(seed)
    best_score, best_state, best_epoch = -math.inf, copy.deepcopy(net.state_dict()), 0
    history: list[dict[str, float]] = []
    lr, decays, stale = opts.lr, 0, 0
    n = x_train.shape[0]
    bar = tqdm(range(opts.max_epochs), desc=label, disable=not progress, unit="epoch", leave=False)
    for epoch in bar:
        if opts.position_warmup is not None and epoch == opts.position_warmup:
            optim.param_groups[1]["scale"] = 1.0                      # positions: full rate
            optim.param_groups[1]["lr"] = lr
            if opts.init_positions == "data" and net.shifter is not None and state_train and "eye" in state_train:
                realign_positions(net, x_train, y_train, m_train, state_train["eye"], border_guard=opts.border_guard)
        net.train()
        perm = torch.randperm(n, generator=gen)
        total, batches = 0.0, 0
        for i in range(0, n, opts.batch_size):
            idx = perm[i:i + opts.batch_size]
            if idx.numel() < 2:
                continue
            x = x_train[idx].to(opts.device)
            rate = net(x, prepared=True, **{k: v[idx].to(opts.device) for k, v in (state_train or {}).items()})
            loss = poisson_loss(rate, y_train[idx].to(opts.device), m_train[idx].to(opts.device))
            reg = opts.gamma_readout * net.readout.feature_l1() + opts.gamma_input * net.core.laplace_penalty()
            optim.zero_grad(set_to_none=True)
            (loss + reg).backward()
            optim.step()
            total += float(loss.detach())
            batches += 1
        val_corr = pearson_per_neuron(predict(net, x_val, prepared=True, **(state_val or {})), y_val)
        score = float(np.nanmean(val_corr)) if np.isfinite(val_corr).any() else -1.0
        history.append({"epoch": epoch + 1, "train_loss": total / max(batches, 1), "val_correlation": score,
                        "lr": lr})
        bar.set_postfix(loss=f"{total / max(batches, 1):.3f}", val_r=f"{score:.3f}", lr=f"{lr:.1e}")
        if score > best_score + 1e-4:
            best_score, best_state, best_epoch, stale = score, copy.deepcopy(net.state_dict()), epoch + 1, 0
            continue
        stale += 1
        if stale >= opts.patience:
            if decays >= opts.lr_decay_steps:
                break
            decays, stale, lr = decays + 1, 0, lr * opts.lr_decay
            net.load_state_dict(best_state)
            for group in optim.param_groups:
                group["lr"] = lr * group["scale"]
    bar.close()
    net.load_state_dict(best_state)
    net.eval()
    history.append({"best_epoch": best_epoch, "best_val_correlation": best_score})
    return net, history


def _load_warm(net: TwinNetwork, warm: TwinNetwork) -> None:
    """Copy an earlier member's weights into ``net`` (same architecture and neurons, or one error)."""
    own, theirs = net.state_dict(), warm.state_dict()
    bad = sorted(k for k in own if k not in theirs or tuple(theirs[k].shape) != tuple(own[k].shape))
    if bad or set(theirs) - set(own):
        raise InputError(f"warm start: the earlier twin does not fit this architecture ({(bad or sorted(set(theirs) - set(own)))[:3]})")
    net.load_state_dict({k: v.detach().clone() for k, v in theirs.items()})


def train_twin(images: np.ndarray | torch.Tensor, responses: np.ndarray, *,
               out_dir: str | Path | None = None, neuron_ids: Sequence[str] | None = None,
               architecture: dict[str, Any] | None = None, options: TrainOptions | None = None,
               progress: bool = False, eye: np.ndarray | None = None, behavior: np.ndarray | None = None,
               split: dict[str, np.ndarray] | None = None, warm_start: TwinEnsemble | None = None) -> TrainResult:
    """Fit a twin (ensemble of ``options.members``) and, with ``out_dir``, save it with a report.

    ``eye`` (trials, images, 2) and ``behavior`` (trials, images, 3) (see :mod:`scorers.twin.io`)
    give the twin a shifter and a modulator; it is then trained on single trials, each at its own
    state, instead of on trial means. ``split`` (train/val/test image indices, e.g. from a
    sensorium folder's tiers) replaces the automatic split. ``warm_start`` (an ensemble with as many
    members, the same architecture and neurons) starts every member from the earlier twin's
    weights instead of a fresh initialisation: the closed loop's rounds retrain on the grown data.
    """
    from actmax.scorers.twin.io import check_state

    opts = options or TrainOptions()
    x_all = torch.as_tensor(images_to_nchw(np.asarray(images), where="images"))
    r = as_trials(np.asarray(responses, dtype=np.float64))
    if r.shape[1] != x_all.shape[0]:
        raise InputError(f"{x_all.shape[0]} images but responses have {r.shape[1]} images "
                         f"(shape {r.shape}; expected (trials, images, neurons) or (images, neurons))")
    if np.isinf(r).any():
        raise InputError("responses contain inf")
    states = {name: check_state(arr, r, name) for name, arr in (("eye", eye), ("behavior", behavior))
              if arr is not None}
    ids = [str(i) for i in (neuron_ids if neuron_ids is not None else range(r.shape[2]))]
    if len(ids) != r.shape[2]:
        raise InputError(f"{len(ids)} neuron ids for {r.shape[2]} neurons")
    oracle_all = oracle_correlation(r)
    kept = np.arange(r.shape[2])
    if opts.min_oracle is not None:
        kept = np.sort(select_neurons(oracle_all, threshold=opts.min_oracle))
        if kept.size == 0:
            raise InputError(f"no neuron has an oracle correlation >= {opts.min_oracle} "
                             f"(best {np.nanmax(oracle_all) if np.isfinite(oracle_all).any() else 'n/a'})")
        r = r[:, :, kept]
        ids = [ids[i] for i in kept]
    if opts.initial_positions is not None:
        if len(opts.initial_positions) != len(oracle_all):
            raise InputError(f"initial_positions has {len(opts.initial_positions)} rows for {len(oracle_all)} neurons")
        opts = replace(opts, initial_positions=[opts.initial_positions[i] for i in kept])
    counts = trial_counts(r)
    if split is None:
        split = split_images(counts, val_fraction=opts.val_fraction, test_fraction=opts.test_fraction,
                             test=opts.test_images, seed=opts.seed)
    else:
        split = _check_split(split, r.shape[1], counts)
    mean = trial_mean(r)                                        # (images, neurons)

    arch = dict(architecture or {})
    channels = int(arch.get("channels", x_all.shape[1]))
    image_size = int(arch.get("image_size", min(x_all.shape[-1], 32)))
    resized = to_size(to_channels(x_all, channels), image_size)    # the twin's preprocessing before z-scoring
    train_px = resized[torch.as_tensor(split["train"])]
    norms = (x_all - 0.5).flatten(1).norm(dim=1)
    arch.update(n_neurons=len(ids), neuron_ids=ids, channels=channels, image_size=image_size,
                input_mean=float(train_px.mean()), input_std=float(train_px.std().clamp_min(1e-6)),
                input_norm=float(norms[torch.as_tensor(split["train"])].median()),
                data_size=int(x_all.shape[-1]) if x_all.shape[-1] == x_all.shape[-2] else None,
                input_contrast=float(rms_contrast(x_all[torch.as_tensor(split["train"])]).median()))
    has_trial = np.isfinite(r).any(axis=2)                      # (trials, images)
    for name, arr in states.items():                           # statistics over the training trials
        rows = arr[:, split["train"]][has_trial[:, split["train"]]]
        part = "shifter" if name == "eye" else "modulator"
        arch.update({part: True, f"{name}_mean": rows.mean(0).tolist(), f"{name}_std": rows.std(0).tolist(),
                     f"{name}_min": rows.min(0).tolist(), f"{name}_max": rows.max(0).tolist()})
    if warm_start is not None:   # the earlier twin's input scaling: its weights were fitted to it
        arch.update(input_mean=warm_start.config.input_mean, input_std=warm_start.config.input_std)
    config = TwinConfig(**arch)
    x_prep = (resized - config.input_mean) / config.input_std

    if states:                                                  # single trials, each at its own state
        def pick_trials(idx: np.ndarray) -> tuple[torch.Tensor, np.ndarray, dict[str, torch.Tensor]]:
            t, i = np.nonzero(has_trial[:, idx])
            i = idx[i]
            st = {k: torch.as_tensor(v[t, i], dtype=torch.float32) for k, v in states.items()}
            return x_prep[torch.as_tensor(i)], r[t, i], st

        x_tr, y_np, st_tr = pick_trials(split["train"])
        y_tr = torch.as_tensor(y_np, dtype=torch.float32)
        m_tr = torch.isfinite(y_tr).float()
        y_tr = torch.nan_to_num(y_tr, nan=0.0)
        x_va, y_va, st_va = pick_trials(split["val"])
    else:
        y_tr = torch.as_tensor(mean[split["train"]], dtype=torch.float32)
        m_tr = torch.isfinite(y_tr).float()
        y_tr = torch.nan_to_num(y_tr, nan=0.0)
        x_tr = x_prep[torch.as_tensor(split["train"])]
        x_va, y_va, st_tr, st_va = x_prep[torch.as_tensor(split["val"])], mean[split["val"]], None, None
    if warm_start is not None and len(warm_start.members) != opts.members:
        raise InputError(f"warm start: the earlier twin has {len(warm_start.members)} members, options ask for {opts.members}")
    members, histories = [], []
    start = time.time()
    for k in range(opts.members):
        net, hist = _fit_member(config, opts, opts.seed * 1000 + k, x_tr, y_tr, m_tr, x_va, y_va,
                                progress=progress, label=f"twin member {k + 1}/{opts.members}",
                                state_train=st_tr, state_val=st_va,
                                warm=None if warm_start is None else warm_start.members[k])
        members.append(net)
        histories.append(hist)
    ensemble = TwinEnsemble(members).eval()
    report = evaluation_report(ensemble, x_prep, r, split, prepared=True, **states)
    report.update({
        "neuron_ids": ids, "kept_neurons": kept.tolist(), "oracle_all_neurons": _clean(oracle_all),
        "train_seconds": round(time.time() - start, 2), "history": histories,
        "options": asdict(opts), "config": config.to_dict(),
        "state": {"shifter": config.shifter, "modulator": config.modulator,
                  "trained_on": "single trials at their own state" if states else "trial means"},
    })
    ensemble.meta = {"summary": {k: report[k] for k in ("median_test_correlation", "mean_test_correlation",
                                                        "median_single_trial_test_correlation",
                                                        "median_oracle", "n_images", "split_sizes")}}
    result = TrainResult(ensemble, report, split)
    if out_dir is not None:
        out = Path(out_dir)
        save_twin(out, ensemble)
        report["readout"] = readout_report(ensemble, out_dir=out)
        write_report(out, report)
        result.out_dir = out
    else:
        report["readout"] = readout_report(ensemble)
    return result


def _check_split(split: dict[str, Any], n_images: int, counts: np.ndarray) -> dict[str, np.ndarray]:
    """A given split: train/val/test image indices, disjoint, in range, train and test non-empty."""
    out = {}
    for name in ("train", "val", "test"):
        idx = np.asarray(split.get(name, []), dtype=int).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n_images):
            raise InputError(f"split: {name} indices out of range 0..{n_images - 1}")
        out[name] = np.sort(idx[counts[idx] > 0])
    if len(np.concatenate(list(out.values()))) != len(set(np.concatenate(list(out.values())).tolist())):
        raise InputError("split: train, val and test share images")
    if out["train"].size < 8 or out["test"].size < 3:
        raise InputError(f"split: too few images (train {out['train'].size}, test {out['test'].size})")
    if out["val"].size == 0:                      # no validation tier: hold out 10 % of train
        rng = np.random.default_rng(0)
        perm = rng.permutation(out["train"])
        k = max(1, int(round(0.1 * perm.size)))
        out["val"], out["train"] = np.sort(perm[:k]), np.sort(perm[k:])
    return out


BORDER_PX, DISAGREE_PX = 1.5, 3.0


def gradient_rf(ensemble: torch.nn.Module, *, n_images: int = 16, seed: int = 0) -> np.ndarray:
    """The twin's gradient receptive field per neuron: mean squared input gradient (n, H, W)
    at low-contrast noise images around grey, in the twin's input resolution."""
    cfg = ensemble.config
    gen = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.05 * torch.randn(n_images, cfg.channels, cfg.image_size, cfg.image_size, generator=gen)).clamp(0, 1)
    maps = []
    ensemble.eval()
    for u in range(cfg.n_neurons):
        xi = x.clone().requires_grad_(True)
        ensemble(xi)[:, u].sum().backward()
        maps.append((xi.grad ** 2).sum(1).mean(0))
    return torch.stack(maps).numpy()


def readout_report(ensemble: torch.nn.Module, *, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Per-neuron readout: position and extent (px of the twin's input), the twin's gradient-RF
    centre, and warnings when the readout sits on the border or disagrees with the gradient RF.

    Positions are pixel indices (0 = first pixel centre) in the twin's ``image_size``.
    """
    from actmax.scorers.twin.model import describe_readout

    cfg = ensemble.config
    desc = describe_readout(ensemble)
    size = cfg.image_size
    sig = torch.stack([m.readout.sigma.detach().abs().flatten(1)[0].view(cfg.n_neurons, -1).mean(1)
                       for m in ensemble.members]).mean(0) * (size - 1) / 2
    rf = gradient_rf(ensemble)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    rows, warnings = [], []
    for u, name in enumerate(cfg.neuron_ids):
        w = rf[u] ** 2                                # sharpen: the centre of the strongest gradients
        tot = w.sum()
        gx, gy = (float((w * xx).sum() / tot), float((w * yy).sum() / tot)) if tot > 0 else (float("nan"),) * 2
        px, py = desc["position_px"][u]
        border = min(px, py, size - 1 - px, size - 1 - py) < BORDER_PX
        dist = math.hypot(px - gx, py - gy)
        row = {"neuron": name, "x_px": round(px, 2), "y_px": round(py, 2), "sigma_px": round(float(sig[u]), 3),
               "grad_rf_x_px": round(gx, 2), "grad_rf_y_px": round(gy, 2), "distance_px": round(dist, 2),
               "on_border": bool(border), "disagrees": bool(dist > DISAGREE_PX)}
        rows.append(row)
        if border:
            warnings.append(f"neuron {name}: readout at ({px:.1f}, {py:.1f}) px sits on the image border")
        if dist > DISAGREE_PX:
            warnings.append(f"neuron {name}: readout ({px:.1f}, {py:.1f}) px is {dist:.1f} px from the twin's "
                            f"gradient RF centre ({gx:.1f}, {gy:.1f})")
    report = {"image_size": size, "neurons": rows, "warnings": warnings}
    if out_dir is not None:
        from matplotlib.patches import Circle

        from actmax.core.run_plots import plt   # headless figures; the caller's pyplot backend is left alone

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "readout.json").write_text(json.dumps(report, indent=2))
        n = len(rows)
        cols = min(n, 6)
        fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(2.0 * cols, 2.1 * ((n + cols - 1) // cols)),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for u, row in enumerate(rows):
            ax = axes.flat[u]
            ax.imshow(rf[u], cmap="magma")
            ax.add_patch(Circle((row["x_px"], row["y_px"]), max(row["sigma_px"], 0.5), fill=False, color="cyan"))
            ax.plot(row["x_px"], row["y_px"], "c+")
            ax.plot(row["grad_rf_x_px"], row["grad_rf_y_px"], "wx")
            bad = row["on_border"] or row["disagrees"]
            ax.set_title(f"{row['neuron']}{' !' if bad else ''}", fontsize=8, color="red" if bad else "black")
        fig.suptitle("readout (+, circle: sigma) on the twin's gradient RF (x: its centre)", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "readout.png", dpi=100)
        plt.close(fig)
    return report


def _clean(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in np.asarray(values, float)]


def evaluation_report(model: torch.nn.Module, images: torch.Tensor, responses: np.ndarray,
                      split: dict[str, np.ndarray] | None = None, *, prepared: bool = False,
                      eye: np.ndarray | None = None, behavior: np.ndarray | None = None) -> dict[str, Any]:
    """Per-neuron test correlation (to trial means), single-trial correlation and oracle.

    With ``eye`` / ``behavior`` (trials, images, dims) a twin with a shifter / modulator predicts
    every test trial at its own state: the single-trial correlation compares those predictions
    with the trials, the test correlation compares their per-image mean with the trial means.
    Otherwise every trial of an image gets the same (stateless) prediction.
    """
    r = as_trials(responses)
    n_images = r.shape[1]
    test = np.arange(n_images) if split is None else split["test"]
    if test.size < 3:
        raise InputError(f"need at least 3 test images to measure correlations, got {test.size}")
    rt = r[:, test]
    cfg = getattr(model, "config", None)
    use = {k: v for k, v in (("eye", eye), ("behavior", behavior))
           if v is not None and cfg is not None and getattr(cfg, "shifter" if k == "eye" else "modulator", False)}
    has_trial = np.isfinite(rt).any(axis=2)
    if use:
        t, i = np.nonzero(has_trial)
        st = {k: torch.as_tensor(as_state(v)[:, test][t, i], dtype=torch.float32) for k, v in use.items()}
        per_trial = predict(model, images[torch.as_tensor(test[i])], prepared=prepared, **st)
        trial_pred = np.full((*rt.shape[:2], rt.shape[2]), np.nan)
        trial_pred[t, i] = per_trial
        pred = trial_mean(trial_pred)
    else:
        pred = predict(model, images[torch.as_tensor(test)], prepared=prepared)
        trial_pred = np.where(has_trial[..., None], pred[None], np.nan)
    target = trial_mean(rt)
    corr = pearson_per_neuron(pred, target)
    counts = trial_counts(rt)
    oracle = oracle_correlation(rt)
    single = pearson_per_neuron(trial_pred.reshape(-1, r.shape[2]), rt.reshape(-1, r.shape[2]))
    out: dict[str, Any] = {
        "n_images": int(n_images), "n_neurons": int(r.shape[2]),
        "split_sizes": {k: int(v.size) for k, v in (split or {"test": test}).items()},
        "test_trials_per_image": {"min": int(counts.min()), "max": int(counts.max()),
                                  "mean": float(counts.mean())},
        "test_correlation": _clean(corr),
        "single_trial_test_correlation": _clean(single),
        "oracle_correlation": _clean(oracle),
        "fraction_of_oracle": _clean(normalised_correlation(single, oracle)),
        "median_test_correlation": _nan_stat(np.nanmedian, corr),
        "mean_test_correlation": _nan_stat(np.nanmean, corr),
        "median_single_trial_test_correlation": _nan_stat(np.nanmedian, single),
        "median_oracle": _nan_stat(np.nanmedian, oracle),
        "predicted_at": sorted(use) or "no state",
    }
    return out


def as_state(array: np.ndarray) -> np.ndarray:
    """A state array (images, d) -> (1, images, d); (trials, images, d) passes through."""
    a = np.asarray(array, dtype=np.float64)
    return a[None] if a.ndim == 2 else a


def _nan_stat(fn: Any, values: np.ndarray) -> float | None:
    v = np.asarray(values, float)
    return None if not np.isfinite(v).any() else round(float(fn(v)), 6)


def write_report(out_dir: str | Path, report: dict[str, Any], *, title: str = "twin") -> tuple[Path, Path]:
    """``report.json`` and ``report.png`` (training curves, test correlations, oracle scatter)."""
    from actmax.core.run_plots import plt  # headless figures; the caller's pyplot backend is left alone

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / REPORT_JSON
    json_path.write_text(json.dumps(report, indent=2))
    corr = np.array([np.nan if v is None else v for v in report["test_correlation"]], float)
    oracle = np.array([np.nan if v is None else v for v in report["oracle_correlation"]], float)
    single = np.array([np.nan if v is None else v for v in report["single_trial_test_correlation"]], float)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for k, hist in enumerate(report.get("history", [])):
        epochs = [h["epoch"] for h in hist if "epoch" in h]
        ax.plot(epochs, [h["val_correlation"] for h in hist if "epoch" in h], label=f"member {k}")
    ax.set_xlabel("epoch"), ax.set_ylabel("validation correlation (mean)"), ax.set_title("training")
    if report.get("history"):
        ax.legend(fontsize=7)
    ax = axes[1]
    ok = np.isfinite(corr)
    ax.hist(corr[ok], bins=np.linspace(-0.2, 1, 25), color="tab:blue")
    med = report.get("median_test_correlation")
    if med is not None:
        ax.axvline(med, color="k", ls="--", label=f"median {med:.2f}")
        ax.legend(fontsize=8)
    ax.set_xlabel("test correlation (to trial mean)"), ax.set_ylabel("neurons"), ax.set_title(title)
    ax = axes[2]
    both = np.isfinite(oracle) & np.isfinite(single)
    if both.any():
        ax.scatter(oracle[both], single[both], s=14)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set_xlabel("oracle (leave-one-out) correlation"), ax.set_ylabel("single-trial test correlation")
    else:
        ax.text(0.5, 0.5, "no repeated test images:\nno oracle", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("oracle vs model")
    fig.tight_layout()
    png_path = out / REPORT_PNG
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path


def evaluate_saved_twin(twin_dir: str | Path, images_path: str | Path, responses_path: str | Path, *,
                        out_dir: str | Path | None = None, members: Sequence[int] | None = None,
                        eye_path: str | Path | None = None,
                        behavior_path: str | Path | None = None) -> dict[str, Any]:
    """``actmax twin eval``: correlations of a saved twin on a (held-out) recording (at each
    trial's state when eye / behaviour files are given and the twin has a shifter / modulator)."""
    from actmax.scorers.twin.io import check_state, load_state_file

    ensemble = load_twin(twin_dir, members=members)
    images = torch.as_tensor(load_images(images_path))
    responses, ids = load_responses(responses_path)
    responses = match_neurons(responses, ids, ensemble.config.neuron_ids, where=str(responses_path))
    if responses.shape[1] != images.shape[0]:
        raise InputError(f"{images.shape[0]} images but {responses.shape[1]} in the responses")
    states = {name: check_state(load_state_file(path, name), responses, name)
              for name, path in (("eye", eye_path), ("behavior", behavior_path)) if path is not None}
    report = evaluation_report(ensemble, images, responses, **states)
    report["neuron_ids"] = list(ensemble.config.neuron_ids)
    if out_dir is not None:
        write_report(out_dir, report, title="twin evaluation")
    return report


def train_from_files(images_path: str | Path, responses_path: str | Path, out_dir: str | Path, *,
                     architecture: dict[str, Any] | None = None, options: TrainOptions | None = None,
                     progress: bool = True, eye_path: str | Path | None = None,
                     behavior_path: str | Path | None = None) -> TrainResult:
    """``actmax twin train``: load the files, train, save the twin and its report."""
    from actmax.scorers.twin.io import load_state_file

    images = load_images(images_path)
    responses, ids = load_responses(responses_path)
    eye = load_state_file(eye_path, "eye") if eye_path is not None else None
    behavior = load_state_file(behavior_path, "behavior") if behavior_path is not None else None
    return train_twin(images, responses, out_dir=out_dir, neuron_ids=ids, architecture=architecture,
                      options=options, progress=progress, eye=eye, behavior=behavior)


def train_from_sensorium(folder: str | Path, out_dir: str | Path, *, architecture: dict[str, Any] | None = None,
                         options: TrainOptions | None = None, progress: bool = True, eye: bool = True,
                         behavior: bool = True) -> TrainResult:
    """``actmax twin train --sensorium DIR``: a sensorium-style folder (its tiers give the split)."""
    from actmax.scorers.twin.io import read_sensorium

    rec = read_sensorium(folder, eye=eye, behavior=behavior)
    result = train_twin(rec.images, rec.responses, out_dir=None, neuron_ids=rec.neuron_ids,
                        architecture=architecture, options=options, progress=progress, eye=rec.eye,
                        behavior=rec.behavior, split=rec.split)
    result.report["source"] = {"sensorium": str(folder), **{k: v for k, v in rec.notes.items() if k != "image_ids"}}
    out = Path(out_dir)
    save_twin(out, result.ensemble)
    result.report["readout"] = readout_report(result.ensemble, out_dir=out)
    write_report(out, result.report)
    result.out_dir = out
    return result

"""HessCMAES: CholeskyCMAES restricted to the top eigen-subspace of a generator's Hessian.

The lab's preset for spaces where a Hessian of the image metric (e.g. LPIPS) w.r.t. the code is
known: search only the ``cutoff`` directions with the largest eigenvalues and scale each by
``eigval^-expon``, so stiff directions (large image change per unit code) get small steps.
With ``B = diag(eigval^-expon) V^T`` (cutoff x dim, V the kept eigenvectors as columns), codes are
``x0 + y B`` and a CholeskyCMAES runs on the subspace coordinates ``y`` (starting at 0, so the
part of ``x0`` outside the subspace never changes). This is the reference's algorithm: its
``A`` (cutoff x dim) starts as ``B`` and its rank-1 updates act on the subspace side only.

Defaults follow the reference: ``expon`` = 1/2.5 (its BigGAN presets; the fc6 presets use
1/5 with cutoff 800 or 500 and sigma0 0.8), ``popsize`` = 4 + floor(3 log2 cutoff) and all
CMA constants computed with N = cutoff, ``a_update_freq`` = 10. The eigenpairs are sorted by
eigenvalue (largest first) whatever order they come in; the reference assumes they are.

The eigen-decomposition comes as arrays (``eigvals`` (k,), ``eigvecs`` (dim, k), columns are
eigenvectors as ``numpy.linalg.eigh`` returns them), as ``.npy`` paths for each, or as one ``.npz``
path in ``hessian`` with arrays ``eigvals`` and ``eigvecs`` (``eigvects`` is accepted). Files are
read with ``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from actmax.core.registry import optimizers
from actmax.optimizers.base import Optimizer
from actmax.optimizers.cholesky_cma import CholeskyCMA
from actmax.optimizers.common import (whole, array, check_dim, default_popsize,
                               initial_point, positive, require, tensor)
from actmax.core.errors import InputError, MissingFileError, OptimizerStateError

EIGVEC_KEYS = ("eigvecs", "eigvects")


def _load_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise MissingFileError(f"hess_cma: {name} file not found: {path}")
        try:
            loaded = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"hess_cma: cannot read {name} from {path} without unpickling "
                             f"(save plain numeric arrays): {exc}") from None
        if isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(f"hess_cma: {path} is an .npz archive; pass it as hessian=... instead of {name}=")
        value = loaded
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"hess_cma: {name} must be a numeric array or a .npy path") from None
    return out


def load_hessian(hessian: Any = None, eigvals: Any = None, eigvecs: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(eigvals (k,), eigvecs (dim, k)) from arrays, .npy paths or an .npz archive."""
    if hessian is not None:
        if eigvals is not None or eigvecs is not None:
            raise InputError("hess_cma: give either hessian=<.npz> or eigvals=/eigvecs=, not both")
        path = Path(hessian)
        if not path.is_file():
            raise MissingFileError(f"hess_cma: Hessian file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
                vec_key = next((k for k in EIGVEC_KEYS if k in keys), None)
                if "eigvals" not in keys or vec_key is None:
                    raise InputError(f"hess_cma: {path} must hold arrays 'eigvals' and 'eigvecs'; "
                                     f"it has {sorted(keys)}")
                eigvals, eigvecs = data["eigvals"], data[vec_key]
        except ValueError as exc:
            if "hess_cma" in str(exc):
                raise
            raise InputError(f"hess_cma: cannot read {path} as an .npz of plain arrays: {exc}") from None
    if eigvals is None or eigvecs is None:
        raise InputError("hess_cma needs the Hessian's eigendecomposition: hessian=<file.npz> "
                         "or eigvals=<array|.npy> and eigvecs=<array|.npy>")
    vals, vecs = _load_array(eigvals, "eigvals").reshape(-1), _load_array(eigvecs, "eigvecs")
    if vecs.ndim != 2 or vecs.shape[1] != vals.shape[0]:
        raise InputError(f"hess_cma: eigvecs must have shape (dim, {vals.shape[0]}) (one column per "
                         f"eigenvalue), got {vecs.shape}")
    if not (np.all(np.isfinite(vals)) and np.all(np.isfinite(vecs))):
        raise InputError("hess_cma: eigvals/eigvecs contain NaN or inf")
    return vals, vecs


@optimizers.register("hess_cma")
class HessCMA(Optimizer):
    """HessCMAES: CholeskyCMAES in the top-`cutoff` Hessian eigen-subspace, steps scaled by eigval^-expon."""

    name = "hess_cma"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 3.0, seed: int = 0,
                 hessian: str | None = None, eigvals: Any = None, eigvecs: Any = None,
                 cutoff: int | None = None, expon: float = 1 / 2.5, popsize: int | None = None,
                 a_update_freq: float | None = 10) -> None:
        where = self.name
        self.dim = check_dim(dim, where)
        self.x0 = initial_point(x0, self.dim, where)
        self.sigma0 = positive(sigma0, "sigma0", where)
        self.seed, self.expon = int(seed), float(expon)
        vals, vecs = load_hessian(hessian, eigvals, eigvecs)
        if vecs.shape[0] != self.dim:
            raise InputError(f"hess_cma: eigenvectors have {vecs.shape[0]} entries, the space has dim {self.dim}")
        self.cutoff = int(cutoff) if cutoff is not None else vals.shape[0]
        if not 1 <= self.cutoff <= vals.shape[0]:
            raise InputError(f"hess_cma: cutoff must be in [1, {vals.shape[0]}] (number of eigenpairs), "
                             f"got {self.cutoff}")
        order = np.argsort(-vals, kind="stable")[: self.cutoff]
        kept = vals[order]
        if np.any(kept <= 0):
            raise InputError(f"hess_cma: the top {self.cutoff} eigenvalues must be > 0 to scale steps by "
                             f"eigval^-expon (smallest kept: {kept.min():.3g}); lower cutoff")
        self.eigvals = kept
        self.basis = (kept ** -self.expon)[:, None] * vecs[:, order].T        # (cutoff, dim)
        self.basis_digest = hashlib.sha1(np.ascontiguousarray(self.basis).tobytes()).hexdigest()
        self.popsize = whole(popsize, "popsize", "hess_cma", 2) if popsize is not None else default_popsize(self.cutoff)
        self.core = CholeskyCMA(dim=self.cutoff, x0=np.zeros(self.cutoff), sigma0=self.sigma0, seed=self.seed,
                                popsize=self.popsize, a_update_freq=a_update_freq)

    @property
    def sigma(self) -> float:
        return self.core.sigma

    @property
    def mean(self) -> np.ndarray:
        return self.x0 + self.core.mean @ self.basis

    def _ask(self) -> np.ndarray:
        return self.x0 + self.core.ask() @ self.basis

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        self.core.tell(self.core.ask(), scores)     # the core's own pending population, in the subspace

    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "cutoff": self.cutoff, "expon": self.expon,
                "popsize": self.popsize, "basis_sha1": self.basis_digest}

    def _state(self) -> dict[str, Any]:
        return {"seed": self.seed, "x0": tensor(self.x0), "core": self.core.state_dict()}

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        require(state, ("x0", "core", "pending"), where)
        x0 = array(state["x0"])
        if x0 is None or x0.shape != (self.dim,):
            raise OptimizerStateError(f"{where}: x0 has the wrong shape")
        self.core.load_state_dict(state["core"])
        self.x0 = x0
        self.generation = self.core.generation     # states saved before the envelope had no generation

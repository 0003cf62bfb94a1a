"""A pycma ``CMAEvolutionStrategy``'s numeric state as plain data, and its restore without replay.

pycma keeps its state in the attributes of the strategy and of the objects it owns (sampler:
``C``, ``B``, ``D`` or VD/VkD factors; ``adapt_sigma``: the CSA path ``ps``; ``pc``, ``mean``,
``sigma``, counters, fitness history, the sampler's lazy-update bookkeeping, ...). Pickling it
would run code on load, and replaying the told scores costs as much as the run. Here the
attribute tree is written as data that ``torch.load(weights_only=True)`` reads:

* ``None``/bool/int/float/str as they are; numpy scalars as ``{"__scalar__": dtype, "value": x}``;
* numpy arrays as tensors (``{"__array__": tensor}``, bit-exact); a view of another array
  (``es.dC`` is the diagonal of ``es.sm.C``) as ``{"__view__": base, offset, shape, strides}``, so
  it stays a view after the restore;
* ``range`` as ``{"__range__": [start, stop, step]}``;
* lists, tuples, dicts (any hashable plain keys) as ``{"__list__"|"__tuple__"|"__dict__": ...}``;
* objects of pycma's own classes as ``{"__object__": "module.Class", "attrs": {...}}``
  (plus ``items`` for pycma's list/dict subclasses);
* every array, container and object gets an ``__id__``; a second reference to it is
  ``{"__ref__": id}``, so aliasing (``es.C is es.sm.C``) and cycles survive the round trip.

Callables (functions, bound methods: ``sm.randn``, ``eigenmethod``), the options and the logger
are not state: they are rebuilt from the spec. :func:`restore_es` writes a state *into* a strategy
freshly built with the same options, in place: objects are filled attribute by attribute, a
pycma object missing from the fresh tree (created lazily by pycma: ``timer``, ``best.last``) is
created with ``cls.__new__`` only from a class of pycma's already imported modules (nothing is
imported by name, no constructor runs); the dimension, mean, step size, paths and covariance
factors are checked after the restore. pycma's solution archives are keyed by
``hash(x.tobytes())``, which changes from one Python process to the next: their keys are
recomputed from the solutions they keep. Anything that does not fit is one :class:`~actmax.core.errors.OptimizerStateError`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actmax.core.errors import OptimizerStateError

#: attributes that are configuration or bookkeeping rebuilt from the spec, never state
#: ``timer`` is wall-clock time (not state: two identical runs differ in it); a restored strategy gets
#: a fresh one, so pycma's ``timeout`` option counts from the last resume
SKIP = frozenset({"opts", "inopts", "inputargs", "logger", "_es_opts", "callbackstop", "timer"})
_PLAIN = (type(None), bool, int, float, str)
_ARRAY_DTYPES = {np.dtype(t) for t in ("float64", "float32", "int64", "int32", "bool")}


def _is_pycma(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "cma" and hasattr(value, "__dict__")


def _is_options(value: Any) -> bool:
    return type(value).__name__ == "CMAOptions"


class _Encoder:
    def __init__(self) -> None:
        self.ids: dict[int, int] = {}
        self.keep: list[Any] = []        # keeps encoded objects alive so ids stay unique

    def _new_id(self, value: Any) -> int | None:
        k = id(value)
        if k in self.ids:
            return self.ids[k]
        self.ids[k] = len(self.ids)
        self.keep.append(value)
        return None

    def __call__(self, value: Any, path: str) -> Any:
        t = type(value)
        if t in _PLAIN:
            return value
        if isinstance(value, np.generic) and not isinstance(value, np.ndarray):
            if value.dtype not in _ARRAY_DTYPES:
                raise OptimizerStateError(f"pycma state {path}: cannot store a numpy {value.dtype} scalar")
            return {"__scalar__": value.dtype.name, "value": value.item()}
        if t is range:
            return {"__range__": [value.start, value.stop, value.step]}
        if callable(value) and not _is_pycma(value):
            return _SKIPPED
        seen = self._new_id(value)
        if seen is not None:
            return {"__ref__": seen}
        me = self.ids[id(value)]
        if t is np.ndarray:
            if value.dtype not in _ARRAY_DTYPES:
                raise OptimizerStateError(f"pycma state {path}: cannot store a {value.dtype} array")
            root = value
            while isinstance(root.base, np.ndarray):
                root = root.base
            if root is not value:        # a view (``dC`` is the diagonal of ``sm.C``): kept a view of its base
                base = self(root, f"{path}.base")
                if base is _SKIPPED or not (root.flags.c_contiguous or root.flags.f_contiguous):
                    raise OptimizerStateError(f"pycma state {path}: cannot store a view of this array")
                offset = value.__array_interface__["data"][0] - root.__array_interface__["data"][0]
                return {"__view__": base, "offset": int(offset), "shape": list(value.shape),
                        "strides": list(value.strides), "dtype": value.dtype.name,
                        "writeable": bool(value.flags.writeable), "__id__": me}
            return {"__array__": torch.from_numpy(np.array(value, copy=True, order="K")), "__id__": me}
        if t in (list, tuple):
            items = [self(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if any(v is _SKIPPED for v in items):
                return _SKIPPED
            return {"__list__" if t is list else "__tuple__": items, "__id__": me}
        if t is dict:
            pairs = self._pairs(value, path)
            return _SKIPPED if pairs is None else {"__dict__": pairs, "__id__": me}
        if _is_options(value):
            return _SKIPPED          # the options are rebuilt from the spec
        if _is_pycma(value):
            out: dict[str, Any] = {"__object__": f"{t.__module__}.{t.__qualname__}", "__id__": me, "attrs": {}}
            for name, v in vars(value).items():
                if name in SKIP:
                    continue
                enc = self(v, f"{path}.{name}")
                if enc is not _SKIPPED:
                    out["attrs"][name] = enc
            if isinstance(value, list):
                out["items"] = [self(v, f"{path}[{i}]") for i, v in enumerate(value)]
            elif isinstance(value, dict):
                pairs = self._pairs(value, path)
                if pairs is not None:        # (a dict holding callables is configuration: left as built)
                    out["items"] = pairs
            return out
        return _SKIPPED          # anything else (options, loggers, foreign objects) is rebuilt, not stored

    def _pairs(self, value: dict, path: str) -> list[list[Any]] | None:
        pairs = []
        for k, v in value.items():
            if type(k) not in _PLAIN and not isinstance(k, (tuple, np.generic)):
                return None
            ek, ev = self(k, f"{path} key"), self(v, f"{path}[{k!r}]")
            if ek is _SKIPPED or ev is _SKIPPED:
                return None
            pairs.append([ek, ev])
        return pairs


_SKIPPED = object()


def es_state(es: Any) -> dict[str, Any]:
    """The numeric state of a pycma strategy as weights_only-loadable data (see the module docstring)."""
    return _Encoder()(es, "es")


class _Decoder:
    def __init__(self, fresh: Any) -> None:
        self.table: dict[int, Any] = {}
        self.classes: dict[str, type] = {}
        self._collect(fresh, set())

    def _collect(self, value: Any, seen: set[int]) -> None:
        """The pycma classes of the fresh tree: the only ones a restore may instantiate."""
        if id(value) in seen:
            return
        seen.add(id(value))
        if _is_pycma(value):
            t = type(value)
            self.classes[f"{t.__module__}.{t.__qualname__}"] = t
            for name, v in vars(value).items():
                if name not in SKIP:
                    self._collect(v, seen)
            if isinstance(value, (list, dict)):
                for v in (value.values() if isinstance(value, dict) else value):
                    self._collect(v, seen)
        elif type(value) in (list, tuple):
            for v in value:
                self._collect(v, seen)
        elif type(value) is dict:
            for v in value.values():
                self._collect(v, seen)

    def _register(self, enc: dict, value: Any) -> Any:
        if "__id__" in enc:
            self.table[int(enc["__id__"])] = value
        return value

    def __call__(self, enc: Any, current: Any, path: str) -> Any:
        if type(enc) in _PLAIN:
            return enc
        if not isinstance(enc, dict):
            raise OptimizerStateError(f"pycma state {path}: unexpected {type(enc).__name__}")
        if "__ref__" in enc:
            try:
                return self.table[int(enc["__ref__"])]
            except KeyError:
                raise OptimizerStateError(f"pycma state {path}: dangling reference") from None
        if "__range__" in enc:
            start, stop, step = (int(v) for v in enc["__range__"])
            return range(start, stop, step)
        if "__scalar__" in enc:
            dtype = np.dtype(str(enc["__scalar__"]))
            if dtype not in _ARRAY_DTYPES:
                raise OptimizerStateError(f"pycma state {path}: scalar of dtype {dtype}")
            return dtype.type(enc["value"])
        if "__array__" in enc:
            t = enc["__array__"]
            if not isinstance(t, torch.Tensor):
                raise OptimizerStateError(f"pycma state {path}: array entry is not a tensor")
            a = np.array(t.numpy(), copy=True, order="K")
            return self._register(enc, a)
        if "__view__" in enc:
            base = self(enc["__view__"], None, f"{path}.base")
            dtype = np.dtype(str(enc["dtype"]))
            if not isinstance(base, np.ndarray) or dtype not in _ARRAY_DTYPES:
                raise OptimizerStateError(f"pycma state {path}: malformed view")
            view = np.ndarray([int(n) for n in enc["shape"]], dtype=dtype, buffer=base, offset=int(enc["offset"]),
                              strides=[int(n) for n in enc["strides"]])     # (bounds checked by numpy)
            view.flags.writeable = bool(enc["writeable"]) and base.flags.writeable
            return self._register(enc, view)
        if "__list__" in enc or "__tuple__" in enc:
            items = enc.get("__list__", enc.get("__tuple__"))
            if "__list__" in enc:
                out: list[Any] = self._register(enc, [])
                out.extend(self._items(items, current, path))
                return out
            return self._register(enc, tuple(self._items(items, current, path)))
        if "__dict__" in enc:
            out_d: dict[Any, Any] = self._register(enc, {})
            self._fill_dict(out_d, enc["__dict__"], current, path)
            return out_d
        if "__object__" in enc:
            name = str(enc["__object__"])
            cls = self.classes.get(name) or _loaded_pycma_class(name)
            if cls is None:
                raise OptimizerStateError(f"pycma state {path}: {name} is not a class of this pycma strategy")
            obj = current if type(current) is cls else cls.__new__(cls)
            self._register(enc, obj)
            attrs = enc.get("attrs")
            if not isinstance(attrs, dict):
                raise OptimizerStateError(f"pycma state {path}: object without attributes")
            for attr, value in attrs.items():
                setattr(obj, attr, self(value, getattr(obj, attr, None), f"{path}.{attr}"))
            if isinstance(obj, list):
                obj[:] = self._items(enc.get("items", []), list(obj), path)
            elif isinstance(obj, dict) and "items" in enc:
                old = dict(obj)
                dict.clear(obj)
                self._fill_dict(obj, enc.get("items", []), old, path)
            return obj
        raise OptimizerStateError(f"pycma state {path}: unknown entry {sorted(enc)[:3]}")

    def _items(self, items: Any, current: Any, path: str) -> list[Any]:
        if not isinstance(items, (list, tuple)):
            raise OptimizerStateError(f"pycma state {path}: items are not a list")
        cur = list(current) if isinstance(current, (list, tuple)) and len(current) == len(items) else [None] * len(items)
        return [self(v, c, f"{path}[{i}]") for i, (v, c) in enumerate(zip(items, cur))]

    def _fill_dict(self, out: dict, pairs: Any, current: Any, path: str) -> None:
        if not isinstance(pairs, (list, tuple)):
            raise OptimizerStateError(f"pycma state {path}: dict items are not a list")
        cur = current if isinstance(current, dict) else {}
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise OptimizerStateError(f"pycma state {path}: malformed dict item")
            key = self(pair[0], None, f"{path} key")
            dict.__setitem__(out, key, self(pair[1], cur.get(key) if _hashable(key) else None, f"{path}[{key!r}]"))


def _rekey_solution_dicts(value: Any, seen: set[int]) -> None:
    """Recompute the keys of pycma's solution archives (``SolutionDict``: keyed by ``hash(x.tobytes())``,
    which differs between Python processes) from the solutions they keep (``_unhashed_keys``)."""
    if id(value) in seen or not _is_pycma(value):
        return
    seen.add(id(value))
    attrs = vars(value)
    if all(k in attrs for k in ("data", "_unhashed_keys", "data_with_same_key")) and callable(getattr(value, "key", None)):
        unhashed = attrs["_unhashed_keys"]

        def new(old: Any) -> Any:
            return value.key(unhashed[old]) if old in unhashed else old
        value.data = {new(k): v for k, v in attrs["data"].items()}
        value.data_with_same_key = {new(k): v for k, v in attrs["data_with_same_key"].items()}
        value._unhashed_keys = {new(k): v for k, v in unhashed.items()}
    for name, v in attrs.items():
        if name not in SKIP:
            _rekey_solution_dicts(v, seen)


def _loaded_pycma_class(name: str) -> type | None:
    """A class pycma creates lazily (``timer``, ``best.last``): looked up in pycma's modules already
    imported, never by importing anything; None if ``name`` is not such a class."""
    import sys
    module, _, qualname = name.rpartition(".")
    mod = sys.modules.get(module)
    if mod is None or module.split(".")[0] != "cma" or "." in qualname:
        return None
    cls = getattr(mod, qualname, None)
    return cls if isinstance(cls, type) and cls.__module__ == module else None


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def restore_es(fresh: Any, state: Any) -> Any:
    """Write a state from :func:`es_state` into ``fresh`` (a strategy just built with the same options)."""
    if not isinstance(state, dict) or state.get("__object__") != f"{type(fresh).__module__}.{type(fresh).__qualname__}":
        raise OptimizerStateError("pycma state is not the state of a CMAEvolutionStrategy")
    try:
        es = _Decoder(fresh)(state, fresh, "es")
    except OptimizerStateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed entry is one clear error
        raise OptimizerStateError(f"pycma state does not restore ({type(exc).__name__}: {exc})") from None
    _rekey_solution_dicts(es, set())
    if int(getattr(es, "countiter", 0)) > 0 and not hasattr(es, "timer"):
        from cma.utilities import utils as cma_utils
        es.timer = cma_utils.ElapsedWCTime()     # pycma's ask() expects a timer after the first iteration
    n = int(fresh.N)
    try:
        mean, sigma = np.asarray(es.mean), float(es.sigma)
        shapes = {"mean": (mean, (n,)), "pc": (getattr(es, "pc", None), (n,)),
                  "sm.C": (getattr(es.sm, "C", None), (n, n) if np.ndim(getattr(es.sm, "C", None)) == 2 else (n,)),
                  "sm.B": (getattr(es.sm, "B", None), (n, n) if np.ndim(getattr(es.sm, "B", None)) == 2 else (n,)),
                  "sm.D": (getattr(es.sm, "D", None), (n,))}
    except Exception as exc:  # noqa: BLE001
        raise OptimizerStateError(f"pycma state lacks its mean, step size or sampler ({exc})") from None
    for name, (a, shape) in shapes.items():
        if isinstance(a, np.ndarray) and a.ndim and a.shape != shape:
            raise OptimizerStateError(f"pycma state entry {name} has shape {a.shape}, expected {shape}")
    if int(es.N) != n or not np.all(np.isfinite(mean)) or not (np.isfinite(sigma) and sigma > 0):
        raise OptimizerStateError("pycma state holds a mean or step size that is not finite (corrupt state)")
    return es

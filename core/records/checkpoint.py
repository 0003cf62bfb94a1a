"""The checkpoint codec: ``torch.save`` bytes wrapped with their sha256, read with ``weights_only=True``."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import torch

from actmax.core.errors import RecordError
from actmax.core.files import sha256_bytes
from actmax.core.records.layout import CHECKPOINT_VERSION

def checkpoint_bytes(state: Mapping[str, Any]) -> bytes:
    """A checkpoint file: the state's ``torch.save`` bytes wrapped with their sha256."""
    inner = io.BytesIO()
    torch.save(dict(state), inner)
    body = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, "sha256": sha256_bytes(body),
                "body": torch.frombuffer(bytearray(body), dtype=torch.uint8)}, outer)
    return outer.getvalue()


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its sha256; any damage is one RecordError."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"checkpoint {path} is missing")

    def load(src: Any) -> Any:
        return torch.load(src, map_location="cpu", weights_only=True)

    try:
        outer = load(path)
        ok = (isinstance(outer, dict) and outer.get("version") == CHECKPOINT_VERSION
              and isinstance(outer.get("body"), torch.Tensor) and isinstance(outer.get("sha256"), str))
        if ok:
            body = outer["body"].numpy().tobytes()
            if sha256_bytes(body) != outer["sha256"]:
                raise RecordError(f"checkpoint {path} is corrupt, truncated or edited (sha256 mismatch)")
            state = load(io.BytesIO(body))
    except RecordError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle refused, garbage bytes...
        raise RecordError(f"checkpoint {path} is corrupt, truncated or not an actmax checkpoint "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not ok or not isinstance(state, dict):
        raise RecordError(f"checkpoint {path} is not an actmax checkpoint of version {CHECKPOINT_VERSION}")
    return state


def state_field(state: Mapping[str, Any], *keys: str, where: str = "checkpoint") -> Any:
    """``state[k1][k2]...`` or one RecordError naming the missing key (never a bare KeyError)."""
    value: Any = state
    for k in keys:
        if not isinstance(value, Mapping) or k not in value:
            raise RecordError(f"{where} is missing {'/'.join(keys)} (corrupt or from another kind of run)")
        value = value[k]
    return value

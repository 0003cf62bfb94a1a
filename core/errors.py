"""Error types that mean "bad input" (reported as one line by the CLI, never a traceback)."""
from __future__ import annotations

from actmax.core.contracts import ContractError
from actmax.core.registry import RegistryError


class OptimizerStateError(ValueError):
    """A state dict that does not fit this optimizer."""


class RecordError(ValueError):
    """A run record or checkpoint that is missing, corrupt, truncated or does not fit."""


class WeightsError(FileNotFoundError):
    """Missing or mismatched model weights (the message says which file and how to provide it)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ContractError, RegistryError, OptimizerStateError, RecordError, WeightsError,
    ValueError, IndexError, FileNotFoundError,
)

"""Every error that means "bad input": the bottom layer of actmax (it imports nothing from actmax).

The command line prints an :class:`ActmaxError` as one ``error:`` line (exit code 2); any other
exception is a bug and keeps its traceback (``ACTMAX_DEBUG=1`` shows the traceback of an
``ActmaxError`` too). Each class also derives from the built-in exception that fits it
(``ValueError``, ``FileNotFoundError``, ``IndexError``), so ``except ValueError`` keeps working.
"""
from __future__ import annotations

__all__ = ["ActmaxError", "InputError", "ContractError", "RegistryError", "UntrustedCodeError", "OptimizerStateError",
           "RecordError", "WeightsError", "MissingFileError", "UnitIndexError", "CellSpecError", "ScorerWrapError", "CallableError",
           "RigError", "RigTimeoutError", "RigResponseError", "RigExchangeError", "USER_ERRORS"]


class ActmaxError(Exception):
    """Base of every user error: the input (a spec, an option, a file, a record) is wrong, not actmax."""


class InputError(ActmaxError, ValueError):
    """An option or argument with a value that cannot be used (the message says which and why)."""


class ContractError(ActmaxError, ValueError):
    """Data that breaks one of actmax's contracts (shape, range, NaN)."""


class RegistryError(ActmaxError, ValueError):
    """An unknown part name, a bad option, a bad import path or a name collision."""


class UntrustedCodeError(RegistryError):
    """A spec read from a record names a module that is not an installed plugin, and trust was not given."""


class OptimizerStateError(ActmaxError, ValueError):
    """A state dict that does not fit this optimizer."""


class RecordError(ActmaxError, ValueError):
    """A run record or checkpoint that is missing, corrupt, truncated or does not fit."""


class WeightsError(ActmaxError, FileNotFoundError):
    """Missing or mismatched model weights (the message says which file and how to provide it)."""


class MissingFileError(ActmaxError, FileNotFoundError):
    """An input file or folder (images, a campaign spec, a responses table) that does not exist."""


class UnitIndexError(ActmaxError, IndexError):
    """A unit index outside the scorer's units."""


class CellSpecError(ActmaxError, ValueError):
    """A campaign cell's record holds another spec than the campaign file's (edited or swapped): never resumed."""


class ScorerWrapError(ActmaxError, ValueError):
    """A module or function that cannot serve as a scorer (reported as one ``error:`` line)."""


class CallableError(ActmaxError, ValueError):
    """A ``callable`` scorer's function raised (reported as one ``error:`` line by the CLI)."""


class RigError(ActmaxError, RuntimeError):
    """The rig did not deliver usable responses (see the message for each block's fate)."""


class RigTimeoutError(RigError, TimeoutError, ValueError):
    """No responses arrived in time, and the retries are used up."""


class RigResponseError(RigError, ValueError):
    """Responses arrived but were malformed or incomplete, and the retries are used up."""


class RigExchangeError(RigError, ValueError):
    """The exchange folder holds something actmax refuses to touch (a symlink, another user's file)."""


#: what the CLI reports as one line (kept as a tuple for ``except USER_ERRORS``)
USER_ERRORS: tuple[type[BaseException], ...] = (ActmaxError,)

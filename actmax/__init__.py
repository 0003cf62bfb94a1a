"""actmax: most and least exciting inputs (MEIs/LEIs) of visual neurons.

The public API::

    import actmax
    actmax.list_parts()                                   # registered generators, optimizers, scorers
    actmax.describe("generators", "fourier")              # one part's options, defaults, preset, weights
    scorer = actmax.create("scorer", "model", kind="simple", n=2)
    result = actmax.synthesize(scorer=..., generator="fourier:size=64", units=[0, 1], out_dir="runs/mei")
    result = actmax.evolve(scorer=..., generator=["gabor", "fourier:size=32"], unit=0, out_dir="runs/evo")
    run = actmax.load_run("runs/evo")                     # scores, codes and stimuli of a record

The source folders ``core/``, ``generators/``, ``optimizers/`` and ``scorers/`` sit at the repository
root (the lab's layout); installed, they are ``actmax.core``, ``actmax.generators``, ...
"""
from __future__ import annotations

import os as _os

# In a source checkout the part folders are siblings of this one: let ``actmax.core`` etc. resolve there.
# In an installed wheel they are inside this folder and nothing is added.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "core")) and _os.path.isfile(_os.path.join(_root, "core", "__init__.py")):
    __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821

from actmax.core import __version__  # noqa: E402
from actmax.core.registry import create, list_parts  # noqa: E402
from actmax.core.describe import describe  # noqa: E402
from actmax.core.records import load_run  # noqa: E402
from actmax.core.evolve import evolve  # noqa: E402
from actmax.core.synthesize import synthesize  # noqa: E402
from actmax.core.apps.screen import screen  # noqa: E402



def _warn_if_shadowed() -> None:
    """A folder named ``actmax`` in the working directory that is not this package shadows it whenever
    Python starts there with the working directory first on the path (``python -c``, notebooks, scripts
    in that folder): ``actmax.synthesize`` then fails with a bare AttributeError. Say so while we can."""
    try:
        local = _os.path.join(_os.getcwd(), "actmax")
        if _os.path.isdir(local) and not _os.path.samefile(local, _here):
            import warnings

            warnings.warn(f"a folder named 'actmax' in the working directory ({local}) is not the actmax package "
                          f"(that is {_here}); Python started in this directory imports the folder instead, and "
                          "`actmax.<function>` then fails with AttributeError: rename the folder or work elsewhere",
                          stacklevel=3)
    except OSError:
        pass


_warn_if_shadowed()
del annotations  # the __future__ import: not part of the API (dir(actmax))

__all__ = ["__version__", "create", "list_parts", "describe", "load_run", "evolve", "synthesize", "screen"]

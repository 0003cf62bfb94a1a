"""actmax kernel: registries, specs, contracts, errors, records, weights resolver and the run loops.

The kernel imports nothing from ``actmax.generators``, ``actmax.optimizers`` or ``actmax.scorers``
(built-in parts are found through the registry, like plugins); applications live in
``actmax.core.apps`` and the command line in ``actmax.core.cli``.
"""
__version__ = "0.2.0"

"""Scorers: images in [0, 1] -> responses (B, units). Importing registers the built-ins."""
from actmax.scorers.base import Scorer
from actmax.scorers import model_neurons, callable, cnn, rig, twin, noisy  # noqa: F401  (registration)
from actmax.scorers.module_scorer import ModuleScorer, as_scorer
from actmax.core.registry import scorers as _registry

_registry.adapter = as_scorer   # a plain nn.Module or function passed as a scorer is wrapped (module_scorer.py)

__all__ = ["Scorer", "ModuleScorer", "as_scorer"]

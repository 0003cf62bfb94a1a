"""Scorers: images in [0, 1] -> responses (B, units). Importing registers the built-ins."""
from actmax.scorers.base import Scorer
from actmax.scorers import model_neurons, callable, cnn, rig, twin, noisy  # noqa: F401  (registration)

__all__ = ["Scorer"]

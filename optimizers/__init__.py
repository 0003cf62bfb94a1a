"""Optimizers: gradient-free ask/tell searches and the gradient ascent. Importing registers them."""
from optimizers.base import Optimizer
from optimizers import cma, ascent  # noqa: F401  (registration)

__all__ = ["Optimizer"]

"""Optimizers: gradient-free ask/tell searches and the gradient ascent. Importing registers them."""
from actmax.optimizers.base import Optimizer
from actmax.optimizers import cma, ascent  # noqa: F401  (registration)
from actmax.optimizers import cholesky_cma, sphere_cma, hess_cma, genetic, random_search  # noqa: F401

__all__ = ["Optimizer"]

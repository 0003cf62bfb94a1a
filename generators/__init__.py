"""Generator spaces: latent codes -> images in [0, 1]. Importing registers the built-ins."""
from generators.base import Generator
from generators import pixel, fourier, gabor, deepsim, biggan  # noqa: F401  (registration)

__all__ = ["Generator"]

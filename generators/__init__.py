"""Generator spaces: latent codes -> images in [0, 1]. Importing registers the built-ins."""
from actmax.generators.base import Generator
from actmax.generators import pixel, fourier, gabor, deepsim, biggan  # noqa: F401  (registration)

__all__ = ["Generator"]

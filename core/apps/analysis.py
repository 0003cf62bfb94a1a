"""Analyses of screens, evolutions and MEIs.

* **Selectivity**: Gini coefficient (any input: sorted here, an explicit policy for negative
  values), activation curves (sorted responses) with adaptive sampling of the steep parts.
* **Bidirectionality** (the DualNeuron idea, Franke/Willeke et al.'s "dual neurons": many visual
  neurons sit at an elevated baseline and are driven *below* it by a least-exciting input as well
  as above it by the most exciting one): excitation ``E = max - b``, suppression ``S = b - min``
  around the baseline ``b`` (the response to a uniform grey image by default).
* **Trajectories** of closed-loop evolution (Ponce lab figure statistics): normalised trajectories,
  the exponential convergence time constant (``scipy.optimize.curve_fit``) and the success test
  (t-test of the two blocks around the peak against the first two blocks).
* **Image similarity**: LPIPS (the ``lpips`` package, weights through :mod:`actmax.core.weights`) and the
  cosine between feature vectors of any scorer / CNN.
* **MEI vs Gabor**: best-fitting Gabor by least squares, masked luminance and contrast, n-fold
  rotational symmetry index (ours: correlation with the rotated image, :func:`rotational_symmetry`)
  and the seed notebook's spectral folio/quarto index (angular distribution of the power
  spectrum, :func:`spectral_symmetry_index`, as there and mean-removed), radially averaged power
  spectrum.

Coordinates: ``x`` is the column and ``y`` the row index of a pixel, pixel centres at integers.
"""
from __future__ import annotations

from actmax.core.apps.gabor import (GABOR_PARAMS, GaborFit, _grey, SpectrumFit, compare_to_gabor, estimate_mask,  # noqa: F401
                                    fit_gabor, gabor_image, masked_luminance_contrast, radial_power_spectrum,
                                    rotational_symmetry, spectral_symmetry_index, spectral_symmetry_indices)
from actmax.core.apps.similarity import LPIPS_TRUNKS, LPIPSDistance, feature_cosine, lpips_distance  # noqa: F401
from actmax.core.apps.statistics import (NEGATIVE_POLICIES, BidirectionalIndex, ExponentialFit,  # noqa: F401
                                         SuccessTest, activation_curve, adaptive_sample, analyze_trajectories,
                                         baseline_response, bidirectional_index, evolution_success,
                                         fit_time_constant, gini, gini_binned, normalise_trajectory)

__all__ = [
    "gini", "gini_binned", "activation_curve", "adaptive_sample", "baseline_response", "bidirectional_index",
    "BidirectionalIndex", "normalise_trajectory", "ExponentialFit", "fit_time_constant", "SuccessTest",
    "evolution_success", "analyze_trajectories", "LPIPSDistance", "lpips_distance", "feature_cosine",
    "gabor_image", "GaborFit", "fit_gabor", "estimate_mask", "masked_luminance_contrast",
    "rotational_symmetry", "spectral_symmetry_index", "spectral_symmetry_indices", "radial_power_spectrum",
    "SpectrumFit", "compare_to_gabor",
]

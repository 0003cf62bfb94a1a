"""Digital twins of recorded neurons: model (core + Gaussian readout), training, selection."""
from actmax.scorers.twin.model import (TwinConfig, TwinEnsemble, TwinNetwork, TwinScorer, load_twin,  # noqa: F401
                                save_twin)
from actmax.scorers.twin.selection import oracle_correlation, rank_neurons, select_neurons  # noqa: F401

__all__ = ["TwinConfig", "TwinEnsemble", "TwinNetwork", "TwinScorer", "load_twin", "save_twin",
           "oracle_correlation", "rank_neurons", "select_neurons"]

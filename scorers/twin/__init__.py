"""Digital twins of recorded neurons: model (core + Gaussian readout, optional shifter and modulator),
training, selection, recordings with per-trial state (eye position, behaviour; sensorium-style folders)."""
from actmax.scorers.twin.io import Recording, check_state, read_sensorium  # noqa: F401
from actmax.scorers.twin.model import (TwinConfig, TwinEnsemble, TwinNetwork, TwinScorer, load_twin,  # noqa: F401
                                save_twin)
from actmax.scorers.twin.selection import oracle_correlation, rank_neurons, select_neurons  # noqa: F401

__all__ = ["TwinConfig", "TwinEnsemble", "TwinNetwork", "TwinScorer", "load_twin", "save_twin",
           "oracle_correlation", "rank_neurons", "select_neurons", "Recording", "check_state", "read_sensorium"]

"""The closed loop's configuration (:class:`LoopConfig`): every choice of a run, seeded and validated;
its defaults were chosen by measurement (README, "The closed loop in rounds")."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from actmax.core.errors import InputError
from actmax.core.synthesize import DEFAULT_RECIPE


@dataclass
class LoopConfig:
    """One closed-loop run with rounds (all seeded). Defaults chosen by measurement (README)."""

    neurons: str = "model:kind=all,n=12,size=32,seed=0"
    rounds: int = 3
    n_natural: int = 1200
    n_mapping: int = 300
    n_test: int = 100
    repeats: int = 5
    window: float = 30.0
    aperture: float | None = 0.35
    norm: float = 3.0
    size: int | None = None          #: image size for scorers that do not say theirs
    seed: int = 0
    train_seed: int = 0
    members: int = 2
    architecture: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"max_epochs": 25, "lr": 0.01, "position_warmup": 10})
    retrain_epochs: int = 12
    #: epochs at the start of each warm-started fit (rounds >= 1) in which the readout positions learn at the
    #: slow rate (``position_lr_scale``) before the full rate; 0: full rate from the start, None (the default,
    #: chosen by the campaign, README): slow throughout, so readouts stay where round 0 and the re-seat put them
    retrain_position_warmup: int | None = None
    generator: str = "pixel"
    ascent: str = f"{DEFAULT_RECIPE},steps=128"
    synthesis_seeds: tuple[int, ...] = (0, 1, 2)
    gabor_probes: int = 8
    tuning: bool = True              #: rounds >= 1 show each neuron an RF-centred orientation (x colour) tuning block
    rf_update: bool = True           #: rounds >= 1 re-estimate every RF from everything recorded so far
    #: rounds >= 2 show, per neuron, this many jittered copies of the Gabor that drove it most as measured so far
    #: (an online hill-climb on the neuron). Off by default until the full campaign has measured it (README)
    refine_probes: int = 0
    #: the RF the loop works from: ``mapped`` (estimated from the recordings) or ``true`` (the scorer's own
    #: ``receptive_fields``, for readouts, probes and re-seating: model neurons only; the check that a
    #: readout started at the RF stays there)
    rf_start: str = "mapped"
    #: rounds >= 1 show, per neuron, this many natural patches with a hole at its RF (contrast only in
    #: the surround: where a cell sits at its floor). Off by default until measured (README)
    surround_probes: int = 0
    #: round 1 also shows every neuron whose round-0 maps found no linear or excitatory field (a dual-feature
    #: cell) its best tuning Gabor moved over a grid x grid square around its RF estimate, and the loop
    #: re-centres it where the responses peak, from then on (0: off; odd >= 3; README)
    position_grid: int = 0
    #: rounds >= 2 also show every neuron its best measured Gabor so far lengthened along its bars (4 lengths
    #: x 2 phases: a length-tuning curve, which finds end-stopping). Off by default until measured (README)
    length_tuning: bool = False
    #: every round also shows the blank (grey, with the same repeats), a candidate LEI: where it measures
    #: below every synthesised LEI of a neuron, the neuron's LEI is the blank (README)
    blank_lei: bool = True
    disagreement_step: float = 1.0
    natural_only: bool = False       #: the control: new natural patches instead of the loop's own stimuli
    min_gain: float = 0.02
    min_oracle: float = 0.1
    reliable_oracle: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise InputError(f"closed loop: --rounds must be an integer >= 1 (rounds after round 0), got {self.rounds!r}")
        if int(self.surround_probes) < 0:
            raise InputError(f"closed loop: surround_probes must be >= 0, got {self.surround_probes}")
        warmup = self.retrain_position_warmup
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
            raise InputError("closed loop: retrain_position_warmup must be an integer >= 0 or None (slow "
                             f"positions throughout), got {warmup!r}")
        grid = self.position_grid
        if isinstance(grid, bool) or not isinstance(grid, int) or not (grid == 0 or (grid >= 3 and grid % 2)):
            raise InputError(f"closed loop: position_grid must be 0 (off) or an odd integer >= 3, got {grid!r}")
        if int(self.refine_probes) < 0:
            raise InputError(f"closed loop: refine_probes must be >= 0, got {self.refine_probes}")
        for name in ("n_natural", "n_test", "repeats", "members"):
            if int(getattr(self, name)) < (2 if name in ("repeats", "n_test") else 1):
                raise InputError(f"closed loop: {name} must be >= {2 if name in ('repeats', 'n_test') else 1}, "
                                 f"got {getattr(self, name)}")
        if self.window <= 0 or self.norm <= 0:
            raise InputError(f"closed loop: window and norm must be > 0, got {self.window}, {self.norm}")
        self.synthesis_seeds = tuple(int(s) for s in self.synthesis_seeds)
        if self.rf_start not in ("mapped", "true"):
            raise InputError(f"closed loop: rf_start must be 'mapped' or 'true', got {self.rf_start!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LoopConfig":
        known = {f.name for f in fields(cls)}
        # a record from before the tuning block and the RF update resumes as it was recorded
        legacy = {k: False for k in ("tuning", "rf_update", "blank_lei", "length_tuning") if k not in d}
        for name in ("refine_probes", "surround_probes", "retrain_position_warmup", "position_grid"):  # later, off
            if name not in d:
                legacy[name] = 0
        return cls(**{**legacy, **{k: v for k, v in d.items() if k in known}})

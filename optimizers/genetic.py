"""Genetic algorithm of XDream / the Ponce lab (the GECCO 2022 benchmark's GA baseline).

One generation (scores told for the whole population):

1. sort by score; the best ``n_conserve`` codes survive unchanged (elitism);
2. fitness ``exp((s - s_max) / kT)`` with ``kT = max(kT_multiplier * std(s), 1e-8)``;
3. each of the ``popsize - n_conserve`` children picks two parents by roulette on the fitness
   (with replacement) and takes each gene from the first parent with probability
   ``parental_skew`` (element-wise crossover, 1 = no recombination);
4. each child gene mutates with probability ``mutation_rate`` by adding N(0, ``mutation_size``^2).

Defaults are the lab's benchmark parameters: popsize 40, mutation_rate 0.25, mutation_size 0.75,
kT_multiplier 2, n_conserve 10 (for smaller populations a quarter of them, at least 1, so any
popsize >= 2 works), parental_skew 0.75. (XDream's own example uses popsize 20 and a
``selectivity`` with kT = std / selectivity; the lab's version, used here, multiplies.)

Generation 0 is as in the lab: the space's own initial codes when the run loop passes ``prior``
(``prior(n)`` = the generator's ``init_codes``: N(0, 1) for DeePSim fc6, 0.7 noise + a class
embedding for BigGAN), otherwise ``popsize`` codes ``x0 + init_std * N(0, I)`` with
``init_std`` = 1 (with the default ``x0`` = 0 that is the reference's N(0, 1) start). An explicit
``init_std`` wins over ``prior``. ``sigma0`` (the run loop's CMA step size) plays no part.
Elites are re-evaluated every generation, as in the reference, which matters when responses
are noisy.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from actmax.core.registry import optimizers
from actmax.optimizers.base import Optimizer, rng_from_state, rng_state
from actmax.optimizers.common import (whole, array, check_dim, check_shape, initial_point,
                               positive, require, tensor)
from actmax.core.errors import InputError, OptimizerStateError


@optimizers.register("genetic")
class Genetic(Optimizer):
    """Genetic algorithm (XDream / Ponce lab): roulette selection, element-wise crossover, elitism.

    Options:
        dim: code dimension (from the generator)
        x0: centre of the initial population when no prior is used
        sigma0: the run loop's CMA step size; plays no part here
        seed: random seed
        popsize: codes per generation
        mutation_rate: probability that a code entry mutates
        mutation_size: standard deviation of a mutation (N(0, mutation_size^2) added to a gene)
        kT_multiplier: roulette temperature kT = kT_multiplier * std(scores) (higher: less greedy)
        n_conserve: best codes copied unchanged into the next generation (default min(10, popsize // 4))
        parental_skew: probability that a gene comes from the first parent (1: no recombination)
        init_std: generation 0 = x0 + init_std * N(0, I), winning over prior (default: the prior, else 1)
        prior: sampler of initial codes (the run supplies the generator's)
    """

    name = "genetic"

    def __init__(self, *, dim: int, x0: Any = None, sigma0: float = 1.0, seed: int = 0, popsize: int = 40,
                 mutation_rate: float = 0.25, mutation_size: float = 0.75, kT_multiplier: float = 2.0,
                 n_conserve: int | None = None, parental_skew: float = 0.75, init_std: float | None = None,
                 prior: Callable[[int], Any] | None = None) -> None:
        where = self.name
        self.dim = check_dim(dim, where)
        self.seed, self.popsize = int(seed), whole(popsize, "popsize", where)
        if self.popsize < 2:
            raise InputError(f"{where}: popsize must be >= 2, got {self.popsize}")
        self.n_conserve = int(n_conserve) if n_conserve is not None else min(10, max(1, self.popsize // 4))
        if not 0 <= self.n_conserve < self.popsize:
            raise InputError(f"{where}: n_conserve must be in [0, popsize), got {self.n_conserve}")
        self.mutation_rate, self.parental_skew = float(mutation_rate), float(parental_skew)
        for name, value in (("mutation_rate", self.mutation_rate), ("parental_skew", self.parental_skew)):
            if not 0 <= value <= 1:
                raise InputError(f"{where}: {name} must be a probability in [0, 1], got {value}")
        self.mutation_size = float(mutation_size)
        if self.mutation_size < 0:
            raise InputError(f"{where}: mutation_size must be >= 0, got {self.mutation_size}")
        self.kT_multiplier = positive(kT_multiplier, "kT_multiplier", where)
        self.sigma0 = positive(sigma0, "sigma0", where)
        self.init_std = positive(init_std, "init_std", where) if init_std is not None else 1.0
        x0 = initial_point(x0, self.dim, where)
        self.rng = np.random.default_rng(self.seed)
        if prior is not None and init_std is None:
            self.population = _prior_population(prior, self.popsize, self.dim, where)
        else:
            noise = self.rng.standard_normal((self.popsize, self.dim))
            self.population = x0[None] + self.init_std * noise
        self.kT: float | None = None

    def _ask(self) -> np.ndarray:
        return self.population.copy()

    def _tell(self, codes: np.ndarray, scores: np.ndarray) -> None:
        order = np.argsort(-scores, kind="stable")
        ranked, sorted_scores = codes[order], scores[order]
        self.kT = max(self.kT_multiplier * float(np.std(sorted_scores)), 1e-8)
        fitness = np.exp((sorted_scores - sorted_scores[0]) / self.kT)
        bins = np.cumsum(fitness)
        bins /= bins[-1]
        n_children = self.popsize - self.n_conserve
        last = len(bins) - 1
        parent1 = np.minimum(np.searchsorted(bins, self.rng.random(n_children), side="right"), last)
        parent2 = np.minimum(np.searchsorted(bins, self.rng.random(n_children), side="right"), last)
        from_first = self.rng.random((n_children, self.dim)) < self.parental_skew
        children = np.where(from_first, ranked[parent1], ranked[parent2])
        mutate = self.rng.random((n_children, self.dim)) < self.mutation_rate
        children[mutate] += self.rng.normal(0.0, self.mutation_size, size=int(mutate.sum()))
        self.population = np.vstack([ranked[: self.n_conserve], children])

    def _config(self) -> dict[str, Any]:
        return {"optimizer": self.name, "dim": self.dim, "popsize": self.popsize,
                "mutation_rate": self.mutation_rate, "mutation_size": self.mutation_size,
                "kT_multiplier": self.kT_multiplier, "n_conserve": self.n_conserve,
                "parental_skew": self.parental_skew}

    def _state(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": rng_state(self.rng), "population": tensor(self.population), "kT": self.kT}

    def _load_state(self, state: dict[str, Any], where: str) -> None:
        require(state, ("generation", "rng", "population"), where)
        population = check_shape(where, "population", array(state["population"]), (self.popsize, self.dim))
        if population is None:
            raise OptimizerStateError(f"{where}: population is missing")
        self.rng = rng_from_state(state["rng"])
        self.population = population
        self.kT = None if state.get("kT") is None else float(state["kT"])


def _prior_population(prior: Callable[[int], Any], n: int, dim: int, where: str) -> np.ndarray:
    """``n`` initial codes from the space's own sampler, as a float64 (n, dim) array."""
    codes = prior(n)
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().double().numpy()
    codes = np.array(codes, dtype=np.float64, copy=True)
    if codes.shape != (n, dim) or not np.all(np.isfinite(codes)):
        raise InputError(f"{where}: prior({n}) must give {n} finite codes of {dim} entries, got {codes.shape}")
    return codes

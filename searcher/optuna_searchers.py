"""Optuna samplers over a ``SearchSpace``: TPE, CMA-ES, random, grid, GP, NSGA-II.

The project's trials are the single source of truth. Every ``ask`` builds a fresh in-memory Optuna
study, replays the told trials (``optuna.trial.create_trial`` + ``study.add_trial``) and the
outstanding proposals (as RUNNING trials), and asks it with a fresh sampler seeded from
``(seed, number of trials so far)``. An ask is thus a pure function of the stored trials: a
restarted study proposes exactly what the uninterrupted one would have. Sampler state that Optuna
keeps in trial system attributes (CMA-ES's optimizer, the grid id, NSGA-II's generation) travels in
the trial's ``tags["optuna_system_attrs"]`` and is replayed with it.

Mapping of the space: a ``LogFloat`` is a log-scale ``FloatDistribution``; a ``PowerOfTwoInt`` is
searched as its exponent (``IntDistribution`` named ``log2_<name>``, so 1, 2, 4, 8 are neighbours);
a ``Categorical`` is a ``CategoricalDistribution``. COMPLETE trials carry the objective's values (and
its constraint, ``≤ 0`` feasible, for the constraint-aware TPE, GP and NSGA-II); FAILED trials and
results the objective cannot score become Optuna FAIL; PRUNED trials (successive halving) carry
their score at the rung where they stopped as an intermediate value.

Trial size: every search trial runs ``trial_samples`` samples (default ``n_samples``). Fewer buys more
trials on the same budget, each noisier; a stored study's confirmation re-checks its top candidates
on fresh blocks of the full ``n_samples`` either way (BENCHMARKS.md §9, 16-sample TPE trials).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Iterable

import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.trial import TrialState as OptunaState

from guidetune.storage.records import Trial, TrialState

from .base import Proposal, Searcher
from .errors import MissingDependencyError, SearchError
from .multifidelity import default_min_samples
from .objective import Objective
from .space import Categorical, LogFloat, PowerOfTwoInt, SearchSpace

SYSTEM_ATTRS_TAG = "optuna_system_attrs"


@contextlib.contextmanager
def quiet_optuna():
    """Silence Optuna's per-study INFO logs and experimental warnings for the duration."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def optuna_name(p) -> str:
    return f"log2_{p.name}" if isinstance(p, PowerOfTwoInt) else p.name


def optuna_distribution(p) -> BaseDistribution:
    if isinstance(p, LogFloat):
        return FloatDistribution(p.low, p.high, log=True)
    if isinstance(p, PowerOfTwoInt):
        return IntDistribution(p.log2_low, p.log2_high)
    return CategoricalDistribution(p.choices)


def to_optuna_value(p, value: Any) -> Any:
    return value.bit_length() - 1 if isinstance(p, PowerOfTwoInt) else value


def from_optuna_value(p, value: Any) -> Any:
    if isinstance(p, PowerOfTwoInt):
        return 2 ** int(value)
    if isinstance(p, LogFloat):
        return float(value)
    return value


def _stored_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(trial.constraints.values())


def derived_seed(seed: int, *counters: int) -> int:
    """A 32-bit sampler seed that depends only on the base seed and the study's progress."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *counters]).generate_state(1)[0])


class OptunaSearcher(Searcher):
    """Base of the Optuna-backed searchers; subclasses choose the sampler and the searched params."""

    name = "optuna"

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, *,
                 n_samples: int = 64,           # full size: the confirmation's block of fresh seeds
                 batch_size: int = 4,           # proposals per ask(None): one packed round
                 trial_samples: int | None = None,   # samples per search trial (None: n_samples)
                 start: str | dict | None = None,    # the first trial: the sampler's (None), "low", "center" or a point
                 trials: Iterable[Trial] = ()) -> None:
        if batch_size < 1:
            raise SearchError(f"batch_size must be >= 1, got {batch_size}")
        if trial_samples is not None and (not isinstance(trial_samples, int) or not 1 <= trial_samples <= n_samples):
            raise SearchError(f"trial_samples must be an integer in [1, n_samples={n_samples}], got {trial_samples!r}")
        self.batch_size = batch_size
        self.trial_samples = n_samples if trial_samples is None else trial_samples
        self.start = None if start is None else space.point_of(start)
        super().__init__(space, objective, seed, n_samples=n_samples, trials=trials)

    # ---- what is searched -----------------------------------------------------------------
    def searched_params(self) -> list:
        return list(self.space.params)

    def fixed_values(self) -> dict[str, Any]:
        """Values of space parameters this sampler does not search (CMA-ES's categoricals)."""
        return {}

    def distributions(self) -> dict[str, BaseDistribution]:
        return {optuna_name(p): optuna_distribution(p) for p in self.searched_params()}

    def to_optuna_params(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """Optuna params of a point, or ``None`` when the point lies outside this sampler's view."""
        out = {}
        for p in self.searched_params():
            if p.name not in values or not p.contains(values[p.name]):
                return None
            out[optuna_name(p)] = to_optuna_value(p, values[p.name])
        for name, value in self.fixed_values().items():
            if values.get(name) != value:
                return None
        return out

    def from_optuna_params(self, params: dict[str, Any]) -> dict[str, Any]:
        values = {p.name: from_optuna_value(p, params[optuna_name(p)]) for p in self.searched_params()}
        values.update(self.fixed_values())
        return {name: values[name] for name in self.space.names}

    # ---- the sampler ------------------------------------------------------------------------
    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    @property
    def _constraints_func(self):
        return _stored_constraints if getattr(self.objective, "kind", "") == "constrained" else None

    # ---- replay ------------------------------------------------------------------------------
    def frozen_trial(self, trial: Trial) -> optuna.trial.FrozenTrial | None:
        """The Optuna record of a told trial (``None`` for a point this sampler cannot represent)."""
        params = self.to_optuna_params(trial.params)
        if params is None:
            return None
        dists = self.distributions()
        attrs = dict(trial.tags.get(SYSTEM_ATTRS_TAG, {}))
        values = self.objective.values(trial.result) if trial.state is TrialState.COMPLETE else None
        kwargs: dict[str, Any] = dict(params=params, distributions=dists, system_attrs=attrs,
                                      user_attrs={"guidetune_number": trial.number})
        if values is not None and all(math.isfinite(v) for v in values):
            constraint = self.objective.constraint(trial.result)
            if constraint is not None:
                kwargs["constraints"] = {"fidelity": constraint}
            return optuna.trial.create_trial(state=OptunaState.COMPLETE, values=list(values), **kwargs)
        if trial.state is TrialState.PRUNED:
            score = self.objective.score(trial.result)
            step = int(trial.tags.get("rung", 0))
            inter = {step: score} if math.isfinite(score) else None
            return optuna.trial.create_trial(state=OptunaState.PRUNED, intermediate_values=inter, **kwargs)
        return optuna.trial.create_trial(state=OptunaState.FAIL, **kwargs)

    def build_study(self, sampler: optuna.samplers.BaseSampler | None = None,
                    asked: Iterable[Proposal] = ()) -> optuna.Study:
        """The told trials as finished Optuna trials; the pending ones and ``asked`` as running ones."""
        with quiet_optuna():
            study = optuna.create_study(directions=list(self.objective.directions), sampler=sampler)
            for t in self._told:
                ft = self.frozen_trial(t)
                if ft is not None:
                    study.add_trial(ft)
            for p in [*self._pending, *asked]:
                params = self.to_optuna_params(p.params)
                if params is not None:
                    study.add_trial(optuna.trial.create_trial(
                        state=OptunaState.RUNNING, params=params, distributions=self.distributions(),
                        system_attrs=dict(p.tags.get(SYSTEM_ATTRS_TAG, {}))))
        return study

    def natural_batch_size(self) -> int:
        return self.batch_size

    def _n_to_ask(self, n: int | None) -> int:
        return self.batch_size if n is None else n

    def _ask(self, n: int | None) -> list[Proposal]:
        k = self._n_to_ask(n)
        if k <= 0:
            return []
        out = []
        asked_before = len(self._told) + len(self._pending)
        if self.start is not None and not asked_before:   # the study's first trial
            out.append(Proposal(self.start, self.samples_of(0)))
        with quiet_optuna():
            sampler = self.make_sampler(derived_seed(self.seed, len(self._told), len(self._pending)))
        study = self.build_study(sampler, asked=out)
        dists = self.distributions()
        with quiet_optuna():
            for _ in range(k - len(out)):
                ot = study.ask(fixed_distributions=dists)
                frozen = study.get_trials(deepcopy=False)[ot.number]
                out.append(Proposal(self.from_optuna_params(ot.params), self.samples_of(asked_before + len(out)),
                                    tags={SYSTEM_ATTRS_TAG: dict(frozen.system_attrs)}))
        return out

    def samples_of(self, index: int) -> int:
        """The sample count of the study's ``index``-th search trial (0-based, in the order asked)."""
        return self.trial_samples


class TPESearcher(OptunaSearcher):
    """Optuna's multivariate TPE with the constant liar for batches; its random startup trials run small."""

    name = "tpe"

    def __init__(self, space, objective, seed=0, *, n_startup_trials: int = 8,
                 startup_samples: int | None = None,   # samples per startup trial (None: beam-mf's first level)
                 **kwargs) -> None:
        self.n_startup_trials = n_startup_trials  # random trials before TPE takes over
        super().__init__(space, objective, seed, **kwargs)
        if startup_samples is not None and (not isinstance(startup_samples, int)
                                            or not 1 <= startup_samples <= self.trial_samples):
            raise SearchError(f"startup_samples must be an integer in [1, trial_samples={self.trial_samples}], "
                              f"got {startup_samples!r}")
        # the random draws only locate the good region, so they run small, as beam-mf's first level does (a
        # quarter of the trial size, at least 16); the trials TPE models run at full size (BENCHMARKS.md §9)
        self.startup_samples = default_min_samples(self.trial_samples) if startup_samples is None else startup_samples

    def samples_of(self, index: int) -> int:
        """``startup_samples`` for the random startup trials, ``trial_samples`` once TPE models the results."""
        return self.startup_samples if index < self.n_startup_trials else self.trial_samples

    def make_sampler(self, seed):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True,
                                          constant_liar=True, constraints_func=self._constraints_func)


class RandomSearcher(OptunaSearcher):
    name = "random"

    def make_sampler(self, seed):
        return optuna.samplers.RandomSampler(seed=seed)


class GPSearcher(OptunaSearcher):
    """Optuna's GP-based Bayesian optimisation. Needs torch and scipy (project dependencies); the optional
    ``greenlet`` package (not installed here) lets Optuna run L-BFGS-B in batch, which is much faster —
    without it each ask on ~40 trials takes seconds on 2 CPU cores."""

    name = "gp"

    def __init__(self, space, objective, seed=0, *, n_startup_trials: int = 8, **kwargs) -> None:
        self.n_startup_trials = n_startup_trials
        super().__init__(space, objective, seed, **kwargs)

    def make_sampler(self, seed):
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                         constraints_func=self._constraints_func)


class NSGA2Searcher(OptunaSearcher):
    """NSGA-II, meant for the ``pareto`` objective (works on one objective too)."""

    name = "nsga2"

    def __init__(self, space, objective, seed=0, *, population_size: int = 16, **kwargs) -> None:
        self.population_size = population_size
        kwargs.setdefault("batch_size", population_size)
        super().__init__(space, objective, seed, **kwargs)

    def make_sampler(self, seed):
        return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed,
                                             constraints_func=self._constraints_func)


class CmaEsSearcher(OptunaSearcher):
    """CMA-ES over the continuous parameters.

    CMA-ES has no notion of categories: categorical parameters are FIXED, to ``fixed[name]`` or by
    default their first choice (the reference schedules), and never searched. Power-of-two integers
    are searched as integer exponents with CMA-ES with margin (``with_margin=True``), which keeps
    integer coordinates from collapsing onto one value. Needs the ``cmaes`` package.
    """

    name = "cmaes"

    def __init__(self, space, objective, seed=0, *, fixed: dict[str, Any] | None = None,
                 popsize: int | None = None, **kwargs) -> None:
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "the cmaes searcher needs the 'cmaes' package (Optuna's CmaEsSampler): pip install cmaes"
            ) from None
        self._fixed = {}
        for p in space.params:
            if isinstance(p, Categorical):
                value = (fixed or {}).get(p.name, p.choices[0])
                if value not in p.choices:
                    raise SearchError(f"fixed {p.name}={value!r} is not one of {list(p.choices)}")
                self._fixed[p.name] = value
        if not [p for p in space.params if not isinstance(p, Categorical)]:
            raise SearchError("CMA-ES needs at least one continuous or integer parameter")
        self.popsize = popsize
        if popsize is not None:
            kwargs.setdefault("batch_size", popsize)
        super().__init__(space, objective, seed, **kwargs)

    def searched_params(self):
        return [p for p in self.space.params if not isinstance(p, Categorical)]

    def fixed_values(self):
        return dict(self._fixed)

    def make_sampler(self, seed):
        return optuna.samplers.CmaEsSampler(seed=seed, popsize=self.popsize, with_margin=True,
                                            warn_independent_sampling=False,
                                            independent_sampler=optuna.samplers.RandomSampler(seed=seed))


class GridSearcher(OptunaSearcher):
    """Every point of ``space.grid()`` once, in an order Optuna's GridSampler draws from the seed."""

    name = "grid"

    def grid_search_space(self) -> dict[str, list[Any]]:
        return {optuna_name(p): [to_optuna_value(p, v) for v in p.ladder()] for p in self.space.params}

    @property
    def grid_size(self) -> int:
        return int(np.prod([len(v) for v in self.grid_search_space().values()]))

    def make_sampler(self, seed):
        # The seed shuffles the grid and a trial's stored grid_id indexes the shuffled grid, so it
        # must be the study's own seed, not the per-ask one.
        return optuna.samplers.GridSampler(self.grid_search_space(), seed=self.seed)

    def _visited(self) -> int:
        return len({t.tags.get(SYSTEM_ATTRS_TAG, {}).get("grid_id") for t in self._told} - {None})

    @property
    def finished(self) -> bool:
        return self._visited() >= self.grid_size

    def _n_to_ask(self, n):
        left = self.grid_size - self._visited() - len(self._pending)
        return max(0, min(left, super()._n_to_ask(n)))

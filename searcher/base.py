"""The searcher contract (ask / tell, rebuilt from stored trials) and the evaluator it drives.

A searcher holds only its configuration, a seed and the trials it was told; everything it knows is
rebuilt from those trials, so ``make_searcher(..., trials=stored)`` continues a stopped study
exactly where it stopped (optuna's sampler design).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Protocol, Sequence, runtime_checkable

from guidetune.evaluators.records import TrialResult
from guidetune.guidance.params import TFGParams

from .errors import SearchError, UnknownSearcherError
from .objective import Objective
from .space import SearchSpace
from guidetune.storage.records import Trial, TrialState


@runtime_checkable
class Evaluator(Protocol):
    """Runs configs that share ``TFGParams.structure()`` packed in one batch of ``n_samples`` each,
    sample ``i`` of every config seeded ``seed + i``; returns one result per config, in order."""

    def __call__(self, configs: list[TFGParams], n_samples: int, seed: int) -> list[TrialResult]: ...


@dataclass(frozen=True)
class Proposal:
    """What a searcher asks to run: a point of the space, its sample count, and tags that the study
    copies onto the trial (beam round, fidelity rung, sampler state). ``seed_offset`` moves the
    sample seeds (re-evaluations on held-out seeds)."""

    params: dict[str, Any]
    n_samples: int
    tags: dict[str, Any] = field(default_factory=dict)
    seed_offset: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", copy.deepcopy(dict(self.params)))
        object.__setattr__(self, "tags", copy.deepcopy(dict(self.tags)))
        if not isinstance(self.n_samples, int) or self.n_samples < 1:
            raise SearchError(f"a proposal needs n_samples >= 1, got {self.n_samples!r}")


class Searcher(ABC):
    """Base class: ``ask(n)`` proposals, ``tell(trial)`` finished trials, ``replay(trials)`` to rebuild.

    ``ask(None)`` returns the searcher's natural batch (a beam round, a rung, ``batch_size``
    samples); ``ask`` returns ``[]`` while it waits for outstanding tells or once ``finished``.
    """

    name: ClassVar[str] = "base"

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, *,
                 n_samples: int = 64, trials: Iterable[Trial] = ()) -> None:
        if not isinstance(n_samples, int) or n_samples < 1:
            raise SearchError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        self.space = space              # what is searched
        self.objective = objective      # how a result is scored
        self.seed = int(seed)           # the only source of randomness
        self.n_samples = n_samples      # samples per trial
        self._told: list[Trial] = []
        self._pending: list[Proposal] = []
        self.replay(trials)

    # ---- the core -----------------------------------------------------------------------
    def ask(self, n: int | None = None, *, limit: int | None = None) -> list[Proposal]:
        """``n`` proposals (fewer where the searcher has fewer to give), or with ``n=None`` the natural
        batch, cut to ``limit`` (the study's remaining trial allowance)."""
        if n is not None and n < 1:
            raise SearchError(f"ask(n) needs n >= 1 or None, got {n}")
        if n is None and limit is not None:
            natural = self.natural_batch_size()
            n = max(1, limit if natural is None else min(limit, natural))
        proposals = self._ask(n)
        self._pending.extend(proposals)
        return proposals

    def tell(self, trial: Trial) -> None:
        if not trial.state.is_finished:
            raise SearchError(f"tell() takes finished trials; trial {trial.number} is {trial.state.name}")
        for i, p in enumerate(self._pending):
            if p.params == trial.params and all(trial.tags.get(k) == v for k, v in p.tags.items()):
                del self._pending[i]
                break
        self._told.append(trial)
        self._on_tell(trial)

    def replay(self, trials: Iterable[Trial]) -> None:
        """Tell every finished trial, in order (unfinished ones were never answered: skipped)."""
        for t in trials:
            if t.state.is_finished:
                self.tell(t)

    def restore_pending(self, proposals: Iterable[Proposal]) -> None:
        """Take back proposals a stopped study had asked for and not finished (after ``replay``), so
        that the searcher neither asks for them again nor forgets them."""
        self._pending.extend(proposals)

    def natural_batch_size(self) -> int | None:
        """How many proposals ``ask()`` returns, or ``None`` when the searcher decides per round."""
        return None

    @property
    def told(self) -> tuple[Trial, ...]:
        return tuple(self._told)

    @property
    def pending(self) -> tuple[Proposal, ...]:
        return tuple(self._pending)

    @property
    def finished(self) -> bool:
        """True when the searcher will propose nothing more (beam rounds done, grid exhausted)."""
        return False

    def best(self, trials: Sequence[Trial]) -> Trial | None:
        """The trial to report: highest score among COMPLETE trials at the largest sample count."""
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        if not complete:
            return None
        n_max = max(t.n_samples for t in complete)
        top = [t for t in complete if t.n_samples == n_max]
        best = max(top, key=lambda t: self.objective.score(t.result))
        return best if self.objective.score(best.result) > -math.inf else None

    def score(self, trial: Trial) -> float:
        return self.objective.score(trial.result) if trial.state is TrialState.COMPLETE else -math.inf

    # ---- for subclasses -----------------------------------------------------------------
    @abstractmethod
    def _ask(self, n: int | None) -> list[Proposal]: ...

    def _on_tell(self, trial: Trial) -> None:
        """Update derived state; must depend only on the told trials (replay gives the same)."""


def _registry() -> dict[str, type[Searcher] | Any]:
    from .beam import BeamSearcher
    from .multifidelity import AdaptiveFidelityBeam, ProbeThenBeam, make_multifidelity_tpe
    from .optuna_searchers import (CmaEsSearcher, GPSearcher, GridSearcher, NSGA2Searcher,
                                   RandomSearcher, TPESearcher)

    return {
        "beam": BeamSearcher,
        "beam-mf": AdaptiveFidelityBeam,
        "portfolio": ProbeThenBeam,
        "tpe": TPESearcher,
        "tpe-mf": make_multifidelity_tpe,
        "cmaes": CmaEsSearcher,
        "random": RandomSearcher,
        "grid": GridSearcher,
        "gp": GPSearcher,
        "nsga2": NSGA2Searcher,
    }


DEFAULT_SEARCHER = "tpe"   # what a study uses unless it names one (BENCHMARKS.md §9, equal compute)
SEARCHER_NAMES = ("beam", "beam-mf", "portfolio", "tpe", "tpe-mf", "cmaes", "random", "grid", "gp", "nsga2")


def make_searcher(name: str, space: SearchSpace, objective: Objective, seed: int = 0,
                  **options: Any) -> Searcher:
    """Build a registered searcher; ``options`` go to its constructor (``n_samples``, ``trials``, ...)."""
    registry = _registry()
    if name not in registry:
        raise UnknownSearcherError(f"unknown searcher {name!r}; known searchers: {', '.join(SEARCHER_NAMES)}")
    return registry[name](space, objective, seed, **options)

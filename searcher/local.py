"""A search on this machine, no server: the task's evaluator, the chosen objective and searcher,
the study loop; what ``guidetune search`` calls."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.records import TrialResult
from guidetune.evaluators.tasks import Task, get_task
from guidetune.guidance import TFGParams

from .base import SEARCHER_NAMES, make_searcher
from .errors import SearchError, UnknownSearcherError
from .objective import ConstrainedValidity, MaximizeValidity, Objective, ParetoValidityFidelity
from .space import LogFloat, SearchSpace, default_tfg_space
from .study import StudyOutcome, run_study, tfg_denoiser_passes

OBJECTIVES = ("validity", "constrained", "pareto")


class TaskEvaluator:
    """The ``Evaluator`` protocol over a loaded task and target (what a Ray worker would hold)."""

    def __init__(self, task: Task, target: str, *, batch_size: int | None = None):
        self.task, self.target, self.batch_size = task, task.check_target(target), batch_size
        self.passes_per_sample = functools.partial(tfg_denoiser_passes, n_steps=task.steps)

    def __call__(self, configs: Sequence[TFGParams], n_samples: int, seed: int) -> list[TrialResult]:
        return evaluate(self.task, self.target, configs, n_samples, seed, batch_size=self.batch_size)


def task_space(task: Task, *, schedules: bool = False) -> SearchSpace:
    """The default TFG space with ρ̄ and μ̄ rescaled by the task's ``strength_scale`` (the
    log-likelihood's steepness differs by orders of magnitude between a classifier and a
    measurement with small noise)."""
    space = default_tfg_space(schedules=schedules)
    scale = getattr(task, "strength_scale", 1.0)
    params = tuple(
        LogFloat(p.name, p.low * scale, p.high * scale, start=p.start * scale, factor=p.factor, cap=p.cap * scale)
        if p.name in ("rho", "mu") else p
        for p in space.params
    )
    return dataclasses.replace(space, params=params)


def fidelity_yardsticks(task: Task, target: str, n_samples: int, seed: int, *, smallest: int = 8) -> tuple[dict[int, float], int]:
    """The unguided FD at n_samples, n_samples/2, … down to ``smallest`` (every count a multi-fidelity
    rung may use: FD is biased upward at small n, so each trial is held against its own n), and the
    unguided samples drawn for them."""
    table, drawn, n = {}, 0, n_samples
    while True:
        table[n], cost = task.fidelity_yardstick(target, n, seed + drawn)
        drawn += cost
        if n // 2 < smallest:
            return table, drawn
        n //= 2


def build_objective(kind: str, task: Task, unguided_fd: dict[int, float] | float | None, max_fd_ratio: float) -> Objective:
    lo, hi = task.validity_range
    if kind == "validity":
        return MaximizeValidity(validity_range=(lo, hi))
    values = list(unguided_fd.values()) if isinstance(unguided_fd, dict) else [unguided_fd]
    if unguided_fd is None or not all(v is not None and math.isfinite(v) and v > 0 for v in values):
        raise SearchError(f"objective {kind!r} needs a finite unguided Fréchet distance as its yardstick; "
                          "the task has no reference data for fidelity")
    if kind == "constrained":
        return ConstrainedValidity(unguided_fd=unguided_fd, max_ratio=max_fd_ratio, validity_range=(lo, hi))
    if kind == "pareto":
        return ParetoValidityFidelity(unguided_fd=unguided_fd, validity_range=(lo, hi))
    raise SearchError(f"unknown objective {kind!r}; choose one of {list(OBJECTIVES)}")


@dataclass(frozen=True)
class LocalSearch:
    outcome: StudyOutcome
    objective: Objective
    unguided_fd: dict[int, float] | None  # the fidelity yardstick by sample count (unguided samples of the target)
    samples_spent: int         # including the yardstick's unguided samples


def run_local_search(task_name: str, target: str, searcher_name: str, *, budget_samples: int | None = None,
                     budget_passes: float | None = None, seed: int = 0,
                     objective: str = "validity", max_fd_ratio: float = 1.2, n_samples: int = 32,
                     schedules: bool = False, searcher_options: dict[str, Any] | None = None,
                     progress: bool = True) -> LocalSearch:
    """Validate everything, then search. Bad names and budgets fail before any sampling."""
    task = get_task(task_name)
    evaluator = TaskEvaluator(task, target)
    if searcher_name not in SEARCHER_NAMES:
        raise UnknownSearcherError(f"unknown searcher {searcher_name!r}; known searchers: {', '.join(SEARCHER_NAMES)}")
    if objective not in OBJECTIVES:
        raise SearchError(f"unknown objective {objective!r}; choose one of {list(OBJECTIVES)}")
    if budget_samples is None and budget_passes is None:
        raise SearchError("give a budget: --budget-samples (samples drawn) and/or --budget-passes (denoiser passes)")
    if budget_samples is not None and budget_samples < n_samples:
        raise SearchError(f"budget of {budget_samples} samples is smaller than one trial ({n_samples} samples); "
                          "raise --budget-samples or lower --n-samples")
    space = task_space(task, schedules=schedules)
    unguided_fd, reference_cost = (None, 0) if objective == "validity" else fidelity_yardsticks(task, target, n_samples, seed)
    goal = build_objective(objective, task, unguided_fd, max_fd_ratio)
    searcher = make_searcher(searcher_name, space, goal, seed, n_samples=n_samples, **(searcher_options or {}))
    outcome = run_study(searcher, evaluator, budget_samples=budget_samples, budget_passes=budget_passes, seed=seed,
                        progress=progress)
    return LocalSearch(outcome, goal, unguided_fd, outcome.samples_spent + reference_cost)

"""Hyperparameter search for training-free guidance: spaces, trials, objectives, searchers, the study loop."""

from __future__ import annotations

from .base import SEARCHER_NAMES, Evaluator, Proposal, Searcher, make_searcher
from .beam import BeamSearcher
from .coordinator import Budget, StudyCoordinator, StudyOutcome, run_study, tfg_denoiser_passes
from .errors import (BudgetTooSmallError, EvaluatorContractError, MissingDependencyError, ObjectiveError,
                     SearchError, SearchSpaceError, UnknownSearcherError)
from .executors import Executor, GroupOutcome, InProcessExecutor, TrialGroup
from .multifidelity import AdaptiveFidelityBeam, SuccessiveHalving, make_multifidelity_tpe, rung_sizes
from .objective import (ConstrainedValidity, MaximizeValidity, Objective, ParetoValidityFidelity,
                        ReferenceTFGScore, objective_from_dict)
from .space import (Categorical, LogFloat, PowerOfTwoInt, SearchSpace, default_tfg_space,
                    reference_tfg_space)

__all__ = [
    "SEARCHER_NAMES", "Evaluator", "Proposal", "Searcher", "make_searcher", "BeamSearcher",
    "BudgetTooSmallError", "EvaluatorContractError", "MissingDependencyError", "ObjectiveError", "SearchError",
    "SearchSpaceError", "UnknownSearcherError",
    "AdaptiveFidelityBeam", "SuccessiveHalving", "make_multifidelity_tpe", "rung_sizes",
    "ConstrainedValidity", "MaximizeValidity", "Objective", "ParetoValidityFidelity", "ReferenceTFGScore",
    "objective_from_dict", "Categorical", "LogFloat", "PowerOfTwoInt", "SearchSpace", "default_tfg_space",
    "reference_tfg_space", "Budget", "StudyCoordinator", "StudyOutcome", "run_study", "tfg_denoiser_passes",
    "Executor", "GroupOutcome", "InProcessExecutor", "TrialGroup",
]

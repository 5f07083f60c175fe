"""The study loop: ask → pack by structure → evaluate → tell, under sample / denoiser-pass budgets.

Packing: proposals are grouped by ``(TFGParams.structure(), n_samples, seed)`` in order of first
appearance, and each group is ONE ``evaluate`` call (the evaluator runs it as one batch; continuous
strengths differ per config). Budgets are checked before each group: a group that would take the
study past a budget is never started, and the study ends there.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, Union

from guidetune.guidance.params import TFGParams

from .base import Evaluator, Proposal, Searcher
from .errors import BudgetTooSmallError, EvaluatorContractError, SearchError
from .space import SearchSpace
from .trial import Trial, TrialState

StopRequest = Union[threading.Event, Callable[[], bool], None]


class PassesPerSample(Protocol):
    def __call__(self, config: TFGParams) -> float: ...


def tfg_denoiser_passes(config: TFGParams, n_steps: int) -> float:
    """Denoiser passes per sample (ALGORITHMS.md cost): ``n_steps · N_recur · (1 forward + 1 backward if ρ ≠ 0)``."""
    return float(n_steps * config.n_recur * (2 if config.uses_variance_guidance else 1))


@dataclass(frozen=True)
class StudyOutcome:
    """What a finished study hands back: all trials in order, the reported best, and the curve."""

    trials: tuple[Trial, ...]
    best: Trial | None
    history: tuple[tuple[int, float], ...]   # (samples spent, best score so far) after each group
    samples_spent: int
    passes_spent: float
    stop_reason: str                          # finished | budget_samples | budget_passes | max_trials | patience | requested
    space: SearchSpace = field(repr=False)

    @property
    def best_score(self) -> float:
        return self.history[-1][1] if self.history else -math.inf

    def best_config(self) -> dict[str, Any] | None:
        """The best trial's full ``TFGParams`` dict, the JSON format ``TFGParams.from_dict`` reads."""
        return None if self.best is None else self.space.to_params(self.best.params).to_dict()


def _stop_requested(stop: StopRequest) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _group(proposals: Sequence[Proposal], space: SearchSpace, seed: int) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(proposals):
        key = (space.to_params(p.params).structure(), p.n_samples, seed + p.seed_offset)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def run_study(searcher: Searcher, evaluate: Evaluator, *,
              budget_samples: int | None = None,            # total samples (Σ n_samples over trials)
              budget_passes: float | None = None,           # total denoiser passes (Σ passes/sample × n_samples)
              passes_per_sample: PassesPerSample | None = None,  # cost model for budget_passes
              max_trials: int | None = None,                # stop after this many trials
              patience: int | None = None,                  # stop after this many rounds without a better best
              seed: int = 0,                                # first sample seed of every evaluation
              stop: StopRequest = None,                     # Event or callable: stop on request
              progress: bool = True,                        # tqdm progress bar
              resume: Sequence[Trial] = (),                 # stored trials of a stopped study, to continue
              on_trial: Callable[[Trial], None] | None = None,  # called with every finished trial (persist it)
              max_pack: int | None = None,                  # most configs in one evaluate call
              catch: tuple[type[BaseException], ...] = (),  # evaluator exceptions that fail a group, not the study
              ) -> StudyOutcome:
    """Drive ``searcher`` with ``evaluate`` until it is finished, a budget or ``max_trials`` is reached,
    the best score has not improved for ``patience`` rounds, or ``stop`` is requested.

    A round is one ``searcher.ask()`` and the evaluations and tells of all its proposals. Samples
    spent count ``n_samples`` per trial; passes spent count ``(forward + backward passes per sample)
    × n_samples`` from the results. ``budget_passes`` needs a cost model before evaluating: the
    ``passes_per_sample`` argument, else the evaluator's own ``passes_per_sample`` attribute. A
    budget that cannot pay for the cheapest first proposal raises ``BudgetTooSmallError`` before
    anything is evaluated. A result with ``failed`` set is recorded FAILED with its reason and the
    study goes on. ``resume`` replays stored trials into the (fresh) searcher and counts them.
    """
    for name, value in (("budget_samples", budget_samples), ("budget_passes", budget_passes),
                        ("max_trials", max_trials), ("patience", patience), ("max_pack", max_pack)):
        if value is not None and not value > 0:
            raise SearchError(f"{name} must be positive, got {value}")
    cost_model = passes_per_sample or getattr(evaluate, "passes_per_sample", None)
    if budget_passes is not None and cost_model is None:
        raise SearchError("budget_passes needs a cost model: pass passes_per_sample= (e.g. "
                          "functools.partial(tfg_denoiser_passes, n_steps=50)) or give the evaluator one")
    space = searcher.space

    trials: list[Trial] = list(resume)
    if resume:
        if searcher.told or searcher.pending:
            raise SearchError("resume= needs a fresh searcher; this one was already told trials")
        searcher.replay(resume)
    samples_spent = sum(t.n_samples for t in trials if t.state is not TrialState.PENDING)
    passes_spent = sum(_passes_of(t) for t in trials)
    history: list[tuple[int, float]] = []
    best = searcher.best(trials)
    best_score = searcher.score(best) if best is not None else -math.inf
    rounds_without_gain = 0
    stop_reason = "finished"

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=budget_samples, unit="sample", desc=f"{searcher.name} search", initial=samples_spent)

    first_round = True
    try:
        while True:
            if _stop_requested(stop):
                stop_reason = "requested"
                break
            if max_trials is not None and len(trials) >= max_trials:
                stop_reason = "max_trials"
                break
            proposals = searcher.ask(limit=None if max_trials is None else max_trials - len(trials))
            if not proposals:
                stop_reason = "finished"
                break
            if first_round:
                _check_budget_fits_one(proposals, space, budget_samples, budget_passes, cost_model,
                                       samples_spent, passes_spent)
                first_round = False
            improved = False
            stopped = None
            for group in _group(proposals, space, seed):
                for chunk in _chunks(group, max_pack):
                    props = [proposals[i] for i in chunk]
                    configs = [space.to_params(p.params) for p in props]
                    group_samples = sum(p.n_samples for p in props)
                    if budget_samples is not None and samples_spent + group_samples > budget_samples:
                        stopped = "budget_samples"
                        break
                    if budget_passes is not None:
                        predicted = sum(cost_model(c) * p.n_samples for c, p in zip(configs, props))
                        if passes_spent + predicted > budget_passes:
                            stopped = "budget_passes"
                            break
                    if _stop_requested(stop):
                        stopped = "requested"
                        break
                    n_samples, group_seed = props[0].n_samples, seed + props[0].seed_offset
                    running = [Trial(number=len(trials) + j, params=p.params, n_samples=p.n_samples,
                                     seed=group_seed, tags=p.tags).start() for j, p in enumerate(props)]
                    try:
                        results = evaluate(configs, n_samples, group_seed)
                        if len(results) != len(configs):
                            raise EvaluatorContractError(
                                f"evaluate returned {len(results)} results for {len(configs)} configs")
                        finished = [t.finish(r) for t, r in zip(running, results)]
                    except catch as exc:  # type: ignore[misc]
                        finished = [t.fail(f"{type(exc).__name__}: {exc}") for t in running]
                    for t in finished:
                        trials.append(t)
                        samples_spent += t.n_samples
                        passes_spent += _passes_of(t)
                        searcher.tell(t)
                        if on_trial is not None:
                            on_trial(t)
                    best = searcher.best(trials)
                    score = searcher.score(best) if best is not None else -math.inf
                    if score > best_score:
                        best_score, improved = score, True
                    history.append((samples_spent, best_score))
                    if bar is not None:
                        bar.update(group_samples)
                        bar.set_postfix(best=f"{best_score:.4g}", trials=len(trials))
                if stopped:
                    break
            if stopped:
                stop_reason = stopped
                break
            rounds_without_gain = 0 if improved else rounds_without_gain + 1
            if patience is not None and rounds_without_gain >= patience:
                stop_reason = "patience"
                break
    finally:
        if bar is not None:
            bar.close()
    return StudyOutcome(trials=tuple(trials), best=searcher.best(trials), history=tuple(history),
                        samples_spent=samples_spent, passes_spent=passes_spent, stop_reason=stop_reason,
                        space=space)


def _passes_of(trial: Trial) -> float:
    r = trial.result
    if r is None:
        return 0.0
    per_sample = (r.forward_passes or 0.0) + (r.backward_passes or 0.0)
    return per_sample * trial.n_samples if math.isfinite(per_sample) else 0.0


def _chunks(group: list[int], size: int | None) -> list[list[int]]:
    if size is None:
        return [group]
    return [group[i:i + size] for i in range(0, len(group), size)]


def _check_budget_fits_one(proposals, space, budget_samples, budget_passes, cost_model, samples_spent, passes_spent):
    cheapest = min(p.n_samples for p in proposals)
    if budget_samples is not None and samples_spent + cheapest > budget_samples:
        raise BudgetTooSmallError(
            f"budget_samples={budget_samples} cannot pay for one trial: the cheapest first proposal needs "
            f"{cheapest} samples ({samples_spent} already spent); raise the budget or lower n_samples"
        )
    if budget_passes is not None:
        cost = min(cost_model(space.to_params(p.params)) * p.n_samples for p in proposals)
        if passes_spent + cost > budget_passes:
            raise BudgetTooSmallError(
                f"budget_passes={budget_passes} cannot pay for one trial: the cheapest first proposal needs "
                f"{cost:g} denoiser passes ({passes_spent:g} already spent); raise the budget or lower n_samples"
            )

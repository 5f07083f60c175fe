"""The study coordinator: the planner (ask the searcher, number proposals in the store, group them by
structure, reserve in-flight samples against the budget) and the loop that hands groups to an
executor and records what comes back. The coordinator of a study is the only writer of its trials.

Packing: stored PENDING trials are grouped by ``(TFGParams.structure(), n_samples, seed)`` in number
order, and each group (cut to ``max_pack``) is ONE evaluate call. Budgets are hard caps: a group is
dispatched only if the samples (and predicted denoiser passes) already spent, plus those of the
groups in flight, plus its own fit; otherwise the longest head of it that fits is dispatched, nothing
more after it, and the phase ends when the in-flight groups are in (the rest stays PENDING).

Resume: ``run()`` on a study that a dead coordinator left RUNNING re-queues its RUNNING trials
(their next start is attempt + 1), rebuilds the searcher from the finished trials in the stored
order of tells plus the PENDING ones, and carries on; COMPLETE trials are never re-run.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, Union

from guidetune.evaluators.config_io import json_safe
from guidetune.guidance.params import TFGParams
from guidetune.storage.records import StudyState, Trial, TrialState
from guidetune.storage.store import StudyStore, coordinator_id

from . import confirm as confirmation
from .base import Evaluator, Proposal, Searcher
from .confirm import ConfirmPolicy, is_confirmation
from .errors import BudgetTooSmallError, SearchError
from .executors import Executor, InProcessExecutor, TrialGroup, check_outcome
from .space import SearchSpace

StopRequest = Union[threading.Event, Callable[[], bool], None]
PAUSED = "paused"   # a run stopped by ``pause``: the study goes back to QUEUED, to be resumed
CANCEL_POLL_SECONDS = 1.0   # how often a running study reads its cancel flag


class PassesPerSample(Protocol):
    def __call__(self, config: TFGParams) -> float: ...


def tfg_denoiser_passes(config: TFGParams, n_steps: int) -> float:
    """Denoiser passes per sample (ALGORITHMS.md cost): ``n_steps · N_recur · (1 forward + 1 backward if ρ ≠ 0)``."""
    return float(n_steps * config.n_recur * (2 if config.uses_variance_guidance else 1))


@dataclass(frozen=True)
class Budget:
    samples: int | None = None      # total samples (trials and the yardstick)
    passes: float | None = None     # total denoiser passes (forward + backward)
    trials: int | None = None       # total trials numbered

    def __post_init__(self) -> None:
        for name in ("samples", "passes", "trials"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SearchError(f"budget_{name} must be positive, got {value}")

    def search_share(self, policy: ConfirmPolicy, n_samples: int) -> "Budget":
        """What the search may spend when ``policy`` holds part of each budget back for the confirmation
        (``ConfirmPolicy.reserve``; a budget too small to confirm is left whole)."""
        samples = None if self.samples is None else \
            self.samples - int(policy.reserve(self.samples, policy.min_replicates * n_samples))
        passes = None if self.passes is None else self.passes - policy.reserve(self.passes, 0.0)
        trials = None if self.trials is None else self.trials - math.ceil(policy.reserve(self.trials, policy.min_replicates))
        return Budget(samples, passes, trials)


@dataclass(frozen=True)
class StudyOutcome:
    """A study as it stands in the store: all trials by number, the reported best, the curve."""

    trials: tuple[Trial, ...]
    best: Trial | None
    history: tuple[tuple[int, float], ...]   # (samples spent, reported best score) after each tell
    samples_spent: int                        # trials and the yardstick
    passes_spent: float
    stop_reason: str                          # finished | budget_samples | budget_passes | budget_trials | requested
    space: SearchSpace = field(repr=False)
    confirmation: dict[str, Any] | None = None   # the fresh-seed re-evaluation (``confirm.summarise``), if any

    @property
    def best_score(self) -> float:
        return self.history[-1][1] if self.history else -math.inf

    @property
    def told(self) -> tuple[Trial, ...]:
        """Finished trials in the order they were told: what a searcher is rebuilt from."""
        return tuple(sorted((t for t in self.trials if t.tell_seq is not None), key=lambda t: t.tell_seq))

    def best_config(self) -> dict[str, Any] | None:
        """The best trial's full ``TFGParams`` dict, the JSON format ``TFGParams.from_dict`` reads."""
        return None if self.best is None else dict(self.best.config)


def outcome_of(store: StudyStore, study_id: int, space: SearchSpace) -> StudyOutcome:
    study = store.get_study(study_id)
    curve = tuple((n, -math.inf if b is None else b) for n, b in store.best_curve(study_id))
    return StudyOutcome(trials=tuple(store.trials(study_id)), best=store.best_trial(study_id), history=curve,
                        samples_spent=study.samples_spent, passes_spent=study.passes_spent,
                        stop_reason=study.stop_reason or "", space=space, confirmation=study.confirmation)


def _stop_requested(stop: StopRequest) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


class StudyCoordinator:
    """Runs one stored study to its end with ``searcher`` (fresh: it is rebuilt from the store) and
    ``executor``. ``stop`` and the store's cancel flag end it after the groups in flight.

    With a ``confirm`` policy the search spends only its share of the budget; when it ends, its top
    candidates are re-evaluated on fresh seeds with what is left (``confirm.py``), the plan and the
    summary are stored on the study, and the study's best becomes the candidate that scored best there.
    Confirmation trials are tagged ``phase: confirm`` and never told to the searcher."""

    def __init__(self, store: StudyStore, study_id: int, searcher: Searcher, executor: Executor, *,
                 budget: Budget = Budget(),
                 passes_per_sample: PassesPerSample | None = None,   # cost model for budget.passes
                 max_pack: int | None = None,                        # most configs in one evaluate call
                 stop: StopRequest = None,                           # Event or callable: stop on request
                 pause: StopRequest = None,                          # the same, leaving the study QUEUED
                 on_trial: Callable[[Trial], None] | None = None,    # called with every finished trial
                 progress: bool = False,                             # tqdm bar over samples
                 max_attempts: int = 5,                              # dispatches of a trial whose worker is lost
                 confirm: ConfirmPolicy | None = None,               # re-evaluate the top candidates on fresh seeds
                 identity: str | None = None) -> None:               # coordinator id (default host:pid)
        if max_pack is not None and max_pack < 1:
            raise SearchError(f"max_pack must be positive, got {max_pack}")
        if budget.passes is not None and passes_per_sample is None:
            raise SearchError("budget_passes needs a cost model: pass passes_per_sample= (e.g. "
                              "functools.partial(tfg_denoiser_passes, n_steps=50)) or give the evaluator one")
        self.store, self.study_id, self.searcher, self.executor = store, study_id, searcher, executor
        self.space = searcher.space
        self.full_budget, self.confirm = budget, confirm
        self.budget = budget if confirm is None else budget.search_share(confirm, searcher.n_samples)   # this phase's cap
        self.cost_model, self.max_pack = passes_per_sample, max_pack
        self.stop, self.pause, self.on_trial, self.progress = stop, pause, on_trial, progress
        self.max_attempts = max_attempts
        self.identity = identity or coordinator_id()
        self.study_seed = store.get_study(study_id).spec.seed
        self._in_flight: dict[int, tuple[TrialGroup, float]] = {}   # first number -> (group, predicted passes)
        self._pending: list[Trial] = []                               # stored PENDING trials, not dispatched
        self._running: dict[int, Trial] = {}                          # stored RUNNING trials by number
        self._cancel_checked = 0.0                                    # when the store's cancel flag was read
        self._told: list[Trial] = []                                  # finished trials in the order of tells
        self._confirmed: list[Trial] = []                             # finished confirmation trials
        self._plan: dict[str, Any] | None = None                      # the running confirmation's plan
        self._next_number = 0                                         # the number the next proposal gets
        self._spent, self._passes = 0, 0.0                            # what the study has spent so far

    # ---- the planner -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Replay the stored trials into the searcher: finished in the order of tells, then PENDING."""
        told = self.store.told_trials(self.study_id)
        if told and (self.searcher.told or self.searcher.pending):
            raise SearchError("the coordinator needs a fresh searcher: it rebuilds it from the stored trials")
        self._told = [t for t in told if not is_confirmation(t)]
        self._confirmed = [t for t in told if is_confirmation(t)]
        self.searcher.replay(self._told)
        pending = self.store.trials(self.study_id, states=[TrialState.PENDING])
        self._pending = list(pending)
        self.searcher.restore_pending([Proposal(t.params, t.n_samples, t.tags, seed_offset=t.seed - self.study_seed)
                                       for t in pending if not is_confirmation(t)])
        if self._plan is not None:   # confirming: only its trials run (the search's leftovers stay PENDING)
            self.budget = self.full_budget
            self._pending = [t for t in pending if is_confirmation(t)]
            if not self._confirmed and not self._pending:
                self._pending += self._add_confirmation_trials()   # the plan was stored, its trials were not

    # ---- the confirmation --------------------------------------------------------------------
    def _start_confirmation(self, search_stop: str) -> bool:
        """Plan the re-evaluation of the top candidates with what the search left, store the plan and
        its trials; False (and a ``skipped`` record saying why) when the budget left cannot pay for it."""
        policy, full, n = self.confirm, self.full_budget, self.searcher.n_samples
        cands = confirmation.candidates(self._told, self.searcher.score, policy.top)
        samples_left = None if full.samples is None else full.samples - self._spent
        passes_left = None if full.passes is None else full.passes - self._passes
        costs = [self.cost_model(TFGParams.from_dict(c.config)) for c in cands] if passes_left is not None else []
        trials_left = None if full.trials is None else full.trials - self._n_trials()
        k, r, extra = confirmation.plan(n, len(cands), policy, samples_left=samples_left, trials_left=trials_left,
                                        passes_left=passes_left, costs=costs)
        best = self.searcher.best(self._told)
        common = {"search_stop": search_stop, "search_samples": self._spent, "level": policy.level, "n_samples": n,
                  "search_best": None if best is None else {"number": best.number, "score": self.searcher.score(best)}}
        if k == 0:
            left = [f"{samples_left} samples"] if samples_left is not None else []
            left += [f"{passes_left:,.0f} denoiser passes"] if passes_left is not None else []
            left += [f"{trials_left} trials"] if trials_left is not None else []
            why = ("no trial of the search succeeded" if not cands else
                   f"{' and '.join(left)} left after the search; a confirmation needs {policy.min_replicates} "
                   f"blocks of {n} samples of its best candidate")
            self.store.record_confirmation(self.study_id, self.identity, {**common, "state": "skipped", "reason": why})
            return False
        self._plan = {**common, "state": "running", "replicates": r, "extra": extra,
                      "seed": confirmation.replicate_seed(self.study_seed, 0, n),
                      "candidates": [{"number": c.number, "params": c.params, "config": c.config,
                                      "search_score": self.searcher.score(c), "search_n_samples": c.n_samples}
                                     for c in cands[:k]]}
        self.store.record_confirmation(self.study_id, self.identity, json_safe(self._plan))
        self.budget = full
        self._pending = self._add_confirmation_trials()
        return True

    def _add_confirmation_trials(self) -> list[Trial]:
        n, plan = self._plan["n_samples"], self._plan
        blocks = [(r, i) for r in range(plan["replicates"]) for i in range(len(plan["candidates"]))]
        blocks += [(plan["replicates"], i) for i in range(plan.get("extra", 0))]   # one more for the first few
        rows = [dict(params=plan["candidates"][i]["params"], config=plan["candidates"][i]["config"], n_samples=n,
                     seed=confirmation.replicate_seed(self.study_seed, r, n),
                     tags={"phase": confirmation.PHASE, "candidate": i, "replicate": r,
                           "of": plan["candidates"][i]["number"]})
                for r, i in blocks]
        stored = self.store.add_trials(self.study_id, self.identity, rows, first_number=self._next_number)
        self._next_number += len(stored)
        return stored

    def _finish_confirmation(self) -> None:
        """Store the summary; the study's best becomes the candidate with the best fresh score."""
        summary = confirmation.summarise(self._plan, self._confirmed, self.searcher.objective)
        winner = summary["winner"]
        self.store.record_confirmation(self.study_id, self.identity, json_safe(summary),
                                       best_number=None if winner is None else winner["number"])

    def _propose(self) -> list[Trial]:
        """Ask the searcher and store its proposals PENDING (numbered by the store)."""
        if self._plan is not None:
            return []     # the confirmation's trials were all stored with its plan
        limit = None
        if self.budget.trials is not None:
            limit = self.budget.trials - self._n_trials()
            if limit <= 0:
                return []
        free = self.executor.capacity - len(self._in_flight)
        if self._in_flight:
            if free <= 0 or self.searcher.natural_batch_size() is None:
                return []    # a round-based searcher waits for its round; a sequential one fills free slots
            proposals = self.searcher.ask(free if limit is None else min(free, limit))
        else:
            proposals = self.searcher.ask(limit=limit)
        rows = []
        for p in proposals:
            config = self.space.to_params(p.params)
            rows.append(dict(params=p.params, config=config.to_dict(), n_samples=p.n_samples,
                             seed=self.study_seed + p.seed_offset, tags=p.tags))
        stored = self.store.add_trials(self.study_id, self.identity, rows, first_number=self._next_number)
        self._next_number += len(stored)
        return stored

    def _n_trials(self) -> int:
        return self._next_number

    def _groups(self, pending: Sequence[Trial]) -> list[TrialGroup]:
        buckets: dict[tuple, list[Trial]] = {}
        for t in pending:
            config = TFGParams.from_dict(t.config)
            buckets.setdefault((config.structure(), t.n_samples, t.seed), []).append(t)
        groups = []
        # re-queued trials first (they were dispatched before the rest), then in order of first number:
        # a resumed study dispatches in the order the uninterrupted one did
        for trials in sorted(buckets.values(), key=lambda ts: (min(t.attempt for t in ts) == 0, ts[0].number)):
            size = self.max_pack or len(trials)
            for lo in range(0, len(trials), size):
                chunk = trials[lo: lo + size]
                groups.append(TrialGroup(tuple(t.number for t in chunk),
                                         tuple(TFGParams.from_dict(t.config) for t in chunk),
                                         chunk[0].n_samples, chunk[0].seed))
        return groups

    def _over_budget(self, group: TrialGroup, spent: int, passes: float) -> tuple[str | None, float]:
        """Why ``group`` may not start (``None``: it may), and its predicted passes."""
        reserved = sum(g.samples for g, _ in self._in_flight.values())
        reserved_passes = sum(p for _, p in self._in_flight.values())
        predicted = 0.0
        if self.cost_model is not None:
            predicted = sum(self.cost_model(c) * group.n_samples for c in group.configs)
        if self.budget.samples is not None and spent + reserved + group.samples > self.budget.samples:
            return "budget_samples", predicted
        if self.budget.passes is not None and passes + reserved_passes + predicted > self.budget.passes:
            return "budget_passes", predicted
        return None, predicted

    def _check_first(self, groups: list[TrialGroup], spent: int, passes: float) -> None:
        """Before anything was spent on trials: the cheapest group must fit, or nothing starts."""
        if any(self._over_budget(g, spent, passes)[0] is None for g in groups):
            return
        cheapest = min(groups, key=lambda g: g.n_samples)
        one = TrialGroup(cheapest.numbers[:1], cheapest.configs[:1], cheapest.n_samples, cheapest.seed)
        reason, predicted = self._over_budget(one, spent, passes)
        if reason == "budget_samples":
            raise BudgetTooSmallError(
                f"budget_samples={self.budget.samples} cannot pay for one trial: the cheapest first proposal needs "
                f"{one.n_samples} samples ({spent} already spent); raise the budget or lower n_samples")
        if reason == "budget_passes":
            raise BudgetTooSmallError(
                f"budget_passes={self.budget.passes:g} cannot pay for one trial: the cheapest first proposal needs "
                f"{predicted:g} denoiser passes ({passes:g} already spent); raise the budget or lower n_samples")

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self) -> StudyOutcome:
        study = self.store.claim_study(self.study_id, self.identity)
        self._next_number = self.store.counts_total(self.study_id)
        if study.confirmation is not None and study.confirmation.get("state") == "running":
            self._plan = study.confirmation
        try:
            reason = self._loop(study.samples_spent, study.passes_spent, first=study.n_told == 0)
        except KeyboardInterrupt:
            self._release(StudyState.QUEUED, "interrupted; run the same command again to resume")
            raise
        except BaseException as exc:
            self._release(StudyState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        if reason == PAUSED:
            self._release(StudyState.QUEUED, "paused: the service stopped; it resumes when the service starts again")
            return outcome_of(self.store, self.study_id, self.space)
        state = StudyState.CANCELLED if reason == "requested" else StudyState.COMPLETE
        self._release(state, reason)
        return outcome_of(self.store, self.study_id, self.space)

    def _release(self, state: StudyState, reason: str) -> None:
        from guidetune.storage.errors import StorageError

        try:
            self.store.release_study(self.study_id, self.identity, state, reason)
        except StorageError:
            pass  # the store is gone or another coordinator took over: the next run resumes from the store

    def _loop(self, spent: int, passes: float, *, first: bool) -> str:
        """The search phase, then (with a ``confirm`` policy) the confirmation; the search's stop reason."""
        self._spent, self._passes = spent, passes
        self.store.requeue_running(self.study_id, self.identity)
        self._rebuild()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.full_budget.samples, unit="sample", desc=f"{self.searcher.name} search", initial=spent)
        try:
            if self._plan is None:
                reason = self._drive(bar, first)
                if self.confirm is None or reason in ("requested", PAUSED) or not self._start_confirmation(reason):
                    return reason
            reason = self._plan["search_stop"]
            if bar is not None:
                bar.set_description("confirming on fresh seeds")
            end = self._drive(bar, first=False)
            if end in ("requested", PAUSED):
                return end
            self._finish_confirmation()
            return reason
        finally:
            if bar is not None:
                bar.close()

    def _drive(self, bar, first: bool) -> str:
        """Dispatch and record until nothing is left to run in this phase (or a stop); why it ended."""
        stopping: str | None = None
        while True:
            if stopping is None and (_stop_requested(self.stop) or self._cancelled()):
                stopping = "requested"
            if stopping is None and _stop_requested(self.pause):
                stopping = PAUSED
            while stopping is None and len(self._in_flight) < self.executor.capacity:
                stopping, dispatched, first = self._fill(self._spent, self._passes, first)
                if not dispatched:
                    break
            if not self._in_flight:
                return stopping or "finished"
            for outcome in self.executor.wait():
                group, _ = self._in_flight.pop(outcome.group.numbers[0])
                for t in self._record(outcome):
                    self._spent += t.n_samples
                    self._passes += _passes_of(t)
                    if bar is not None:
                        bar.update(t.n_samples)
                        bar.set_postfix(best=f"{self._best_score():.4g}", trials=len(self._told))

    def _fill(self, spent: int, passes: float, first: bool) -> tuple[str | None, int, bool]:
        """Dispatch stored PENDING groups (asking the searcher for more when there are none) while slots
        are free; returns (why the study must stop, or None; groups dispatched; still before the first)."""
        stopping = None
        if not self._pending:
            self._pending = self._propose()
            if not self._pending and not self._in_flight:
                stopping = "budget_trials" if self._trials_exhausted() else "finished"
        groups = self._groups(self._pending)
        if first and groups:
            self._check_first(groups, spent, passes)
            first = False
        dispatched = 0
        for group in groups:
            if len(self._in_flight) >= self.executor.capacity:
                break
            reason, predicted = self._over_budget(group, spent, passes)
            if reason is not None:   # what fits of the group still runs (no samples left on the table)
                group, predicted = self._part_that_fits(group, spent, passes)
                if group is None:
                    return reason, dispatched, first
                stopping = reason
            worker = self.executor.worker_for(group)
            for t in self.store.start_trials(self.study_id, self.identity, group.numbers, worker=worker):
                self._running[t.number] = t
            self._pending = [t for t in self._pending if t.number not in group.numbers]
            self._in_flight[group.numbers[0]] = (group, predicted)
            self.executor.submit(group)
            dispatched += 1
            if stopping is not None:
                break
        return stopping, dispatched, first

    def _part_that_fits(self, group: TrialGroup, spent: int, passes: float) -> tuple[TrialGroup | None, float]:
        """The longest head of ``group`` that the budget still pays for (None if not even one trial)."""
        for m in range(len(group.numbers) - 1, 0, -1):
            head = TrialGroup(group.numbers[:m], group.configs[:m], group.n_samples, group.seed)
            reason, predicted = self._over_budget(head, spent, passes)
            if reason is None:
                return head, predicted
        return None, 0.0

    def _cancelled(self) -> bool:
        """The store's cancel flag, read at most once a second (another process sets it)."""
        now = time.monotonic()
        if now - self._cancel_checked < CANCEL_POLL_SECONDS:
            return False
        self._cancel_checked = now
        return self.store.cancel_requested(self.study_id)

    def _trials_exhausted(self) -> bool:
        return self.budget.trials is not None and self._n_trials() >= self.budget.trials

    def _record(self, outcome) -> list[Trial]:
        """Finish the group's trials: tell the searcher, then store each with the study's best. A lost
        worker's trials are re-queued instead, until they have been dispatched ``max_attempts`` times."""
        results = check_outcome(outcome)
        running = [self._running.pop(n) for n in outcome.group.numbers]
        if outcome.retry:
            again = [t for t in running if t.attempt < self.max_attempts]
            if again:
                self.store.requeue_running(self.study_id, self.identity, [t.number for t in again])
                self._pending = sorted(self._pending + [t.transition(TrialState.PENDING, worker=None) for t in again],
                                       key=lambda t: t.number)
            running = [t for t in running if t not in again]
        finished = []
        for trial in running:
            if results is not None:
                done = trial.finish(results[outcome.group.numbers.index(trial.number)])
            elif outcome.retry:
                done = trial.fail(f"{outcome.error}; gave up after {trial.attempt} attempts")
            else:
                done = trial.fail(outcome.error)
            if is_confirmation(done):
                self._confirmed.append(done)
            else:
                self.searcher.tell(done)
                self._told.append(done)
            best = self.searcher.best(self._told)
            best_score = self.searcher.score(best) if best is not None else None
            stored = self.store.finish_trial(
                self.study_id, self.identity, done, score=self.searcher.score(done), passes=_passes_of(done),
                best_number=None if best is None else best.number, best_score=best_score)
            finished.append(stored)
            if self.on_trial is not None:
                self.on_trial(stored)
        return finished

    def _best_score(self) -> float:
        best = self.searcher.best(self._told)
        return self.searcher.score(best) if best is not None else -math.inf


def _passes_of(trial: Trial) -> float:
    r = trial.result
    if r is None:
        return 0.0
    per_sample = (r.forward_passes or 0.0) + (r.backward_passes or 0.0)
    return per_sample * trial.n_samples if math.isfinite(per_sample) else 0.0


def run_study(searcher: Searcher, evaluate: Evaluator, *,
              budget_samples: int | None = None,            # total samples (Σ n_samples over trials)
              budget_passes: float | None = None,           # total denoiser passes (Σ passes/sample × n_samples)
              passes_per_sample: PassesPerSample | None = None,  # cost model for budget_passes
              max_trials: int | None = None,                # stop after this many trials
              seed: int = 0,                                # first sample seed of every evaluation
              stop: StopRequest = None,                     # Event or callable: stop on request
              progress: bool = True,                        # tqdm progress bar
              on_trial: Callable[[Trial], None] | None = None,  # called with every finished trial
              max_pack: int | None = None,                  # most configs in one evaluate call
              catch: tuple[type[BaseException], ...] = (),  # evaluator exceptions that fail a group, not the study
              ) -> StudyOutcome:
    """Drive ``searcher`` with ``evaluate`` in this process, on a throw-away in-memory store: the same
    coordinator, planner and executor interface as a stored study (``StudyService``), for library
    use and tests. Budgets and failures behave as documented on ``StudyCoordinator``."""
    from guidetune.storage.records import StudySpec

    budget = Budget(budget_samples, budget_passes, max_trials)
    cost_model = passes_per_sample or getattr(evaluate, "passes_per_sample", None)
    store = StudyStore("sqlite://", check=False)
    try:
        spec = StudySpec(task="in-process", target="-", searcher=searcher.name, space=searcher.space.to_dict(),
                         n_samples=searcher.n_samples, seed=seed, budget_samples=budget_samples,
                         budget_passes=budget_passes, budget_trials=max_trials)
        study = store.create_study("run_study", spec)
        coordinator = StudyCoordinator(store, study.id, searcher, InProcessExecutor(evaluate, catch=catch),
                                       budget=budget, passes_per_sample=cost_model, max_pack=max_pack, stop=stop,
                                       on_trial=on_trial, progress=progress)
        return coordinator.run()
    finally:
        store.close()

"""Executors: where a study's trial groups run. The coordinator submits groups and collects their
outcomes; it never evaluates anything itself. ``InProcessExecutor`` runs groups in the calling
process, one at a time (the Ray executor is the other implementation)."""

from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass
from typing import Protocol, Sequence

from guidetune.evaluators.records import TrialResult
from guidetune.guidance.params import TFGParams

from .base import Evaluator


@dataclass(frozen=True)
class TrialGroup:
    """Stored trials that run as ONE packed evaluate call: same structure, sample count and seed."""

    numbers: tuple[int, ...]            # the trials' numbers in the study
    configs: tuple[TFGParams, ...]      # one config per trial, in the same order
    n_samples: int                      # samples per config
    seed: int                           # first sample seed, shared by every config (common random numbers)

    @property
    def samples(self) -> int:
        return self.n_samples * len(self.numbers)


@dataclass(frozen=True)
class GroupOutcome:
    """What came back for a group: one result per config, or the error that failed the whole group."""

    group: TrialGroup
    results: tuple[TrialResult, ...] | None
    error: str | None
    worker: str
    retry: bool = False      # the worker was lost, not the trials: run them again elsewhere


class Executor(Protocol):
    """Runs trial groups; ``capacity`` of them may be in flight at once."""

    capacity: int

    def worker_for(self, group: TrialGroup) -> str:
        """Choose the worker that will run ``group`` (recorded on its trials before it starts)."""
        ...

    def submit(self, group: TrialGroup) -> None: ...

    def wait(self) -> list[GroupOutcome]:
        """Block until at least one submitted group has finished; return every finished one."""
        ...

    def in_flight(self) -> int: ...

    def close(self) -> None:
        """Release the workers (the study is over)."""
        ...


class InProcessExecutor:
    """Evaluate groups in this process, in submission order. Exceptions of the types in ``catch``
    fail the group (its trials are recorded FAILED with the reason); any other propagates."""

    capacity = 1

    def __init__(self, evaluate: Evaluator, *, catch: tuple[type[BaseException], ...] = ()) -> None:
        self.evaluate = evaluate                      # the Evaluator protocol: (configs, n_samples, seed) -> results
        self.catch = catch                            # exception types that fail a group, not the study
        self.worker = f"in-process:{socket.gethostname()}:{os.getpid()}"
        self._queue: deque[TrialGroup] = deque()

    def worker_for(self, group: TrialGroup) -> str:
        return self.worker

    def submit(self, group: TrialGroup) -> None:
        self._queue.append(group)

    def close(self) -> None:
        self._queue.clear()

    def in_flight(self) -> int:
        return len(self._queue)

    def wait(self) -> list[GroupOutcome]:
        group = self._queue.popleft()
        try:
            results = self.evaluate(list(group.configs), group.n_samples, group.seed)
        except self.catch as exc:  # type: ignore[misc]
            return [GroupOutcome(group, None, f"{type(exc).__name__}: {exc}", self.worker)]
        return [GroupOutcome(group, tuple(results), None, self.worker)]


def check_outcome(outcome: GroupOutcome) -> Sequence[TrialResult] | None:
    """The results of an outcome, checked against its group (the evaluator's contract)."""
    from .errors import EvaluatorContractError

    if outcome.results is None:
        return None
    if len(outcome.results) != len(outcome.group.configs):
        raise EvaluatorContractError(
            f"evaluate returned {len(outcome.results)} results for {len(outcome.group.configs)} configs")
    return outcome.results

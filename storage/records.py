"""Study and trial records: what the store keeps and the api, the coordinator and the searchers read.

Trial life cycle: PENDING → RUNNING → COMPLETE | FAILED | PRUNED, plus RUNNING → PENDING when a
coordinator re-queues the trial of a dead one (the attempt count goes up). A finished trial never
changes: ``transition`` returns a new record and refuses to touch a finished one, and the database
refuses the UPDATE too (optuna / OSS Vizier convention).

One form per configuration: ``params`` is the searched point, ``config`` the full ``TFGParams`` dict
derived from it once, when the store numbers the trial. The metrics of an evaluation are the
evaluator's own value object (``TrialResult``, a stdlib-only module); they carry no config.
"""

from __future__ import annotations

import copy
import enum
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from guidetune.evaluators.records import TrialResult

from .errors import IllegalTransitionError, ImmutableTrialError

SPEC_VERSION = 1   # version of the StudySpec format (bumped when its meaning changes)
RESOURCES = ("num_cpus", "num_gpus", "max_concurrent")


class TrialState(enum.Enum):
    PENDING = "pending"      # numbered and stored, not dispatched (or re-queued)
    RUNNING = "running"      # dispatched to a worker
    COMPLETE = "complete"    # evaluated; ``result`` holds finite metrics
    FAILED = "failed"        # evaluation failed; ``fail_reason`` says why
    PRUNED = "pruned"        # stopped early on purpose (e.g. eliminated at a fidelity rung)

    @property
    def is_finished(self) -> bool:
        return self in FINISHED

    def can_move_to(self, other: "TrialState") -> bool:
        return other in ALLOWED_TRANSITIONS[self]


FINISHED = frozenset({TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED})

ALLOWED_TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.PENDING: frozenset({TrialState.RUNNING}),
    TrialState.RUNNING: frozenset({TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED, TrialState.PENDING}),
    TrialState.COMPLETE: frozenset(),
    TrialState.FAILED: frozenset(),
    TrialState.PRUNED: frozenset(),
}


class StudyState(enum.Enum):
    QUEUED = "queued"          # created, not started
    RUNNING = "running"        # a coordinator holds it (or held it when it died: resumable)
    COMPLETE = "complete"      # stopped by its searcher or a budget; ``stop_reason`` says which
    FAILED = "failed"          # stopped by an error; ``stop_reason`` says which
    CANCELLED = "cancelled"    # stopped on request

    @property
    def is_finished(self) -> bool:
        return self in (StudyState.COMPLETE, StudyState.FAILED, StudyState.CANCELLED)


@dataclass(frozen=True)
class Trial:
    """One evaluation: the searched ``params`` and the full ``config`` derived from them, the sample
    count and first sample seed, its state and result, searcher tags (beam round, fidelity rung,
    Optuna's sampler attributes...), and what the store adds: attempt, worker, times and the
    position in the order of tells. ``params`` and ``tags`` are copied on construction."""

    number: int                                        # position in the study, 0-based, set by the store
    params: dict[str, Any]                             # point of the search space
    n_samples: int                                     # samples the evaluation draws
    seed: int                                          # first sample seed (sample i uses seed + i)
    state: TrialState = TrialState.PENDING
    result: TrialResult | None = None                  # set when the evaluator answered
    fail_reason: str | None = None                     # why a FAILED trial failed
    tags: dict[str, Any] = field(default_factory=dict)  # searcher-specific, JSON-ready
    config: dict[str, Any] | None = None               # TFGParams.to_dict() of params over the space's base
    attempt: int = 0                                   # dispatches so far (re-queues add one)
    worker: str | None = None                          # who runs / ran it
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tell_seq: int | None = None                        # 0-based position in the study's order of tells
    score: float | None = None                         # the study objective's score, stored when told

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", copy.deepcopy(dict(self.params)))
        object.__setattr__(self, "tags", copy.deepcopy(dict(self.tags)))
        if not isinstance(self.state, TrialState):
            object.__setattr__(self, "state", TrialState(self.state))
        if self.state is TrialState.FAILED and not self.fail_reason:
            raise IllegalTransitionError(f"trial {self.number}: a FAILED trial needs a fail_reason")
        if self.state is TrialState.COMPLETE and self.result is None:
            raise IllegalTransitionError(f"trial {self.number}: a COMPLETE trial needs a result")

    # ---- life cycle ---------------------------------------------------------------------
    def transition(self, state: TrialState, *, result: TrialResult | None = None,
                   fail_reason: str | None = None, **changes: Any) -> "Trial":
        """A new record in ``state``; raises on a finished trial or a transition the life cycle lacks."""
        if self.state.is_finished:
            raise ImmutableTrialError(
                f"trial {self.number} is {self.state.name} and can no longer change (asked: {state.name})"
            )
        if not self.state.can_move_to(state):
            allowed = sorted(s.name for s in ALLOWED_TRANSITIONS[self.state])
            raise IllegalTransitionError(
                f"trial {self.number}: {self.state.name} -> {state.name} is not allowed; from "
                f"{self.state.name} a trial may move to {allowed}"
            )
        return replace(self, state=state, result=result if result is not None else self.result,
                       fail_reason=fail_reason, **changes)

    def start(self, **changes: Any) -> "Trial":
        return self.transition(TrialState.RUNNING, **changes)

    def finish(self, result: TrialResult) -> "Trial":
        """COMPLETE, or FAILED when the result says it failed or carries a non-finite validity."""
        if result.failed is not None:
            return self.transition(TrialState.FAILED, result=result, fail_reason=str(result.failed))
        if not math.isfinite(result.validity):
            return self.transition(TrialState.FAILED, result=result,
                                   fail_reason=f"non-finite validity {result.validity}")
        return self.transition(TrialState.COMPLETE, result=result)

    def fail(self, reason: str, result: TrialResult | None = None) -> "Trial":
        return self.transition(TrialState.FAILED, result=result, fail_reason=reason)

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN metrics stay NaN, as in ``TrialResult.to_dict``; times as ISO strings)."""
        return {
            "number": self.number, "params": copy.deepcopy(self.params), "config": copy.deepcopy(self.config),
            "n_samples": self.n_samples, "seed": self.seed, "state": self.state.value,
            "result": None if self.result is None else self.result.to_dict(), "fail_reason": self.fail_reason,
            "tags": copy.deepcopy(self.tags), "attempt": self.attempt, "worker": self.worker,
            "created_at": _iso(self.created_at), "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "tell_seq": self.tell_seq, "score": self.score,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        result = data.get("result")
        return cls(
            number=int(data["number"]), params=dict(data["params"]), n_samples=int(data["n_samples"]),
            seed=int(data["seed"]), state=TrialState(data["state"]),
            result=None if result is None else TrialResult.from_dict(result),
            fail_reason=data.get("fail_reason"), tags=dict(data.get("tags", {})), config=data.get("config"),
            attempt=int(data.get("attempt", 0)), worker=data.get("worker"),
            created_at=_from_iso(data.get("created_at")), started_at=_from_iso(data.get("started_at")),
            finished_at=_from_iso(data.get("finished_at")), tell_seq=data.get("tell_seq"), score=data.get("score"),
        )


@dataclass(frozen=True)
class StudySpec:
    """What a user submits: everything a coordinator needs to run the study, by value (JSON-ready).

    ``task`` is a bundled task name or the path of a task spec file (``task_sha256`` pins its
    content); ``space`` is the ``SearchSpace.to_dict()`` fixed at creation."""

    task: str                                          # bundled task name or task spec path
    target: str                                        # the task's target
    searcher: str                                      # registered searcher name
    space: dict[str, Any]                              # SearchSpace.to_dict()
    objective: str = "validity"                        # validity | constrained | pareto
    max_fd_ratio: float = 1.2                          # constrained: FD <= this x the unguided FD
    n_samples: int = 32                                # samples per trial at full fidelity
    searcher_options: dict[str, Any] = field(default_factory=dict)
    budget_samples: int | None = None                  # hard cap on samples drawn (yardstick included)
    budget_passes: float | None = None                 # hard cap on denoiser passes
    budget_trials: int | None = None                   # hard cap on trials numbered
    seed: int = 0                                      # searcher seed and first sample seed
    task_sha256: str | None = None                     # content hash of a task spec file
    judge: str | None = None                           # who scores validity (the task's judge; None: the guide)
    num_cpus: float = 1.0                              # CPUs a worker asks Ray for
    num_gpus: float = 0.0                              # GPUs a worker asks Ray for (0.25: four share one)
    max_concurrent: int = 1                            # trial groups in flight at once
    confirm_fraction: float = 0.2                      # budget held back to re-check the top configs on fresh seeds (0: off)
    confirm_top: int = 3                               # configurations re-checked
    spec_version: int = SPEC_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {f: copy.deepcopy(getattr(self, f)) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudySpec":
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown study spec field(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        if data.get("spec_version", SPEC_VERSION) != SPEC_VERSION:
            raise ValueError(f"study spec version {data['spec_version']} is not {SPEC_VERSION}, the one this "
                             "guidetune reads; upgrade guidetune")
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The spec without its budgets and resources: what must match for a study to be continued
        (a larger budget, or more workers, continue the same study)."""
        return {k: v for k, v in self.to_dict().items() if not k.startswith("budget_") and k not in RESOURCES}


@dataclass(frozen=True)
class StudyRecord:
    """One study as stored: its spec, state, what it spent and what it found."""

    id: int
    name: str
    owner: str
    spec: StudySpec
    state: StudyState
    stop_reason: str | None                 # finished | budget_samples | budget_passes | budget_trials | requested | error text
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    samples_spent: int                      # samples of finished trials and the yardstick
    passes_spent: float                     # denoiser passes of the same
    n_told: int                             # finished trials (the next tell_seq)
    yardstick: dict[str, Any] | None        # {"fd": {n: FD}, "samples": drawn, "passes": spent} or None
    best_number: int | None                 # the searcher's reported best trial (set as the study runs)
    coordinator: str | None                 # the process holding the study, while it runs
    counts: dict[str, int] = field(default_factory=dict, compare=False)   # trials per state when read
    confirmation: dict[str, Any] | None = None   # the top candidates on fresh seeds: plan, then summary

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "owner": self.owner, "spec": self.spec.to_dict(),
                "state": self.state.value, "stop_reason": self.stop_reason, "created_at": _iso(self.created_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "samples_spent": self.samples_spent, "passes_spent": self.passes_spent, "n_told": self.n_told,
                "yardstick": copy.deepcopy(self.yardstick), "best_number": self.best_number,
                "coordinator": self.coordinator, "confirmation": copy.deepcopy(self.confirmation)}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Upload:
    """A validated network an owner uploaded: a predictor (guide or judge) or a diffusion model."""

    id: str
    owner: str
    kind: str                    # predictor | model
    sha256: str
    size: int
    path: str                    # the stored file
    meta: dict[str, Any]         # what was declared and what validation found
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "sha256": self.sha256, "size": self.size,
                "metadata": copy.deepcopy(self.meta), "created_at": _iso(self.created_at)}

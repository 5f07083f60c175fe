"""Trial records: one evaluation of one point of the search space, with an explicit life cycle.

PENDING → RUNNING → COMPLETE | FAILED | PRUNED. A finished trial never changes: ``transition``
returns a new record and refuses to touch a finished one (optuna / OSS Vizier convention).
"""

from __future__ import annotations

import copy
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from guidetune.evaluators.records import TrialResult

from .errors import IllegalTransitionError, ImmutableTrialError


class TrialState(enum.Enum):
    PENDING = "pending"      # proposed by a searcher, not started
    RUNNING = "running"      # handed to an evaluator
    COMPLETE = "complete"    # evaluated; ``result`` holds finite metrics
    FAILED = "failed"        # evaluation failed; ``fail_reason`` says why
    PRUNED = "pruned"        # stopped early on purpose (e.g. eliminated at a fidelity rung)

    @property
    def is_finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)

    def can_move_to(self, other: "TrialState") -> bool:
        return other in ALLOWED_TRANSITIONS[self]


ALLOWED_TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.PENDING: frozenset({TrialState.RUNNING}),
    TrialState.RUNNING: frozenset({TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED}),
    TrialState.COMPLETE: frozenset(),
    TrialState.FAILED: frozenset(),
    TrialState.PRUNED: frozenset(),
}


@dataclass(frozen=True)
class Trial:
    """One evaluation: the searched ``params`` (a point of the space, not the full TFGParams), the
    sample count and first sample seed it ran with, its state and result, and searcher tags (the
    beam round, the fidelity rung, Optuna's sampler attributes...). ``params`` and ``tags`` are
    copied on construction; treat them as read-only."""

    number: int                                        # position in the study, 0-based
    params: dict[str, Any]                             # point of the search space
    n_samples: int                                     # samples the evaluation draws
    seed: int                                          # first sample seed
    state: TrialState = TrialState.PENDING
    result: TrialResult | None = None                  # set when the evaluator answered
    fail_reason: str | None = None                     # why a FAILED trial failed
    tags: dict[str, Any] = field(default_factory=dict)  # searcher-specific, JSON-ready

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
                   fail_reason: str | None = None) -> "Trial":
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
        return Trial(number=self.number, params=self.params, n_samples=self.n_samples, seed=self.seed,
                     state=state, result=result if result is not None else self.result,
                     fail_reason=fail_reason, tags=self.tags)

    def start(self) -> "Trial":
        return self.transition(TrialState.RUNNING)

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
        """JSON-ready (NaN metrics stay NaN, as in ``TrialResult.to_dict``)."""
        return {
            "number": self.number,
            "params": copy.deepcopy(self.params),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "state": self.state.value,
            "result": None if self.result is None else self.result.to_dict(),
            "fail_reason": self.fail_reason,
            "tags": copy.deepcopy(self.tags),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        result = data.get("result")
        return cls(
            number=int(data["number"]),
            params=dict(data["params"]),
            n_samples=int(data["n_samples"]),
            seed=int(data["seed"]),
            state=TrialState(data["state"]),
            result=None if result is None else TrialResult.from_dict(result),
            fail_reason=data.get("fail_reason"),
            tags=dict(data.get("tags", {})),
        )

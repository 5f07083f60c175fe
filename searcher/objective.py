"""What a user can ask the search for, as normalised scores (higher is better).

Normalisation (so that no metric's scale swamps another):

* validity:  ``v = (validity − lo) / (hi − lo)`` with ``validity_range = (lo, hi)``, default ``(0, 1)``
  (an accuracy is then unchanged; give the range for a negated MAE or residual).
* fidelity:  ``ℓ = ln(fidelity_fd / unguided_fd)``, the log-ratio to the unguided sampler's Fréchet
  distance (0: as faithful as the unguided sampler; ln 2 ≈ 0.69: twice its FD). Scale-free, so a
  CIFAR FID of 40 and a digits FD of 0.4 score alike.

A failed trial, or one whose needed metric is not finite, scores ``-inf`` (worst) and has no values.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from guidetune.evaluators.records import TrialResult

from .errors import ObjectiveError

WORST = -math.inf


def _check_range(validity_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in validity_range)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise ObjectiveError(f"validity_range must be two finite numbers lo < hi, got {tuple(validity_range)}")
    return lo, hi


def _check_fd(unguided_fd) -> float | tuple[tuple[int, float], ...]:
    """A single FD, or a table ((n_samples, FD), …): Fréchet distance is biased upward at small n, so
    a trial must be held against the unguided FD measured at its own sample count."""
    if isinstance(unguided_fd, (int, float)):
        table = None
        values = [float(unguided_fd)]
    else:
        items = unguided_fd.items() if isinstance(unguided_fd, dict) else unguided_fd
        table = tuple(sorted((int(n), float(fd)) for n, fd in items))
        values = [fd for _, fd in table]
    if not values or any(not math.isfinite(fd) or fd <= 0 for fd in values):
        raise ObjectiveError(f"unguided_fd must be finite positive Fréchet distance(s), got {unguided_fd!r}")
    return table if table is not None else values[0]


def _yardstick(unguided_fd, n_samples: int) -> float:
    """The unguided FD at ``n_samples`` (from a table: that count, else the nearest on a log scale)."""
    if isinstance(unguided_fd, float):
        return unguided_fd
    return min(unguided_fd, key=lambda entry: abs(math.log(entry[0] / max(n_samples, 1))))[1]


class Objective(ABC):
    """Maps a ``TrialResult`` to Optuna-style ``values`` (one per direction) and a scalar ``score``.

    ``score`` (higher is better) ranks trials for searchers and reports; ``values`` feed
    multi-objective samplers; ``constraint`` (≤ 0 feasible, Optuna's convention) or ``None``.
    """

    kind: ClassVar[str]
    directions: ClassVar[tuple[str, ...]] = ("maximize",)

    @abstractmethod
    def values(self, result: TrialResult | None) -> tuple[float, ...] | None:
        """The objective values, or ``None`` when the result cannot be scored (failed, NaN)."""

    @abstractmethod
    def score(self, result: TrialResult | None) -> float:
        """Scalar, higher is better; ``-inf`` when the result cannot be scored."""

    def constraint(self, result: TrialResult | None) -> float | None:
        return None

    @property
    def is_multi_objective(self) -> bool:
        return len(self.directions) > 1

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        return {"kind": self.kind, **data}


def _usable(result: TrialResult | None) -> bool:
    return result is not None and result.failed is None and math.isfinite(result.validity)


@dataclass(frozen=True)
class MaximizeValidity(Objective):
    """``score = v`` (normalised validity)."""

    validity_range: tuple[float, float] = (0.0, 1.0)

    kind: ClassVar[str] = "validity"

    def __post_init__(self) -> None:
        object.__setattr__(self, "validity_range", _check_range(self.validity_range))

    def normalised_validity(self, result: TrialResult) -> float:
        lo, hi = self.validity_range
        return (result.validity - lo) / (hi - lo)

    def values(self, result):
        return (self.normalised_validity(result),) if _usable(result) else None

    def score(self, result):
        return self.normalised_validity(result) if _usable(result) else WORST


@dataclass(frozen=True)
class ConstrainedValidity(Objective):
    """Maximise validity subject to ``fidelity_fd ≤ max_ratio × unguided_fd``.

    With ``v`` the normalised validity and ``ℓ`` the FD log-ratio, the violation is
    ``c = ℓ − ln(max_ratio)`` (≤ 0 feasible) and ``score = v`` when feasible, ``−1 − c`` otherwise:
    every feasible trial (``v ≥ 0`` for validity in its range) beats every infeasible one, and among
    infeasible trials the smaller violation wins. Optuna samplers also get ``c`` as a constraint.
    """

    unguided_fd: float | tuple[tuple[int, float], ...]   # one FD, or ((n_samples, FD), …)
    max_ratio: float = 1.5
    validity_range: tuple[float, float] = (0.0, 1.0)

    kind: ClassVar[str] = "constrained"

    def __post_init__(self) -> None:
        object.__setattr__(self, "unguided_fd", _check_fd(self.unguided_fd))
        object.__setattr__(self, "validity_range", _check_range(self.validity_range))
        if not math.isfinite(self.max_ratio) or self.max_ratio <= 0:
            raise ObjectiveError(f"max_ratio must be a finite positive number, got {self.max_ratio!r}")
        object.__setattr__(self, "max_ratio", float(self.max_ratio))

    def _usable(self, result) -> bool:
        return _usable(result) and math.isfinite(result.fidelity_fd) and result.fidelity_fd > 0

    def constraint(self, result):
        if not self._usable(result):
            return None
        return math.log(result.fidelity_fd / _yardstick(self.unguided_fd, result.n_samples)) - math.log(self.max_ratio)

    def score(self, result):
        if not self._usable(result):
            return WORST
        lo, hi = self.validity_range
        violation = self.constraint(result)
        return (result.validity - lo) / (hi - lo) if violation <= 0 else -1.0 - violation

    def values(self, result):
        return (self.score(result),) if self._usable(result) else None


@dataclass(frozen=True)
class ParetoValidityFidelity(Objective):
    """Two objectives: maximise ``v`` and minimise ``ℓ`` (FD log-ratio). ``score = v − tradeoff·ℓ`` only
    ranks trials where one best is needed (reports, convergence); the front itself is the answer."""

    unguided_fd: float | tuple[tuple[int, float], ...]   # one FD, or ((n_samples, FD), …)
    validity_range: tuple[float, float] = (0.0, 1.0)
    tradeoff: float = 1.0

    kind: ClassVar[str] = "pareto"
    directions: ClassVar[tuple[str, ...]] = ("maximize", "minimize")

    def __post_init__(self) -> None:
        object.__setattr__(self, "unguided_fd", _check_fd(self.unguided_fd))
        object.__setattr__(self, "validity_range", _check_range(self.validity_range))
        if not math.isfinite(self.tradeoff) or self.tradeoff < 0:
            raise ObjectiveError(f"tradeoff must be a finite number >= 0, got {self.tradeoff!r}")

    def values(self, result):
        if not (_usable(result) and math.isfinite(result.fidelity_fd) and result.fidelity_fd > 0):
            return None
        lo, hi = self.validity_range
        return ((result.validity - lo) / (hi - lo),
                math.log(result.fidelity_fd / _yardstick(self.unguided_fd, result.n_samples)))

    def score(self, result):
        vals = self.values(result)
        return WORST if vals is None else vals[0] - self.tradeoff * vals[1]


_METRIC_ALIASES = {"fid": "fidelity_fd", "fd": "fidelity_fd"}
_NUMERIC_FIELDS = tuple(
    f.name for f in dataclasses.fields(TrialResult)
    if f.name in ("validity", "guide_validity", "fidelity_fd", "kid", "precision", "recall",
                  "forward_passes", "backward_passes", "seconds_per_sample")
)


@dataclass(frozen=True)
class ReferenceTFGScore(Objective):
    """The reference ``searching.py`` score: the plain mean of the named metrics, a leading ``'_'``
    negating one (``("validity", "_fid")`` = mean(accuracy, −FID)). Unnormalised on purpose: with
    FIDs in the tens, FID decides the ranking and validity barely counts — its known weakness.
    A name that is not a ``TrialResult`` metric is looked up in ``result.extras``."""

    metrics: tuple[str, ...] = ("validity",)

    kind: ClassVar[str] = "reference"

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if not self.metrics:
            raise ObjectiveError("the reference score needs at least one metric, e.g. ('validity',)")

    def _metric(self, result: TrialResult, name: str) -> float:
        sign = -1.0 if name.startswith("_") else 1.0
        key = _METRIC_ALIASES.get(name.lstrip("_"), name.lstrip("_"))
        if key in _NUMERIC_FIELDS:
            return sign * float(getattr(result, key))
        if key in result.extras:
            return sign * float(result.extras[key])
        raise ObjectiveError(f"metric {key!r} is neither a TrialResult metric {list(_NUMERIC_FIELDS)} "
                             f"nor in the result's extras {sorted(result.extras)}")

    def score(self, result):
        if result is None or result.failed is not None:
            return WORST
        value = sum(self._metric(result, m) for m in self.metrics) / len(self.metrics)
        return value if math.isfinite(value) else WORST

    def values(self, result):
        s = self.score(result)
        return None if s == WORST else (s,)


OBJECTIVES: dict[str, type[Objective]] = {
    cls.kind: cls for cls in (MaximizeValidity, ConstrainedValidity, ParetoValidityFidelity, ReferenceTFGScore)
}


def objective_from_dict(data: dict[str, Any]) -> Objective:
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in OBJECTIVES:
        raise ObjectiveError(f"unknown objective kind {kind!r}; choose one of {sorted(OBJECTIVES)}")
    try:
        return OBJECTIVES[kind](**data)
    except TypeError as exc:
        raise ObjectiveError(f"malformed {kind} objective {data}: {exc}") from None

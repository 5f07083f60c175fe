"""Search spaces over TFG's design space (Ye et al., 2024, arXiv 2409.15761, Sec. 4): serialisable
value objects that every searcher (beam, Optuna samplers, grid) reads the same way.

Three kinds of parameter:

* ``LogFloat``: a positive strength searched on a log scale in ``[low, high]``; the doubling beam
  search walks it as ``start, start·factor, start·factor², …`` capped at ``cap`` (the reference's
  ``init_x``, ``factor_x``, ``max_x``).
* ``PowerOfTwoInt``: an integer restricted to powers of two in ``[low, high]`` (``n_recur``,
  ``n_iter``); the beam starts at ``low`` and doubles up to ``high``.
* ``Categorical``: one of a few choices (``rho_schedule``, ``mu_schedule``).

A point of the space is a plain dict ``{name: value}``; ``SearchSpace.to_params`` merges it over the
fixed ``base`` values into a ``TFGParams``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Union

from guidetune.guidance.errors import GuidanceConfigError
from guidetune.guidance.params import TFGParams

from .errors import SearchSpaceError

_TFG_FIELDS = tuple(f.name for f in dataclasses.fields(TFGParams))


def _check_name(name: str) -> None:
    if name not in _TFG_FIELDS:
        raise SearchSpaceError(
            f"unknown parameter {name!r}: search-space names must be TFGParams fields, "
            f"one of {list(_TFG_FIELDS)}"
        )


def _is_power_of_two(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1 and value & (value - 1) == 0


@dataclass(frozen=True)
class LogFloat:
    """A positive strength on a log scale; ``start``/``factor``/``cap`` drive the doubling beam."""

    name: str
    low: float                       # smallest value a sampler may propose (> 0)
    high: float                      # largest value a sampler may propose
    start: float | None = None       # beam: initial value (default ``low``)
    factor: float = 2.0              # beam: multiplier of one step (> 1)
    cap: float | None = None         # beam: largest value the beam reaches (default ``high``)

    kind = "log_float"

    def __post_init__(self) -> None:
        _check_name(self.name)
        for attr in ("low", "high", "factor"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise SearchSpaceError(f"{self.name}: {attr} must be a finite number, got {value!r}")
        if self.low <= 0:
            raise SearchSpaceError(f"{self.name}: a log-scale parameter needs low > 0, got low={self.low}")
        if self.low > self.high:
            raise SearchSpaceError(f"{self.name}: low={self.low} > high={self.high}")
        if self.factor <= 1:
            raise SearchSpaceError(f"{self.name}: the beam factor must be > 1, got {self.factor}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        object.__setattr__(self, "factor", float(self.factor))
        object.__setattr__(self, "start", float(self.low if self.start is None else self.start))
        object.__setattr__(self, "cap", float(self.high if self.cap is None else self.cap))
        if not self.low <= self.start <= self.cap <= self.high:
            raise SearchSpaceError(
                f"{self.name}: need low <= start <= cap <= high, got low={self.low}, start={self.start}, "
                f"cap={self.cap}, high={self.high}"
            )

    def step_up(self, value: float) -> float:
        """The beam's child value: ``min(value · factor, cap)`` (reference ``generate_candidates``)."""
        return min(value * self.factor, self.cap)

    def ladder(self) -> list[float]:
        """``start, start·f, start·f², …`` up to ``cap`` by repeated multiplication, as the beam reaches them."""
        values = [self.start]
        while values[-1] < self.cap:
            values.append(self.step_up(values[-1]))
        return values

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "low": self.low, "high": self.high,
                "start": self.start, "factor": self.factor, "cap": self.cap}


@dataclass(frozen=True)
class PowerOfTwoInt:
    """An integer in ``{low, 2·low, …, high}``, both ends powers of two; the beam doubles it."""

    name: str
    low: int
    high: int

    kind = "power_of_two"

    def __post_init__(self) -> None:
        _check_name(self.name)
        for attr in ("low", "high"):
            if not _is_power_of_two(getattr(self, attr)):
                raise SearchSpaceError(f"{self.name}: {attr} must be a power of two >= 1, got {getattr(self, attr)!r}")
        if self.low > self.high:
            raise SearchSpaceError(f"{self.name}: low={self.low} > high={self.high}")

    @property
    def start(self) -> int:
        return self.low

    @property
    def factor(self) -> int:
        return 2

    @property
    def cap(self) -> int:
        return self.high

    def step_up(self, value: int) -> int:
        return min(value * 2, self.high)

    def values(self) -> list[int]:
        out = [self.low]
        while out[-1] < self.high:
            out.append(out[-1] * 2)
        return out

    ladder = values

    @property
    def log2_low(self) -> int:
        return self.low.bit_length() - 1

    @property
    def log2_high(self) -> int:
        return self.high.bit_length() - 1

    def contains(self, value: Any) -> bool:
        return _is_power_of_two(value) and self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Categorical:
    """One of a few choices; the beam keeps the first choice (the reference fixes schedules per search)."""

    name: str
    choices: tuple[Any, ...]

    kind = "categorical"

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise SearchSpaceError(f"{self.name}: a categorical parameter needs at least one choice")
        if len(set(self.choices)) != len(self.choices):
            raise SearchSpaceError(f"{self.name}: duplicate choices in {list(self.choices)}")

    @property
    def start(self) -> Any:
        return self.choices[0]

    def ladder(self) -> list[Any]:
        return list(self.choices)

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "choices": list(self.choices)}


Param = Union[LogFloat, PowerOfTwoInt, Categorical]
_KINDS = {"log_float": LogFloat, "power_of_two": PowerOfTwoInt, "categorical": Categorical}


def param_from_dict(data: dict[str, Any]) -> Param:
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in _KINDS:
        raise SearchSpaceError(f"unknown parameter kind {kind!r}; choose one of {sorted(_KINDS)}")
    try:
        return _KINDS[kind](**data)
    except TypeError as exc:
        raise SearchSpaceError(f"malformed {kind} parameter {data}: {exc}") from None


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters (in a fixed order) and the fixed ``base`` values of every other field.

    Validation happens at construction: an empty space, a bad range, a name that is not a
    ``TFGParams`` field, a name both searched and fixed, or a base that ``TFGParams`` rejects all
    raise ``SearchSpaceError``.
    """

    params: tuple[Param, ...]
    base: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "base", dict(self.base))
        if not self.params:
            raise SearchSpaceError("empty search space: give at least one parameter to search")
        names = [p.name for p in self.params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SearchSpaceError(f"parameter(s) {dupes} appear more than once in the space")
        for key in self.base:
            _check_name(key)
        both = sorted(set(names) & set(self.base))
        if both:
            raise SearchSpaceError(f"parameter(s) {both} are both searched and fixed in base; drop them from one")
        # Every corner of the space must be a valid TFGParams (catches e.g. tail_tau high > 1).
        for p in self.params:
            for value in ([p.low, p.high] if not isinstance(p, Categorical) else list(p.choices)):
                point = self.start_point()
                point[p.name] = value
                try:
                    self.to_params(point)
                except GuidanceConfigError as exc:
                    raise SearchSpaceError(f"{p.name}={value!r} with base {self.base} is not a valid config: {exc}") from None

    # ---- access -------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise SearchSpaceError(f"{name!r} is not searched in this space; searched: {list(self.names)}")

    def start_point(self) -> dict[str, Any]:
        """The beam's round-0 config: every parameter at its start value."""
        return {p.name: p.start for p in self.params}

    def center_point(self) -> dict[str, Any]:
        """The start point with every strength (log-scale parameter) in the middle of its ladder."""
        point = self.start_point()
        for p in self.params:
            if isinstance(p, LogFloat):
                ladder = p.ladder()
                point[p.name] = ladder[(len(ladder) - 1) // 2]
        return point

    def point_of(self, start: str | dict[str, Any]) -> dict[str, Any]:
        """The point a searcher's ``start`` option names: ``"low"`` (TFG's weakest corner, the beam's
        start), ``"center"`` (every strength mid-ladder) or a point (missing parameters at their start)."""
        if start == "low":
            return self.start_point()
        if start == "center":
            return self.center_point()
        if not isinstance(start, dict):
            raise SearchSpaceError(f"start must be 'low' (TFG's weakest corner), 'center' (mid-ladder) or a point "
                                   f"of the space, got {start!r}")
        point = {**self.start_point(), **start}
        self.validate_point(point)
        return point

    def validate_point(self, values: dict[str, Any]) -> None:
        missing = sorted(set(self.names) - set(values))
        extra = sorted(set(values) - set(self.names))
        if missing or extra:
            raise SearchSpaceError(f"point {values} does not match the space: missing {missing}, unexpected {extra}")
        for p in self.params:
            if not p.contains(values[p.name]):
                raise SearchSpaceError(f"{p.name}={values[p.name]!r} lies outside the space ({p.to_dict()})")

    def to_params(self, values: dict[str, Any]) -> TFGParams:
        """Merge a point over ``base`` into a ``TFGParams`` (the evaluator's input)."""
        merged = {**self.base, **values}
        return TFGParams.from_dict(merged)

    def grid(self) -> list[dict[str, Any]]:
        """The full cartesian product of each parameter's ladder (log floats: the beam ladder;
        power-of-two ints: every power; categoricals: every choice), in parameter order."""
        ladders = [p.ladder() for p in self.params]
        return [dict(zip(self.names, combo)) for combo in itertools.product(*ladders)]

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"params": [p.to_dict() for p in self.params], "base": dict(self.base)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        if not isinstance(data, dict) or "params" not in data:
            raise SearchSpaceError(f"a search space dict needs a 'params' list, got {data!r}")
        unknown = sorted(set(data) - {"params", "base"})
        if unknown:
            raise SearchSpaceError(f"unknown search-space key(s) {unknown}; known: ['base', 'params']")
        return cls(params=tuple(param_from_dict(p) for p in data["params"]), base=dict(data.get("base", {})))


WIDE_STRENGTH_LOW = 2.0 ** -6  # the default space's weakest ρ̄, μ̄: five doublings below TFG's 0.25


def default_tfg_space(*, schedules: bool = False, base: dict[str, Any] | None = None) -> SearchSpace:
    """ρ̄, μ̄ from 2⁻⁶ ×2 up to 8; γ̄ from 0.001 ×10 up to 1; N_recur 1..4 and N_iter 1..8 by doubling.
    ``schedules=True`` also searches the ρ and μ schedules.

    ALGORITHMS.md's beam starts ρ̄, μ̄ at 0.25; this space reaches five doublings lower because a
    predictor's steepness is unknown in advance (on the bundled digits the judge accuracy at
    ρ̄ = μ̄ = 0.25 is already 0.95, so the optimum would sit at the space's corner). The reference's
    own defaults are ``reference_tfg_space``."""
    params: list[Param] = [
        LogFloat("rho", low=WIDE_STRENGTH_LOW, high=8.0, start=WIDE_STRENGTH_LOW, factor=2.0, cap=8.0),
        LogFloat("mu", low=WIDE_STRENGTH_LOW, high=8.0, start=WIDE_STRENGTH_LOW, factor=2.0, cap=8.0),
        LogFloat("gamma", low=0.001, high=1.0, start=0.001, factor=10.0, cap=1.0),
        PowerOfTwoInt("n_recur", 1, 4),
        PowerOfTwoInt("n_iter", 1, 8),
    ]
    if schedules:
        params += [Categorical("rho_schedule", ("increase", "decrease", "constant")),
                   Categorical("mu_schedule", ("increase", "decrease", "constant"))]
    return SearchSpace(tuple(params), dict(base or {}))


def reference_tfg_space(*, n_recur: int = 1, n_iter: int = 4) -> SearchSpace:
    """The reference ``searching.py`` defaults: ρ̄, μ̄, γ̄ searched (``init``/``factor``/``max``), N_recur and
    N_iter fixed by the user (its scripts use N_iter = 4, N_recur = 1)."""
    return SearchSpace(
        (
            LogFloat("rho", low=0.25, high=8.0, start=0.25, factor=2.0, cap=8.0),
            LogFloat("mu", low=0.25, high=8.0, start=0.25, factor=2.0, cap=8.0),
            LogFloat("gamma", low=0.001, high=1.0, start=0.001, factor=10.0, cap=1.0),
        ),
        {"n_recur": n_recur, "n_iter": n_iter},
    )

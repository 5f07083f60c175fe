"""Guidance hyperparameters: one frozen record for TFG's unified design space (Ye et al., 2024,
arXiv 2409.15761, Sec. 3) and the plug-ins that compose with it (DSG, density-aware tail guidance).

Continuous strengths (``rho``, ``mu``, ``gamma``, ``dsg_rate``, ``tail_lambda``, ``tail_beta``) may be
floats or 1-D tensors with one value per sample, so several trials can share one batched sampling
call. Everything else is *structural*: it must be the same for every sample of a batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Union

import torch

from .errors import GuidanceConfigError

Strength = Union[float, torch.Tensor]

SCHEDULES = ("increase", "decrease", "constant")
GAMMA_SCHEDULES = ("decrease", "constant")
UPDATE_RULES = ("tfg", "additive", "ugd")
RHO_NORMALISATIONS = ("none", "log_prob")

CONTINUOUS_FIELDS = ("rho", "mu", "gamma", "dsg_rate", "tail_lambda", "tail_beta", "tail_tau")
STRUCTURAL_FIELDS = (
    "n_recur", "n_iter", "n_mc", "rho_schedule", "mu_schedule", "gamma_schedule",
    "update_rule", "rho_normalisation", "dsg", "dsg_interval",
)


@dataclass(frozen=True)
class TFGParams:
    """A point of TFG's design space, plus the DSG and tail-guidance switches.

    The defaults are the unguided sampler; ``TFGParams(rho=1, mu=2, gamma=0.01)`` is TFG with the
    reference schedules (ρ, μ ``increase``; γ ``decrease``).
    """

    rho: Strength = 0.0                    # ρ̄, variance guidance (gradient through the denoiser)
    mu: Strength = 0.0                     # μ̄, mean guidance (gradient ascent on x0, no denoiser pass)
    gamma: Strength = 0.0                  # γ̄, implicit dynamics (Gaussian smoothing of the predictor)
    n_recur: int = 1                       # N_recur, recurrences (time travel) per inference step
    n_iter: int = 1                        # N_iter, mean-guidance ascent steps per recurrence
    n_mc: int = 1                          # Monte-Carlo samples for the smoothed predictor
    rho_schedule: str = "increase"         # increase | decrease | constant, normalised to mean ρ̄
    mu_schedule: str = "increase"          # increase | decrease | constant, normalised to mean μ̄
    gamma_schedule: str = "decrease"       # decrease (γ̄·√(1−ᾱ_t)) | constant
    update_rule: str = "tfg"               # how Δ_t, Δ_0 enter x_prev: tfg | additive | ugd (presets)
    rho_normalisation: str = "none"        # none | log_prob (DPS: ρ_t = ρ̄ / |log f̃(x0)| per sample)
    dsg: bool = False                      # DSG spherical Gaussian constraint on the guided step
    dsg_rate: Strength = 0.1               # DSG guidance rate g_r in [0, 1]
    dsg_interval: int = 1                  # DSG guides every k-th inference step, plain DDIM between
    tail_lambda: Strength = 0.0            # tail guidance: low-confidence term weight λ
    tail_tau: Strength = 0.9               # tail guidance: confidence threshold τ (a probability)
    tail_beta: Strength = 0.0              # tail guidance: manifold term weight β

    def __post_init__(self) -> None:
        validate_params(self)

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tensors become lists); ``TFGParams.from_dict`` inverts it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().tolist()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TFGParams":
        """Build from a dict such as ``to_dict`` writes; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GuidanceConfigError(
                f"unknown guidance parameter(s) {unknown}; known parameters are {sorted(known)}"
            )
        values = {}
        for key, value in data.items():
            if key in CONTINUOUS_FIELDS and isinstance(value, (list, tuple)):
                value = torch.tensor(value, dtype=torch.float64)
            values[key] = value
        return cls(**values)

    def replace(self, **changes: Any) -> "TFGParams":
        return dataclasses.replace(self, **changes)

    def structure(self) -> tuple:
        """The structural fields: trials with equal structure can be packed into one batch."""
        return tuple(getattr(self, name) for name in STRUCTURAL_FIELDS)

    @property
    def uses_variance_guidance(self) -> bool:
        return _maybe_nonzero(self.rho) or _maybe_nonzero(self.tail_lambda)

    @property
    def uses_mean_guidance(self) -> bool:
        return _maybe_nonzero(self.mu) and self.n_iter > 0

    @property
    def needs_log_prob(self) -> bool:
        """Whether sampling with these params calls the predictor (any guidance term, or DSG)."""
        return self.uses_variance_guidance or self.uses_mean_guidance or self.dsg

    @property
    def uses_smoothing(self) -> bool:
        return _maybe_nonzero(self.gamma)


def _maybe_nonzero(value: Strength) -> bool:
    if isinstance(value, torch.Tensor):
        return bool((value != 0).any())
    return value != 0


def _check_strength(name: str, value: Strength, *, low: float = 0.0, high: float = math.inf) -> None:
    if isinstance(value, torch.Tensor):
        if value.dim() > 1:
            raise GuidanceConfigError(f"{name} must be a float or a 1-D tensor (one value per sample), got shape {tuple(value.shape)}")
        if not torch.isfinite(value).all():
            raise GuidanceConfigError(f"{name} has non-finite entries: {value.tolist()}")
        lo, hi = float(value.min()) if value.numel() else low, float(value.max()) if value.numel() else low
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise GuidanceConfigError(f"{name} must be finite, got {value}")
        lo = hi = float(value)
    else:
        raise GuidanceConfigError(f"{name} must be a float or a 1-D tensor, got {type(value).__name__}")
    if lo < low or hi > high:
        raise GuidanceConfigError(f"{name} must lie in [{low}, {high}], got values in [{lo}, {hi}]")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise GuidanceConfigError(f"unknown {name} {value!r}; choose one of {list(choices)}")


def validate_params(p: TFGParams) -> None:
    """Raise ``GuidanceConfigError`` naming the first field that is out of its domain."""
    _check_strength("rho", p.rho)
    _check_strength("mu", p.mu)
    _check_strength("gamma", p.gamma)
    _check_strength("dsg_rate", p.dsg_rate, high=1.0)
    _check_strength("tail_lambda", p.tail_lambda)
    _check_strength("tail_tau", p.tail_tau, high=1.0)
    _check_strength("tail_beta", p.tail_beta, high=1.0)
    for name in ("n_recur", "n_mc", "dsg_interval"):
        value = getattr(p, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GuidanceConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(p.n_iter, int) or isinstance(p.n_iter, bool) or p.n_iter < 0:
        raise GuidanceConfigError(f"n_iter must be an integer >= 0, got {p.n_iter!r}")
    _check_choice("rho_schedule", p.rho_schedule, SCHEDULES)
    _check_choice("mu_schedule", p.mu_schedule, SCHEDULES)
    _check_choice("gamma_schedule", p.gamma_schedule, GAMMA_SCHEDULES)
    _check_choice("update_rule", p.update_rule, UPDATE_RULES)
    _check_choice("rho_normalisation", p.rho_normalisation, RHO_NORMALISATIONS)
    if not isinstance(p.dsg, bool):
        raise GuidanceConfigError(f"dsg must be true or false, got {p.dsg!r}")

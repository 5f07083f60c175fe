"""Time grids and per-step coefficients: DDIM (Song et al., 2021, eq. 12) and TFG's schedule
structures (Ye et al., 2024, Sec. 4 / App. "hyper-parameter structures")."""

from __future__ import annotations

import torch

from .errors import GuidanceConfigError


def ddim_timesteps(num_train_steps: int, steps: int) -> torch.Tensor:
    """Leading spacing t_i = (steps − 1 − i)·⌊T/steps⌋, i = 0 the noisiest (diffusers' DDIM default)."""
    if not isinstance(steps, int) or steps < 1:
        raise GuidanceConfigError(f"steps must be a positive integer, got {steps!r}")
    if steps > num_train_steps:
        raise GuidanceConfigError(
            f"steps={steps} exceeds the model's {num_train_steps} training steps; use steps <= {num_train_steps}"
        )
    ratio = num_train_steps // steps
    return torch.arange(steps - 1, -1, -1, dtype=torch.long) * ratio


def step_alphas(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ᾱ_t, ᾱ_prev) on the inference grid, with ᾱ_prev = 1 after the last step (float64)."""
    abar = alphas_cumprod.detach().to("cpu", torch.float64)
    abar_t = abar[timesteps]
    abar_prev = torch.cat([abar_t[1:], abar_t.new_ones(1)])
    return abar_t, abar_prev


def ddim_sigma(abar_t: torch.Tensor, abar_prev: torch.Tensor, eta: float) -> torch.Tensor:
    """σ_t = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev)   (DDIM eq. 16)."""
    return eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp_min(0).sqrt()


def strength_schedule(structure: str, abar_t: torch.Tensor, abar_prev: torch.Tensor) -> torch.Tensor:
    """TFG's ρ/μ structures, normalised to mean 1 over the trajectory: s_i·N/Σ_k s_k with
    s_i = α_i (increase), 1 − α_i (decrease) or 1 (constant), α_i = ᾱ_t/ᾱ_prev."""
    alpha = abar_t / abar_prev
    if structure == "increase":
        s = alpha
    elif structure == "decrease":
        s = 1 - alpha
    elif structure == "constant":
        s = torch.ones_like(alpha)
    else:
        raise GuidanceConfigError(f"unknown schedule {structure!r}; choose increase, decrease or constant")
    return s * len(s) / s.sum()


def gamma_schedule(structure: str, abar_t: torch.Tensor) -> torch.Tensor:
    """TFG's γ structures (not normalised): √(1−ᾱ_t) (decrease) or 1 (constant)."""
    if structure == "decrease":
        return (1 - abar_t).sqrt()
    if structure == "constant":
        return torch.ones_like(abar_t)
    raise GuidanceConfigError(f"unknown gamma schedule {structure!r}; choose decrease or constant")

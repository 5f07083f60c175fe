"""TFG's guidance terms as small pure functions (Ye et al., 2024, arXiv 2409.15761, Alg. 1), plus
the DSG step (Yang et al., 2024, arXiv 2402.03201, eq. 10) and the density-aware tail terms.

Shapes: x has shape (B, *sample_shape); per-sample strengths are tensors of shape (B,) that
``per_sample`` broadcasts to (B, 1, ..., 1).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .errors import ModelContractError

LogProb = Callable[[torch.Tensor], torch.Tensor]


def per_sample(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float or a (B,) tensor as a (B, 1, ..., 1) tensor on ``like``'s device and dtype."""
    batch = like.shape[0]
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            value = value.expand(batch)
        if value.shape != (batch,):
            raise ModelContractError(
                f"a per-sample strength has {value.numel()} entries but the batch has {batch} samples"
            )
        out = value.to(like.device, like.dtype)
    else:
        out = torch.full((batch,), float(value), device=like.device, dtype=like.dtype)
    return out.view(batch, *([1] * (like.dim() - 1)))


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, clip: float | None) -> torch.Tensor:
    """Tweedie: x0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t, clamped to [−clip, clip] when clip is set."""
    x0 = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
    return x0.clamp(-clip, clip) if clip is not None else x0


def ddim_mean_from_eps(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, sigma: float) -> torch.Tensor:
    """DDIM mean √ᾱ_prev·x0(ε) + √(1−ᾱ_prev−σ²)·ε (Song et al., 2021, eq. 12, without the noise)."""
    x0 = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
    return math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps


def ddim_mean_from_x0(x_t: torch.Tensor, x0: torch.Tensor, abar_t: float, abar_prev: float, sigma: float) -> torch.Tensor:
    """DDIM mean with ε̂ re-derived from the (clipped) x0: ε̂ = (x_t − √ᾱ_t·x0)/√(1−ᾱ_t)."""
    eps_hat = (x_t - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
    return math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps_hat


def checked_log_prob(log_prob: LogProb, x0: torch.Tensor) -> torch.Tensor:
    """Call the predictor and check it returns one value per sample."""
    out = log_prob(x0)
    if not isinstance(out, torch.Tensor) or out.shape != (x0.shape[0],):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelContractError(
            f"log_prob must return a tensor of shape (B,) = ({x0.shape[0]},) with one log-likelihood per "
            f"sample, got {shape}; reduce over all but the batch dimension (e.g. .sum(dim=1))"
        )
    return out


def smoothed_log_prob(log_prob: LogProb, x0: torch.Tensor, gamma: torch.Tensor, deltas: torch.Tensor | None) -> torch.Tensor:
    """log f̃(x0) = logsumexp_j log f(x0 + γ·δ_j) − log n_mc   (TFG eq. 6, Monte-Carlo estimate).

    ``deltas`` has shape (B, n_mc, *sample_shape) or is None (γ = 0: f̃ = f). Each draw j is a
    separate predictor call on (B, ...) so predictors with per-sample targets stay aligned.
    """
    if deltas is None:
        return checked_log_prob(log_prob, x0)
    n_mc = deltas.shape[1]
    values = torch.stack([checked_log_prob(log_prob, x0 + gamma * deltas[:, j]) for j in range(n_mc)])
    return torch.logsumexp(values, dim=0) - math.log(n_mc)


def gradient(objective: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    """∇_wrt Σ_b objective_b, with a clear error when the predictor cut the graph."""
    try:
        (grad,) = torch.autograd.grad(objective.sum(), wrt)
    except RuntimeError as exc:
        raise ModelContractError(
            "log_prob returned a value without a gradient with respect to its input; compute it from "
            "x0 with differentiable torch operations (no .detach(), .numpy(), .item() or torch.no_grad "
            f"inside). Autograd said: {exc}"
        ) from exc
    return grad


def variance_objective(
    log_prob_value: torch.Tensor,
    rho: torch.Tensor,
    normalisation: str,
    tail_lambda: torch.Tensor,
    tail_tau: torch.Tensor,
) -> torch.Tensor:
    """Per-sample objective whose x_t-gradient is Δ_t (TFG eq. 3 numerator, plus the tail term).

    ρ_t·log f̃ − λ·max(0, log f̃ − log τ); with DPS normalisation ρ_t is divided by |log f̃| per
    sample (Chung et al., 2023, the step ζ/‖y − A(x0)‖ as the TFG reference implements it).
    """
    rho = rho.flatten()
    if normalisation == "log_prob":
        rho = rho / log_prob_value.detach().abs().clamp_min(1e-12)
    objective = rho * log_prob_value
    tail_lambda = tail_lambda.flatten()
    if bool((tail_lambda != 0).any()):
        objective = objective - tail_lambda * torch.relu(log_prob_value - tail_tau.flatten().log())
    return objective


def mean_guidance(
    log_prob: LogProb, x0: torch.Tensor, mu: torch.Tensor, n_iter: int, gamma: torch.Tensor, deltas: torch.Tensor | None
) -> torch.Tensor:
    """Δ_0 = x0' − x0 after N_iter ascent steps x0' ← x0' + μ_t·∇ log f̃(x0') (TFG Alg. 1, mean guidance)."""
    x0_guided = x0.detach()
    for _ in range(n_iter):
        with torch.enable_grad():
            x_req = x0_guided.detach().requires_grad_(True)
            step = gradient(smoothed_log_prob(log_prob, x_req, gamma, deltas), x_req)
        x0_guided = x0_guided + mu * step
    return x0_guided - x0.detach()


def dsg_step(mean: torch.Tensor, direction: torch.Tensor, sigma: float, rate: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """DSG: x_prev = μ + r·d_m/‖d_m‖, d_m = σz + g_r·(d* − σz), d* = r·ĝ, r = √n·σ (eq. 10).

    ``direction`` is the method's own guided displacement of the mean (its unit vector is ĝ; a
    zero displacement gives d* = 0). The step length is fixed by the sphere.
    """
    batch = mean.shape[0]
    n = mean[0].numel()
    radius = math.sqrt(n) * sigma
    flat_dir = direction.reshape(batch, -1)
    norm = flat_dir.norm(dim=1, keepdim=True)
    d_star = torch.where(norm > 0, radius * flat_dir / norm.clamp_min(1e-30), torch.zeros_like(flat_dir))
    d_sample = sigma * z.reshape(batch, -1)
    d_m = d_sample + rate.reshape(batch, 1) * (d_star - d_sample)
    d_m = radius * d_m / d_m.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return mean + d_m.view_as(mean)

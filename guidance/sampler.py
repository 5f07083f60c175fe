"""Guided DDIM sampling over TFG's unified design space (Ye et al., 2024, arXiv 2409.15761, Alg. 1).

One step at inference step i (repeated N_recur times):
  1. variance guidance  Δ_t = ∇_{x_t}[ρ_i·log f̃(x0(x_t))]  (through the denoiser; skipped when ρ = 0)
  2. mean guidance      Δ_0 = x0' − x0, N_iter ascent steps on log f̃ at x0 (no denoiser pass)
  3. update             x_prev = DDIM(x_t, x0) + Δ_t/√α_t + √ᾱ_prev·Δ_0   (update_rule "tfg")
  4. recurrence         x_t ← √α_t·x_prev + √(1−α_t)·z, back to 1 while recurrences remain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from tqdm.auto import tqdm

from .errors import GuidanceConfigError, ModelContractError, NonFiniteError
from .models import checked_alphas_cumprod
from .noise import SampleNoise
from .params import CONTINUOUS_FIELDS, TFGParams
from .schedules import ddim_sigma, ddim_timesteps, gamma_schedule, step_alphas, strength_schedule
from .tfg import (
    LogProb,
    ddim_mean_from_eps,
    ddim_mean_from_x0,
    dsg_step,
    gradient,
    mean_guidance,
    per_sample,
    predict_x0,
    smoothed_log_prob,
    variance_objective,
)


@dataclass(frozen=True)
class SamplingRun:
    """Samples and what they cost. ``nonfinite_step[i]`` is the first inference step at which sample
    i went non-finite (−1 if it never did; such samples are returned as NaN)."""

    samples: torch.Tensor
    nonfinite_step: torch.Tensor
    forward_passes: int      # denoiser forward passes per sample
    backward_passes: int     # denoiser backward passes per sample
    predictor_passes: int    # predictor forward+backward passes per sample
    seconds: float

    @property
    def finite(self) -> torch.Tensor:
        return self.nonfinite_step < 0


def sample(
    model,
    log_prob: LogProb | None,
    params: TFGParams,
    *,
    shape: Sequence[int],
    steps: int = 50,
    eta: float = 1.0,
    seeds: Sequence[int] | torch.Tensor,
    clip_x0: float | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Draw ``len(seeds)`` guided samples of per-sample ``shape``; sample i depends only on
    ``seeds[i]`` and its own strengths. Raises ``NonFiniteError`` naming the step if a sample
    goes NaN/inf. See ``sample_with_stats`` for the keyword arguments."""
    return sample_with_stats(
        model, log_prob, params, shape=shape, steps=steps, eta=eta, seeds=seeds, clip_x0=clip_x0,
        batch_size=batch_size, device=device, dtype=dtype, progress=progress, callback=callback,
        on_nonfinite="raise",
    ).samples


def sample_with_stats(
    model,
    log_prob: LogProb | None,
    params: TFGParams,
    *,
    shape: Sequence[int],
    steps: int = 50,
    eta: float = 1.0,
    seeds: Sequence[int] | torch.Tensor,
    clip_x0: float | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    on_nonfinite: Literal["raise", "mark"] = "raise",
) -> SamplingRun:
    """Guided sampling with cost counts.

    model: ``model(x, t) -> ε`` with ``alphas_cumprod``; log_prob: ``log_prob(x0) -> Tensor[B]``
    (None only for unguided params); params: a ``TFGParams`` whose strengths are floats or (B,)
    tensors; steps/eta: DDIM grid and stochasticity; clip_x0: clamp x0 to [−c, c] (the data range);
    batch_size: process the seeds in chunks of this size (results do not depend on it);
    callback: called after every inference step with a dict (step, t, x_t, x0, x_prev) of the chunk;
    on_nonfinite: "raise" a ``NonFiniteError``, or "mark" the sample as NaN and go on.
    """
    abar_all = checked_alphas_cumprod(model)
    seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise GuidanceConfigError(f"shape must be the per-sample shape, e.g. (1, 8, 8); got {shape}")
    if not isinstance(params, TFGParams):
        raise GuidanceConfigError(f"params must be a TFGParams, got {type(params).__name__}")
    if params.needs_log_prob and log_prob is None:
        raise GuidanceConfigError("these params guide the sampler, so log_prob must be given")
    if params.dsg and eta <= 0:
        raise GuidanceConfigError("DSG needs a stochastic sampler (eta > 0): its sphere radius is √n·σ_t")
    if on_nonfinite not in ("raise", "mark"):
        raise GuidanceConfigError(f"on_nonfinite must be 'raise' or 'mark', got {on_nonfinite!r}")
    for name in CONTINUOUS_FIELDS:
        value = getattr(params, name)
        if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() != len(seeds):
            raise GuidanceConfigError(
                f"params.{name} has {value.numel()} per-sample values but {len(seeds)} seeds were given"
            )
    device = torch.device(device) if device is not None else abar_all.device
    timesteps = ddim_timesteps(abar_all.numel(), steps)

    chunk = batch_size or len(seeds)
    start = time.perf_counter()
    parts = []
    for lo in range(0, len(seeds), chunk):
        idx = slice(lo, min(lo + chunk, len(seeds)))
        parts.append(
            _sample_chunk(
                model, log_prob, _slice_params(params, idx), shape, timesteps, abar_all, eta, seeds[idx],
                clip_x0, device, dtype, progress, callback, on_nonfinite, offset=lo,
            )
        )
    samples = torch.cat([p[0] for p in parts])
    nonfinite = torch.cat([p[1] for p in parts])
    forward, backward, predictor = parts[0][2]
    return SamplingRun(samples, nonfinite, forward, backward, predictor, time.perf_counter() - start)


def _slice_params(params: TFGParams, idx: slice) -> TFGParams:
    changes = {
        name: getattr(params, name)[idx]
        for name in CONTINUOUS_FIELDS
        if isinstance(getattr(params, name), torch.Tensor) and getattr(params, name).dim() == 1
    }
    return params.replace(**changes) if changes else params


def _sample_chunk(model, log_prob, params, shape, timesteps, abar_all, eta, seeds, clip_x0, device, dtype,
                  progress, callback, on_nonfinite, offset):
    noise = SampleNoise(seeds, device, dtype)
    batch = len(seeds)
    abar_t_all, abar_prev_all = step_alphas(abar_all, timesteps)
    sigma_all = ddim_sigma(abar_t_all, abar_prev_all, eta)
    rho_sched = strength_schedule(params.rho_schedule, abar_t_all, abar_prev_all)
    mu_sched = strength_schedule(params.mu_schedule, abar_t_all, abar_prev_all)
    gamma_sched = gamma_schedule(params.gamma_schedule, abar_t_all)

    x = noise.randn("trajectory", shape)
    ref = x
    rho_bar, mu_bar, gamma_bar = (per_sample(getattr(params, n), ref) for n in ("rho", "mu", "gamma"))
    tail_lambda, tail_tau, tail_beta = (per_sample(getattr(params, n), ref) for n in ("tail_lambda", "tail_tau", "tail_beta"))
    dsg_rate = per_sample(params.dsg_rate, ref)
    use_variance, use_mean, use_smoothing = params.uses_variance_guidance, params.uses_mean_guidance, params.uses_smoothing
    use_tail_manifold = bool((tail_beta != 0).any())
    n_mc = params.n_mc if use_smoothing else 0

    nonfinite_step = torch.full((batch,), -1, dtype=torch.long)
    forward = backward = predictor = 0
    iterator = tqdm(range(len(timesteps)), desc="sampling", leave=False, disable=not progress)
    for i in iterator:
        t = timesteps[i]
        t_batch = torch.full((batch,), int(t), dtype=torch.long, device=device)
        abar_t, abar_prev = float(abar_t_all[i]), float(abar_prev_all[i])
        alpha_t = abar_t / abar_prev
        sigma = float(sigma_all[i])
        guide_now = not params.dsg or i % params.dsg_interval == 0
        variance_now = use_variance and guide_now
        mean_now = use_mean and guide_now
        rho_i = rho_bar * float(rho_sched[i])
        mu_i = mu_bar * float(mu_sched[i])
        gamma_i = gamma_bar * float(gamma_sched[i])

        for r in range(params.n_recur):
            deltas = noise.randn("smoothing", (n_mc, *shape)) if n_mc and (variance_now or mean_now) else None
            # 1. variance guidance: Δ_t through the denoiser
            if variance_now:
                with torch.enable_grad():
                    x_in = x.detach().requires_grad_(True)
                    eps = _checked_eps(model, x_in, t_batch, forward == 0)
                    x0 = predict_x0(x_in, eps, abar_t, clip_x0)
                    value = smoothed_log_prob(log_prob, x0, gamma_i, deltas)
                    objective = variance_objective(value, rho_i, params.rho_normalisation, tail_lambda, tail_tau)
                    delta_t = gradient(objective, x_in)
                eps, x0 = eps.detach(), x0.detach()
                backward += 1
                predictor += max(n_mc, 1)
            else:
                with torch.no_grad():
                    eps = _checked_eps(model, x, t_batch, forward == 0)
                x0 = predict_x0(x, eps, abar_t, clip_x0)
                delta_t = None
            forward += 1
            # 2. mean guidance: Δ_0 on x0
            delta_0 = mean_guidance(log_prob, x0, mu_i, params.n_iter, gamma_i, deltas) if mean_now else None
            if mean_now:
                predictor += params.n_iter * max(n_mc, 1)
            # 3. update
            with torch.no_grad():
                x_prev = _update(x, eps, x0, delta_t, delta_0, abar_t, abar_prev, alpha_t, sigma, params,
                                 tail_beta if use_tail_manifold else None, dsg_rate, guide_now, noise, shape)
                # 4. recurrence: back to x_t with fresh noise
                if r < params.n_recur - 1:
                    x = math.sqrt(alpha_t) * x_prev + math.sqrt(1 - alpha_t) * noise.randn("trajectory", shape)
        if callback is not None:
            callback({"step": i, "t": int(t), "x_t": x.detach(), "x0": x0.detach(), "x_prev": x_prev.detach()})
        x = x_prev.detach()
        x = _handle_nonfinite(x, nonfinite_step, i, len(timesteps), int(t), on_nonfinite, offset)

    x[nonfinite_step >= 0] = float("nan")
    return x, nonfinite_step, (forward, backward, predictor)


def _checked_eps(model, x, t_batch, first_call: bool) -> torch.Tensor:
    eps = model(x, t_batch)
    if first_call and (not isinstance(eps, torch.Tensor) or eps.shape != x.shape):
        got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ModelContractError(f"model(x, t) must return ε with the shape of x {tuple(x.shape)}, got {got}")
    return eps


def _update(x, eps, x0, delta_t, delta_0, abar_t, abar_prev, alpha_t, sigma, params, tail_beta, dsg_rate,
            guide_now, noise, shape):
    """Step 3: the DDIM mean, the guided displacement by ``params.update_rule``, then the noise."""
    mean = ddim_mean_from_x0(x, x0, abar_t, abar_prev, sigma)
    if params.update_rule == "ugd":
        # UGD (Bansal et al., 2024): guidance enters through ε̂ = ε − √(1−ᾱ)Δ_t − √(ᾱ/(1−ᾱ))Δ_0
        eps_hat = eps
        if delta_t is not None:
            eps_hat = eps_hat - math.sqrt(1 - abar_t) * delta_t
        if delta_0 is not None:
            eps_hat = eps_hat - math.sqrt(abar_t / (1 - abar_t)) * delta_0
        guided_mean = ddim_mean_from_eps(x, eps_hat, abar_t, abar_prev, sigma)
    else:
        guided_mean = mean
        if delta_t is not None:
            scale = 1 / math.sqrt(alpha_t) if params.update_rule == "tfg" else 1.0
            guided_mean = guided_mean + scale * delta_t
        if delta_0 is not None:
            guided_mean = guided_mean + math.sqrt(abar_prev) * delta_0
    if tail_beta is not None and guide_now:
        # density-aware manifold term: pull toward the predicted clean image, β·(√ᾱ_prev·x0 − mean)
        guided_mean = guided_mean + tail_beta * (math.sqrt(abar_prev) * x0 - mean)
    z = noise.randn("trajectory", shape)
    if params.dsg:
        if not guide_now or sigma == 0.0:
            return mean + sigma * z
        return dsg_step(mean, guided_mean - mean, sigma, dsg_rate, z)
    return guided_mean + sigma * z


def _handle_nonfinite(x, nonfinite_step, i, n_steps, t, on_nonfinite, offset):
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1).cpu()
    fresh = bad & (nonfinite_step < 0)
    if fresh.any():
        indices = (fresh.nonzero().flatten() + offset).tolist()
        if on_nonfinite == "raise":
            raise NonFiniteError(
                f"samples {indices[:10]}{'…' if len(indices) > 10 else ''} became NaN/inf at inference step "
                f"{i} of {n_steps} (t={t}); lower the guidance strengths (rho, mu), or pass clip_x0 with the "
                "data range so x0 stays bounded",
                step=i, samples=indices,
            )
        nonfinite_step[fresh] = i
    if bad.any():
        x = x.clone()
        x[bad.to(x.device)] = 0.0  # keep the rest of the batch numerically clean; restored as NaN at the end
    return x

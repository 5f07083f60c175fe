"""The Momentum Sampler of Soft Diffusion (Daras et al., 2022, arXiv 2209.05442, Alg. 1) for a forward
model x_t = C_t·x0 + σ_t·η with a known linear corruption C_t; with C_t = I it is the VE ancestral step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import torch

from .errors import GuidanceConfigError
from .noise import SampleNoise

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]   # (x_t, step index) -> x̂0
Corruption = Callable[[torch.Tensor, int], torch.Tensor]  # (x0, step index) -> C_t·x0


def momentum_step(x: torch.Tensor, x0_hat: torch.Tensor, corrupt_now: torch.Tensor, corrupt_next: torch.Tensor,
                  sigma: float, sigma_next: float, z: torch.Tensor) -> torch.Tensor:
    """One step: ε̂ = C_t·x̂0 − x_t; z' = x_t − ((σ²_next − σ²)/σ²)·ε̂ + √(σ² − σ²_next)·η;
    x_next = z' + (C_next − C_t)·x̂0 (``corrupt_now``/``corrupt_next`` are C_t·x̂0 and C_next·x̂0)."""
    eps_hat = corrupt_now - x
    z_prime = x - ((sigma_next**2 - sigma**2) / sigma**2) * eps_hat + (sigma**2 - sigma_next**2) ** 0.5 * z
    return z_prime + (corrupt_next - corrupt_now)


def momentum_sample(denoiser: Denoiser, corruption: Corruption, sigmas: Sequence[float] | torch.Tensor, *,
                    shape: Sequence[int], seeds: Sequence[int], x_init: torch.Tensor | None = None,
                    dtype: torch.dtype = torch.float32, final_denoise: bool = True) -> torch.Tensor:
    """Run the Momentum Sampler over the decreasing noise levels ``sigmas`` (σ_0 > … > σ_{N−1} > 0).

    ``corruption(x0, i)`` applies C at level i (use ``lambda x, i: x`` for plain VE diffusion). The
    start is x_init, or C_0·0 + σ_0·η per sample seed. ``final_denoise`` returns D(x, σ_{N−1}).
    """
    sigmas = [float(s) for s in sigmas]
    if len(sigmas) < 2 or any(b >= a for a, b in zip(sigmas, sigmas[1:])) or sigmas[-1] <= 0:
        raise GuidanceConfigError("sigmas must be a strictly decreasing sequence of positive noise levels (≥ 2)")
    noise = SampleNoise(seeds, "cpu", dtype)
    x = x_init if x_init is not None else sigmas[0] * noise.randn("trajectory", shape)
    for i in range(len(sigmas) - 1):
        x0_hat = denoiser(x, i)
        z = noise.randn("trajectory", shape)
        x = momentum_step(x, x0_hat, corruption(x0_hat, i), corruption(x0_hat, i + 1), sigmas[i], sigmas[i + 1], z)
    return denoiser(x, len(sigmas) - 1) if final_denoise else x


def ve_denoiser_from_vp(model, timesteps: torch.Tensor) -> tuple[Denoiser, torch.Tensor]:
    """Map a VP ε-model to VE coordinates (x_VE = x_VP/√ᾱ, σ = √((1−ᾱ)/ᾱ)) on a grid of its training
    steps; returns the denoiser D(x_VE, i) and the σ levels of ``timesteps``."""
    abar = model.alphas_cumprod.detach().to(torch.float64)[timesteps]
    sigmas = ((1 - abar) / abar).sqrt()

    def denoise(x_ve: torch.Tensor, i: int) -> torch.Tensor:
        a = float(abar[i])
        x_vp = x_ve * a**0.5
        t = torch.full((x_ve.shape[0],), int(timesteps[i]), dtype=torch.long)
        with torch.no_grad():
            eps = model(x_vp, t)
        return (x_vp - (1 - a) ** 0.5 * eps) / a**0.5

    return denoise, sigmas

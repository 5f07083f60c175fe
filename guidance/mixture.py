"""A Gaussian-mixture prior with its exact ε under the VP forward process, and the exact posterior
under a linear measurement y = A·x0 + N(0, σ_y²I): the ground truth for tests and searches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ModelContractError


@dataclass(frozen=True)
class GaussianMixture:
    """p(x) = Σ_k π_k N(x; m_k, Σ_k) in d dimensions (float64)."""

    weights: torch.Tensor  # (K,), sums to 1
    means: torch.Tensor    # (K, d)
    covs: torch.Tensor     # (K, d, d), symmetric positive definite

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ModelContractError(
                f"mixture shapes disagree: weights {tuple(self.weights.shape)}, means {tuple(self.means.shape)}, "
                f"covs {tuple(self.covs.shape)}; expected (K,), (K, d), (K, d, d)"
            )
        if abs(float(self.weights.sum()) - 1) > 1e-6 or (self.weights < 0).any():
            raise ModelContractError("mixture weights must be non-negative and sum to 1")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def noised(self, abar: float) -> "GaussianMixture":
        """Marginal of x_t = √ᾱ·x0 + √(1−ᾱ)·ε: means √ᾱ·m_k, covariances ᾱ·Σ_k + (1−ᾱ)·I."""
        eye = torch.eye(self.dim, dtype=self.covs.dtype)
        return GaussianMixture(self.weights, math.sqrt(abar) * self.means, abar * self.covs + (1 - abar) * eye)

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + log N(x; m_k, Σ_k), shape (B, K)."""
        chol = torch.linalg.cholesky(self.covs)                         # (K, d, d)
        diff = (x.to(self.means.dtype)[:, None, :] - self.means[None])   # (B, K, d)
        sol = torch.linalg.solve_triangular(chol[None], diff.unsqueeze(-1), upper=False).squeeze(-1)
        maha = (sol**2).sum(-1)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return self.weights.log()[None] - 0.5 * (maha + logdet[None] + self.dim * math.log(2 * math.pi))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇_x log p(x) = Σ_k w_k(x)·Σ_k⁻¹(m_k − x)."""
        w = torch.softmax(self.component_log_probs(x), dim=1)            # (B, K)
        diff = self.means[None] - x.to(self.means.dtype)[:, None, :]     # (B, K, d)
        prec_diff = torch.linalg.solve(self.covs[None], diff.unsqueeze(-1)).squeeze(-1)
        return (w.unsqueeze(-1) * prec_diff).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[comp] + (chol[comp] @ z.unsqueeze(-1)).squeeze(-1)

    def posterior(self, A: torch.Tensor, y: torch.Tensor, noise_std: float) -> "GaussianMixture":
        """Exact p(x | y) for y = A·x + N(0, σ_y²I): a mixture with
        P_k = (Σ_k⁻¹ + AᵀA/σ²)⁻¹, m'_k = P_k(Σ_k⁻¹m_k + Aᵀy/σ²), π'_k ∝ π_k N(y; A m_k, AΣ_kAᵀ + σ²I)."""
        A, y = A.to(self.means.dtype), y.to(self.means.dtype)
        s2 = noise_std**2
        prec = torch.linalg.inv(self.covs) + (A.T @ A / s2)[None]
        post_cov = torch.linalg.inv(prec)
        post_cov = 0.5 * (post_cov + post_cov.transpose(-1, -2))
        rhs = torch.linalg.solve(self.covs, self.means.unsqueeze(-1)).squeeze(-1) + (A.T @ y / s2)[None]
        post_mean = (post_cov @ rhs.unsqueeze(-1)).squeeze(-1)
        evidence = GaussianMixture(self.weights, self.means @ A.T, A @ self.covs @ A.T + s2 * torch.eye(A.shape[0], dtype=A.dtype))
        log_w = evidence.component_log_probs(y[None])[0]
        return GaussianMixture(torch.softmax(log_w, 0), post_mean, post_cov)


class MixtureEpsilonModel(nn.Module):
    """The exact ε-predictor of a Gaussian-mixture prior: ε(x_t, t) = −√(1−ᾱ_t)·∇ log p_t(x_t).

    Samples have shape (B, d) (or (B, *shape) with prod(shape) = d)."""

    def __init__(self, mixture: GaussianMixture, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.mixture = mixture
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().clone())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.mixture.dim:
            raise ModelContractError(f"the mixture has d={self.mixture.dim} but samples have {flat.shape[1]} elements")
        eps = torch.empty_like(flat, dtype=torch.float64)
        for step in torch.unique(t):
            rows = t == step
            abar = float(self.alphas_cumprod[step])
            eps[rows] = -math.sqrt(1 - abar) * self.mixture.noised(abar).score(flat[rows])
        return eps.to(x.dtype).view_as(x)


def linear_beta_alphas_cumprod(num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """ᾱ of DDPM's linear β schedule (Ho et al., 2020)."""
    betas = torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def measurement_log_prob(A: torch.Tensor, y: torch.Tensor, noise_std: float):
    """log f(x0) = −‖y − A·x0‖² / (2σ_y²) per sample (y of shape (m,) or per-sample (B, m))."""

    def log_prob(x0: torch.Tensor) -> torch.Tensor:
        flat = x0.reshape(x0.shape[0], -1)
        residual = y.to(flat) - flat @ A.to(flat).T
        return -(residual**2).sum(-1) / (2 * noise_std**2)

    return log_prob

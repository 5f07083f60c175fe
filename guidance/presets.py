"""Existing training-free guidance methods as points of TFG's design space (Ye et al., 2024, Sec. 3.2,
read against the reference implementations). Each preset reproduces its method's original update;
where a method adds its step to x_prev directly instead of TFG's Δ_t/√α_t, ``update_rule`` keeps the
original convention ("additive"), and UGD keeps its ε̂-reparameterised update ("ugd")."""

from __future__ import annotations

from .params import TFGParams


def unguided() -> TFGParams:
    """Plain DDIM."""
    return TFGParams()


def dps(strength: float) -> TFGParams:
    """DPS (Chung et al., 2023): x_prev += ζ·∇_{x_t} log f(x0(x_t)) / |log f(x0)| per sample."""
    return TFGParams(rho=strength, rho_schedule="constant", rho_normalisation="log_prob", update_rule="additive")


def lgd(strength: float, n_mc: int = 4) -> TFGParams:
    """LGD-MC (Song et al., 2023): n_mc samples x0 + √(1−ᾱ_t)·δ, gradient of the log-mean-likelihood
    through the denoiser, scaled by strength / n_mc as in the reference code; constant in time."""
    return TFGParams(rho=strength / n_mc, rho_schedule="constant", gamma=1.0, gamma_schedule="decrease",
                     n_mc=n_mc, update_rule="additive")


def freedom(strength: float, n_recur: int = 1, schedule: str = "increase") -> TFGParams:
    """FreeDoM (Yu et al., 2023): ρ-scheduled gradient through the denoiser with time travel."""
    return TFGParams(rho=strength, rho_schedule=schedule, n_recur=n_recur, update_rule="additive")


def mpgd(strength: float) -> TFGParams:
    """MPGD (He et al., 2024): one gradient step on x0, no back-propagation through the denoiser."""
    return TFGParams(mu=strength, mu_schedule="constant", n_iter=1, update_rule="additive")


def ugd(strength: float, n_recur: int = 1, k: int = 2) -> TFGParams:
    """UGD (Bansal et al., 2024): forward guidance through ε̂ plus k − 1 backward steps on x0, same
    strength for both, with recurrence."""
    return TFGParams(rho=strength, mu=strength, n_iter=k - 1, n_recur=n_recur, rho_schedule="constant",
                     mu_schedule="constant", update_rule="ugd")


def tfg(rho: float, mu: float, gamma: float, n_recur: int = 1, n_iter: int = 4, n_mc: int = 1) -> TFGParams:
    """TFG with the reference structures: ρ, μ increase, γ decrease."""
    return TFGParams(rho=rho, mu=mu, gamma=gamma, n_recur=n_recur, n_iter=n_iter, n_mc=n_mc)


PRESETS = {"unguided": unguided, "dps": dps, "lgd": lgd, "freedom": freedom, "mpgd": mpgd, "ugd": ugd, "tfg": tfg}

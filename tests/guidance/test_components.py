"""Schedules, the analytic mixture, the model adapters, the Momentum Sampler and the params record."""

from __future__ import annotations

import json
import math

import pytest
import torch

from guidetune.guidance import (
    EpsilonFromV, EpsilonFromX0, GuidanceConfigError, TFGParams, linear_beta_alphas_cumprod, momentum_sample,
    momentum_step, ve_denoiser_from_vp,
)
from guidetune.guidance.schedules import ddim_timesteps, gamma_schedule, step_alphas, strength_schedule


@pytest.mark.parametrize("structure", ["increase", "decrease", "constant"])
@pytest.mark.parametrize("steps", [10, 50, 100])
def test_strength_schedules_average_to_the_bar_value(structure, steps):
    a, ap = step_alphas(linear_beta_alphas_cumprod(), ddim_timesteps(1000, steps))
    s = strength_schedule(structure, a, ap)
    assert math.isclose(float(s.mean()), 1.0, rel_tol=1e-12)
    alpha = a / ap
    if structure == "increase":   # proportional to α_i, so it grows toward the clean end
        assert torch.allclose(s / s[0], alpha / alpha[0]) and s[-1] > s[0]
    if structure == "decrease":
        assert torch.allclose(s / s[0], (1 - alpha) / (1 - alpha[0])) and s[-1] < s[0]


def test_gamma_schedule_and_timesteps():
    abar = linear_beta_alphas_cumprod()
    ts = ddim_timesteps(1000, 50)
    assert ts.tolist()[:3] == [980, 960, 940] and ts[-1] == 0
    a, ap = step_alphas(abar, ts)
    assert ap[-1] == 1 and torch.equal(ap[:-1], a[1:])
    assert torch.allclose(gamma_schedule("decrease", a), (1 - a).sqrt())
    assert torch.equal(gamma_schedule("constant", a), torch.ones(50, dtype=torch.float64))
    with pytest.raises(GuidanceConfigError):
        gamma_schedule("increase", a)


def test_mixture_epsilon_is_the_exact_score(mixture, mixture_model):
    x = torch.randn(16, 2, dtype=torch.float64)
    for t in (0, 300, 999):
        abar = float(mixture_model.alphas_cumprod[t])
        xr = x.clone().requires_grad_(True)
        (score,) = torch.autograd.grad(mixture.noised(abar).log_prob(xr).sum(), xr)
        eps = mixture_model(x, torch.full((16,), t))
        assert torch.allclose(eps, -math.sqrt(1 - abar) * score, atol=1e-10)


def test_posterior_matches_importance_weighted_prior_samples(mixture, measurement):
    A, y, s = measurement
    post = mixture.posterior(A, y, s)
    prior = mixture.sample(400_000, torch.Generator().manual_seed(0))
    w = torch.softmax(-((prior @ A.T - y) ** 2).sum(1) / (2 * s**2), 0)
    mean_is = (w[:, None] * prior).sum(0)
    mean_exact = (post.weights[:, None] * post.means).sum(0)
    assert torch.allclose(mean_is, mean_exact, atol=0.02)
    # the likelihood's precision adds to the observed coordinate only
    assert torch.all(post.covs[:, 0, 0] < mixture.covs[:, 0, 0])


def test_x0_and_v_adapters_reproduce_epsilon(mixture_model):
    abar = mixture_model.alphas_cumprod
    x = torch.randn(8, 2, dtype=torch.float64)
    t = torch.full((8,), 400)
    eps = mixture_model(x, t)
    a = abar[400]
    x0_model = lambda z, tt: (z - (1 - a).sqrt() * mixture_model(z, tt)) / a.sqrt()
    v_model = lambda z, tt: a.sqrt() * mixture_model(z, tt) - (1 - a).sqrt() * x0_model(z, tt)
    assert torch.allclose(EpsilonFromX0(x0_model, abar)(x, t), eps, atol=1e-10)
    assert torch.allclose(EpsilonFromV(v_model, abar)(x, t), eps, atol=1e-10)


def test_momentum_step_with_identity_corruption_is_the_ve_ancestral_step():
    g = torch.Generator().manual_seed(0)
    x, x0, z = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    sigma, sigma_next = 2.0, 1.3
    ancestral = x + (sigma**2 - sigma_next**2) * (x0 - x) / sigma**2 + math.sqrt(sigma**2 - sigma_next**2) * z
    assert torch.allclose(momentum_step(x, x0, x0, x0, sigma, sigma_next, z), ancestral, atol=1e-12)
    # a real corruption (per-level scaling C_t = c_t·I) adds (C_next − C_t)·x̂0
    c, c_next = 0.6, 0.8
    out = momentum_step(x, x0, c * x0, c_next * x0, sigma, sigma_next, z)
    expected = x - ((sigma_next**2 - sigma**2) / sigma**2) * (c * x0 - x) + math.sqrt(sigma**2 - sigma_next**2) * z
    assert torch.allclose(out, expected + (c_next - c) * x0, atol=1e-12)


def test_momentum_sampler_with_identity_corruption_samples_the_prior(mixture, mixture_model):
    timesteps = ddim_timesteps(1000, 100)
    denoise, sigmas = ve_denoiser_from_vp(mixture_model, timesteps)
    x = momentum_sample(denoise, lambda x0, i: x0, sigmas, shape=(2,), seeds=range(2000)).double()
    right = x[:, 0] > 0
    assert abs(float(right.double().mean()) - 0.5) < 3 * math.sqrt(0.25 / 2000)  # mode split within 3 s.e.
    for k, rows in ((0, ~right), (1, right)):                                   # each mode's mean and covariance
        assert torch.allclose(x[rows].mean(0), mixture.means[k], atol=0.08)
        assert torch.allclose(torch.cov(x[rows].T), mixture.covs[k], atol=0.08)
    with pytest.raises(GuidanceConfigError):
        momentum_sample(denoise, lambda x0, i: x0, [1.0, 2.0], shape=(2,), seeds=[0])


def test_params_round_trip_through_json():
    p = TFGParams(rho=torch.tensor([0.5, 1.0]), mu=2.0, gamma=0.01, n_recur=2, rho_schedule="decrease", dsg=True)
    back = TFGParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert torch.equal(back.rho, torch.tensor([0.5, 1.0], dtype=torch.float64))
    assert back.replace(rho=0.0) == p.replace(rho=0.0)
    with pytest.raises(GuidanceConfigError, match="unknown guidance parameter"):
        TFGParams.from_dict({"rhoo": 1.0})
    with pytest.raises(GuidanceConfigError, match="n_recur"):
        TFGParams(n_recur=0)
    assert TFGParams(rho=1.0).structure() == TFGParams(rho=2.0).structure() != TFGParams(n_recur=2).structure()


def test_guidance_imports_nothing_of_the_other_packages():
    import subprocess
    import sys

    code = ("import sys, guidetune.guidance; bad = [m for m in sys.modules if m.startswith('guidetune.') "
            "and not m.startswith('guidetune.guidance')]; print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

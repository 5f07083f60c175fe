"""The guided sampler on the analytic mixture: distributions, invariances, costs and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from guidetune.evaluators.metrics import sliced_wasserstein
from guidetune.guidance import (
    GuidanceConfigError, ModelContractError, NonFiniteError, TFGParams, sample, sample_with_stats,
)
from guidetune.guidance.presets import tfg

N = 1000


def _draw(model, lp, params, seeds=range(N), **kw):
    return sample(model, lp, params, shape=(2,), steps=50, seeds=list(seeds), **kw)


def test_unguided_sampling_matches_the_exact_prior(mixture, mixture_model):
    x = _draw(mixture_model, None, TFGParams())
    prior = mixture.sample(4000, torch.Generator().manual_seed(5)).float()
    noise_floor = sliced_wasserstein(mixture.sample(N, torch.Generator().manual_seed(6)), prior)
    distance = sliced_wasserstein(x, prior)
    assert distance < max(2.5 * noise_floor, 0.08), (distance, noise_floor)
    # means and the mode split are right too
    assert torch.allclose(x.mean(0), mixture.means.T.float() @ mixture.weights.float(), atol=0.15)
    assert abs(float((x[:, 0] > 0).float().mean()) - 0.5) < 0.05


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(TFGParams(rho=0.05), id="variance-only"),
        pytest.param(TFGParams(mu=0.05, n_iter=4), id="mean-only"),
        pytest.param(tfg(0.02, 0.02, 0.01, n_recur=2), id="tfg-full"),
        pytest.param(TFGParams(rho=1.0, dsg=True, dsg_rate=0.2), id="dsg"),
    ],
)
def test_guidance_moves_much_closer_to_the_exact_posterior(mixture_model, measurement_lp, posterior_samples, params):
    unguided = sliced_wasserstein(_draw(mixture_model, None, TFGParams()), posterior_samples)
    guided = sliced_wasserstein(_draw(mixture_model, measurement_lp, params), posterior_samples)
    assert guided < 0.3 * unguided, (guided, unguided)
    # the same configuration with the gradient's sign flipped must do worse than no guidance at all
    flipped = sliced_wasserstein(_draw(mixture_model, lambda x0: -measurement_lp(x0), params), posterior_samples)
    assert flipped > unguided, (flipped, unguided)


def test_packed_and_unpacked_runs_give_the_same_samples(mixture_model, measurement_lp):
    strengths = [(0.02, 0.01, 0.0), (0.05, 0.0, 0.01), (0.0, 0.03, 0.1)]
    seeds = list(range(12))
    separate = [
        _draw(mixture_model, measurement_lp, tfg(r, m, g, n_recur=2, n_iter=2), seeds=seeds[4 * k: 4 * k + 4])
        for k, (r, m, g) in enumerate(strengths)
    ]
    per = lambda j: torch.tensor([s[j] for s in strengths for _ in range(4)], dtype=torch.float64)
    packed = _draw(mixture_model, measurement_lp, tfg(per(0), per(1), per(2), n_recur=2, n_iter=2), seeds=seeds)
    assert torch.allclose(packed, torch.cat(separate), atol=1e-5)


def test_sample_depends_on_its_own_seed_alone(mixture_model, measurement_lp):
    params = tfg(0.02, 0.02, 0.05)
    batch = _draw(mixture_model, measurement_lp, params, seeds=[3, 7, 11, 19])
    single = _draw(mixture_model, measurement_lp, params, seeds=[7])
    chunked = _draw(mixture_model, measurement_lp, params, seeds=[3, 7, 11, 19], batch_size=3)
    assert torch.allclose(batch[1], single[0], atol=1e-6)
    assert torch.allclose(batch, chunked, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])


def test_costs_are_counted_per_sample(mixture_model, measurement_lp):
    run = sample_with_stats(mixture_model, measurement_lp, tfg(0.02, 0.02, 0.01, n_recur=3, n_iter=2, n_mc=2),
                            shape=(2,), steps=10, seeds=[0, 1])
    assert (run.forward_passes, run.backward_passes) == (30, 30)
    assert run.predictor_passes == 30 * (1 + 2) * 2  # (variance + n_iter mean steps) × n_mc
    mean_only = sample_with_stats(mixture_model, measurement_lp, TFGParams(mu=0.1, n_iter=4), shape=(2,), steps=10, seeds=[0])
    assert (mean_only.forward_passes, mean_only.backward_passes, mean_only.predictor_passes) == (10, 0, 40)


def test_dsg_step_length_is_sqrt_n_sigma_per_sample(mixture_model, measurement_lp):
    from guidetune.guidance.schedules import ddim_sigma, ddim_timesteps, step_alphas
    from guidetune.guidance.tfg import ddim_mean_from_x0, predict_x0

    steps, eta = 20, 1.0
    abar_t, abar_prev = step_alphas(mixture_model.alphas_cumprod, ddim_timesteps(1000, steps))
    sigma = ddim_sigma(abar_t, abar_prev, eta)
    seen = []

    def check(info):
        i = info["step"]
        if i == steps - 1:
            return
        with torch.no_grad():
            eps = mixture_model(info["x_t"], torch.full((info["x_t"].shape[0],), info["t"]))
        x0 = predict_x0(info["x_t"], eps, float(abar_t[i]), None)
        mean = ddim_mean_from_x0(info["x_t"], x0, float(abar_t[i]), float(abar_prev[i]), float(sigma[i]))
        radius = (info["x_prev"] - mean).norm(dim=1)
        seen.append(torch.allclose(radius, torch.full_like(radius, math.sqrt(2) * float(sigma[i])), rtol=1e-4))

    rates = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    sample(mixture_model, measurement_lp, TFGParams(rho=1.0, dsg=True, dsg_rate=rates), shape=(2,), steps=steps,
           eta=eta, seeds=range(4), callback=check)
    assert len(seen) == steps - 1 and all(seen)


def test_tail_guidance_terms(mixture_model, measurement_lp):
    base = TFGParams(rho=0.05)
    plain = _draw(mixture_model, measurement_lp, base, seeds=range(200))
    # τ = 1 makes the low-confidence hinge max(0, log f − log 1) vanish for any log-likelihood ≤ 0
    inert = _draw(mixture_model, measurement_lp, base.replace(tail_lambda=0.05, tail_tau=1.0), seeds=range(200))
    assert torch.allclose(plain, inert, atol=1e-6)
    # with a low threshold the term pushes samples out of the predictor's most confident region
    tail = _draw(mixture_model, measurement_lp, base.replace(tail_lambda=0.04, tail_tau=0.05), seeds=range(200))
    assert float(measurement_lp(tail).mean()) < float(measurement_lp(plain).mean())
    # the manifold term shrinks the noise direction, changing samples but not breaking them
    manifold = _draw(mixture_model, measurement_lp, base.replace(tail_beta=0.2), seeds=range(200))
    assert torch.isfinite(manifold).all() and not torch.allclose(manifold, plain)


class _NaNAt:
    """A fault injector: the exact model, but ε is NaN for chosen rows at one training step."""

    def __init__(self, model, t: int, rows: list[int]):
        self.model, self.t, self.rows = model, t, rows
        self.alphas_cumprod = model.alphas_cumprod

    def __call__(self, x, t):
        eps = self.model(x, t)
        if int(t[0]) == self.t:
            eps = eps.clone()
            eps[self.rows] = float("nan")
        return eps


def test_nonfinite_values_are_reported_with_their_step(mixture_model, measurement_lp):
    broken = _NaNAt(mixture_model, t=600, rows=[1])   # t = 600 is inference step 19 of 50 (t_i = (49 − i)·20)
    with pytest.raises(NonFiniteError, match="step 19 of 50") as info:
        _draw(broken, measurement_lp, TFGParams(rho=0.05), seeds=range(3))
    assert info.value.step == 19 and info.value.samples == [1]
    run = sample_with_stats(broken, measurement_lp, TFGParams(rho=0.05), shape=(2,), steps=50, seeds=range(3),
                            on_nonfinite="mark")
    assert run.nonfinite_step.tolist() == [-1, 19, -1]
    assert torch.isnan(run.samples[1]).all()
    clean = _draw(mixture_model, measurement_lp, TFGParams(rho=0.05), seeds=range(3))
    assert torch.allclose(run.samples[[0, 2]], clean[[0, 2]], atol=1e-6)


def test_bad_input_gets_clear_errors(mixture_model, measurement_lp):
    with pytest.raises(ModelContractError, match=r"shape \(B,\)"):
        _draw(mixture_model, lambda x0: measurement_lp(x0)[:, None], TFGParams(rho=0.1), seeds=[0])
    with pytest.raises(ModelContractError, match="without a gradient"):
        _draw(mixture_model, lambda x0: measurement_lp(x0.detach()), TFGParams(rho=0.1), seeds=[0])

    class WrongShape:
        alphas_cumprod = mixture_model.alphas_cumprod

        def __call__(self, x, t):
            return x[:, :1]

    with pytest.raises(ModelContractError, match="shape of x"):
        _draw(WrongShape(), None, TFGParams(), seeds=[0])
    with pytest.raises(ModelContractError, match="alphas_cumprod"):
        _draw(lambda x, t: x, None, TFGParams(), seeds=[0])
    with pytest.raises(GuidanceConfigError, match="unknown rho_schedule"):
        TFGParams(rho=1.0, rho_schedule="cosine")
    with pytest.raises(GuidanceConfigError, match="3 per-sample values but 2 seeds"):
        _draw(mixture_model, measurement_lp, TFGParams(rho=torch.tensor([0.1, 0.2, 0.3])), seeds=[0, 1])
    with pytest.raises(GuidanceConfigError, match="log_prob must be given"):
        _draw(mixture_model, None, TFGParams(mu=0.1), seeds=[0])
    with pytest.raises(GuidanceConfigError, match="eta > 0"):
        _draw(mixture_model, measurement_lp, TFGParams(rho=1.0, dsg=True), seeds=[0], eta=0.0)
    with pytest.raises(GuidanceConfigError, match="exceeds"):
        sample(mixture_model, None, TFGParams(), shape=(2,), steps=5000, seeds=[0])
    with pytest.raises(GuidanceConfigError, match="rho must lie"):
        TFGParams(rho=-1.0)

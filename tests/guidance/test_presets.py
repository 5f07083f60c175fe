"""Each preset against a direct, independent implementation of its method.

The direct versions below are transcribed from the methods' reference code (the TFG repository's
methods/{dps,lgd,freedom,mpgd,ugd,tfg}.py), written without the engine's helpers; they draw their
random numbers from the same per-sample streams in the same order, so the samples must agree.
"""

from __future__ import annotations

import math

import pytest
import torch

from guidetune.guidance import sample
from guidetune.guidance.noise import SampleNoise
from guidetune.guidance.presets import dps, freedom, lgd, mpgd, tfg, ugd

STEPS, ETA, SHAPE, SEEDS = 20, 1.0, (2,), list(range(6))


def _grad(fn, x):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = fn(x)
        (g,) = torch.autograd.grad(value.sum(), x)
    return g, value.detach()


def _schedule(kind, a, ap):
    s = {"increase": a / ap, "decrease": 1 - a / ap, "constant": torch.ones_like(a)}[kind]
    return s * len(s) / s.sum()


def _run_direct(model, step):
    noise = SampleNoise(SEEDS, "cpu", torch.float32)
    ts = list(range(0, 1000, 1000 // STEPS))[::-1]
    abar = model.alphas_cumprod.double()
    a_all = torch.stack([abar[t] for t in ts])
    ap_all = torch.cat([a_all[1:], torch.ones(1, dtype=torch.float64)])
    x = noise.randn("trajectory", SHAPE)
    for i, t in enumerate(ts):
        x = step(x, i, t, float(a_all[i]), float(ap_all[i]), a_all, ap_all, noise)
    return x


def _eps(model, x, t):
    return model(x, torch.full((x.shape[0],), t))


def _x0(x, eps, a):
    return (x - (1 - a) ** 0.5 * eps) / a**0.5


def _prev_from_eps(x, eps, a, ap, noise):
    sigma = ETA * ((1 - ap) / (1 - a) * (1 - a / ap)) ** 0.5
    return ap**0.5 * _x0(x, eps, a) + (1 - ap - sigma**2) ** 0.5 * eps + sigma * noise.randn("trajectory", SHAPE)


def _renoise(x_prev, a, ap, noise):
    return (a / ap) ** 0.5 * x_prev + (1 - a / ap) ** 0.5 * noise.randn("trajectory", SHAPE)


def direct_dps(model, lp, s):
    def step(x, i, t, a, ap, *_):
        g, logp = _grad(lambda z: lp(_x0(z, _eps(model, z, t), a)), x)
        with torch.no_grad():
            x_prev = _prev_from_eps(x, _eps(model, x, t), a, ap, noise_ref[0])
        return x_prev + s * g / logp.abs()[:, None]
    noise_ref = [None]
    return _with_noise(model, step, noise_ref)


def _with_noise(model, step, noise_ref):
    def wrapped(x, i, t, a, ap, a_all, ap_all, noise):
        noise_ref[0] = noise
        return step(x, i, t, a, ap, a_all, ap_all)
    return _run_direct(model, wrapped)


def direct_lgd(model, lp, s, n):
    noise_ref = [None]

    def step(x, i, t, a, ap, *_):
        mc = noise_ref[0].randn("smoothing", (n, *SHAPE)) * (1 - a) ** 0.5   # (B, n, d)

        def objective(z):
            x0 = _x0(z, _eps(model, z, t), a)
            return torch.logsumexp(torch.stack([lp(x0 + mc[:, j]) for j in range(n)]), 0)

        g, _ = _grad(objective, x)
        with torch.no_grad():
            x_prev = _prev_from_eps(x, _eps(model, x, t), a, ap, noise_ref[0])
        return x_prev + s * g / n
    return _with_noise(model, step, noise_ref)


def direct_freedom(model, lp, s, recur, schedule):
    noise_ref = [None]

    def step(x, i, t, a, ap, a_all, ap_all):
        rho = s * float(_schedule(schedule, a_all, ap_all)[i])
        for r in range(recur):
            g, _ = _grad(lambda z: lp(_x0(z, _eps(model, z, t), a)), x)
            with torch.no_grad():
                x_prev = _prev_from_eps(x, _eps(model, x, t), a, ap, noise_ref[0]) + rho * g
            if r < recur - 1:
                x = _renoise(x_prev, a, ap, noise_ref[0])
        return x_prev
    return _with_noise(model, step, noise_ref)


def direct_mpgd(model, lp, s):
    noise_ref = [None]

    def step(x, i, t, a, ap, *_):
        with torch.no_grad():
            eps = _eps(model, x, t)
        x0 = _x0(x, eps, a)
        g, _ = _grad(lp, x0)
        x0 = x0 + s * g
        sigma = ETA * ((1 - ap) / (1 - a) * (1 - a / ap)) ** 0.5
        return ap**0.5 * x0 + (1 - ap - sigma**2) ** 0.5 * eps + sigma * noise_ref[0].randn("trajectory", SHAPE)
    return _with_noise(model, step, noise_ref)


def direct_ugd(model, lp, s, recur, k):
    noise_ref = [None]

    def step(x, i, t, a, ap, *_):
        for r in range(recur):
            with torch.no_grad():
                eps = _eps(model, x, t)
            x0 = _x0(x, eps, a)
            g, _ = _grad(lambda z: lp(_x0(z, _eps(model, z, t), a)), x)
            eps_hat = eps - s * g * (1 - a) ** 0.5
            x0_gd = x0.clone()
            for _ in range(k - 1):
                g0, _ = _grad(lp, x0_gd)
                x0_gd = x0_gd + s * g0
            eps_hat = eps_hat - (a / (1 - a)) ** 0.5 * (x0_gd - x0)
            x_prev = _prev_from_eps(x, eps_hat, a, ap, noise_ref[0])
            if r < recur - 1:
                x = _renoise(x_prev, a, ap, noise_ref[0])
        return x_prev
    return _with_noise(model, step, noise_ref)


def direct_tfg(model, lp, rho_bar, mu_bar, gamma_bar, recur, iters, n_mc):
    noise_ref = [None]

    def step(x, i, t, a, ap, a_all, ap_all):
        rho = rho_bar * float(_schedule("increase", a_all, ap_all)[i])
        mu = mu_bar * float(_schedule("increase", a_all, ap_all)[i])
        std = gamma_bar * (1 - a) ** 0.5
        for r in range(recur):
            mc = noise_ref[0].randn("smoothing", (n_mc, *SHAPE)) * std

            def tilde(x0):
                return torch.logsumexp(torch.stack([lp(x0 + mc[:, j]) for j in range(n_mc)]), 0) - math.log(n_mc)

            delta_t, _ = _grad(lambda z: tilde(_x0(z, _eps(model, z, t), a)), x)
            delta_t = rho * delta_t
            with torch.no_grad():
                x0 = _x0(x, _eps(model, x, t), a)
            new_x0 = x0.clone()
            for _ in range(iters):
                g, _ = _grad(tilde, new_x0)
                new_x0 = new_x0 + mu * g
            eps_from_x0 = (x - a**0.5 * x0) / (1 - a) ** 0.5
            x_prev = _prev_from_eps(x, eps_from_x0, a, ap, noise_ref[0])
            x_prev = x_prev + delta_t / (a / ap) ** 0.5 + (new_x0 - x0) * ap**0.5
            if r < recur - 1:
                x = _renoise(x_prev, a, ap, noise_ref[0])
        return x_prev
    return _with_noise(model, step, noise_ref)


CASES = [
    ("dps", lambda: dps(0.01), lambda m, lp: direct_dps(m, lp, 0.01)),
    ("lgd", lambda: lgd(0.2, n_mc=3), lambda m, lp: direct_lgd(m, lp, 0.2, 3)),
    ("freedom", lambda: freedom(0.03, n_recur=2, schedule="increase"), lambda m, lp: direct_freedom(m, lp, 0.03, 2, "increase")),
    ("freedom-decrease", lambda: freedom(0.03, n_recur=1, schedule="decrease"), lambda m, lp: direct_freedom(m, lp, 0.03, 1, "decrease")),
    ("mpgd", lambda: mpgd(0.05), lambda m, lp: direct_mpgd(m, lp, 0.05)),
    ("ugd", lambda: ugd(0.02, n_recur=2, k=3), lambda m, lp: direct_ugd(m, lp, 0.02, 2, 3)),
    ("tfg", lambda: tfg(0.02, 0.02, 0.05, n_recur=2, n_iter=2, n_mc=2), lambda m, lp: direct_tfg(m, lp, 0.02, 0.02, 0.05, 2, 2, 2)),
]


@pytest.mark.parametrize("name,preset,direct", CASES, ids=[c[0] for c in CASES])
def test_preset_equals_direct_implementation(mixture_model, measurement_lp, name, preset, direct):
    engine = sample(mixture_model, measurement_lp, preset(), shape=SHAPE, steps=STEPS, eta=ETA, seeds=SEEDS)
    reference = direct(mixture_model, measurement_lp)
    assert torch.allclose(engine, reference.float(), rtol=1e-4, atol=1e-4), (engine - reference).abs().max()
    unguided = sample(mixture_model, None, tfg(0, 0, 0), shape=SHAPE, steps=STEPS, eta=ETA, seeds=SEEDS)
    assert not torch.allclose(engine, unguided, atol=1e-3), "the preset must actually guide"

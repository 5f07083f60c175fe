"""Analytic fixtures: a 2-D Gaussian mixture with its exact ε and exact posterior (milliseconds)."""

from __future__ import annotations

import pytest
import torch

from guidetune.evaluators.tasks import gmm_inverse_mixture
from guidetune.guidance import GaussianMixture, MixtureEpsilonModel, linear_beta_alphas_cumprod, measurement_log_prob


@pytest.fixture(scope="session")
def mixture() -> GaussianMixture:
    """The gmm-inverse task's prior: two anisotropic Gaussians in 2-D."""
    return gmm_inverse_mixture()


@pytest.fixture(scope="session")
def mixture_model(mixture) -> MixtureEpsilonModel:
    return MixtureEpsilonModel(mixture, linear_beta_alphas_cumprod())


@pytest.fixture(scope="session")
def measurement():
    """Observe the first coordinate: y = x[0] + N(0, 0.3²), y = 1.5 (favours the right-hand mode)."""
    A = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1.5], dtype=torch.float64)
    return A, y, 0.3


@pytest.fixture(scope="session")
def measurement_lp(measurement):
    A, y, s = measurement
    return measurement_log_prob(A, y, s)


@pytest.fixture(scope="session")
def posterior_samples(mixture, measurement) -> torch.Tensor:
    A, y, s = measurement
    return mixture.posterior(A, y, s).sample(4000, torch.Generator().manual_seed(123)).float()

"""Numerical checks of guidetune.evaluators.metrics against hand-computed values and known identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from guidetune.evaluators.metrics import (
    accuracy,
    fraction_within,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_inception_distance,
    mean_absolute_error,
    precision_recall,
    sliced_wasserstein,
)


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------


def test_fd_of_a_set_with_itself_is_zero() -> None:
    a = np.random.default_rng(0).standard_normal((200, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_fd_of_a_shifted_copy_is_squared_shift_norm() -> None:
    a = np.random.default_rng(1).standard_normal((150, 4))
    v = np.array([1.0, -2.0, 0.5, 3.0])
    assert frechet_distance(a, a + v) == pytest.approx(float(v @ v), rel=1e-9)


def test_fd_from_stats_matches_closed_form_for_diagonal_gaussians() -> None:
    # Per dim: (σ1 − σ2)² + (m1 − m2)²  ->  dim 0: (2−1)² + (0−2)² = 5, dim 1: (3−4)² + (1+1)² = 5.
    fd = frechet_distance_from_stats(
        np.array([0.0, 1.0]), np.diag([4.0, 9.0]), np.array([2.0, -1.0]), np.diag([1.0, 16.0])
    )
    assert fd == pytest.approx(10.0, rel=1e-12)


def test_fd_from_stats_matches_closed_form_in_one_dimension() -> None:
    fd = frechet_distance_from_stats(np.array([0.5]), np.array([[0.25]]), np.array([-1.0]), np.array([[4.0]]))
    assert fd == pytest.approx((0.5 - 2.0) ** 2 + 1.5**2, rel=1e-12)


def test_fd_is_symmetric() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((100, 5))
    b = rng.standard_normal((80, 5)) * 1.7 + 0.3
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fd_matches_scipy_sqrtm_formula_on_random_spd_covariances() -> None:
    rng = np.random.default_rng(3)
    for d in (1, 3, 8):
        m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
        c1, c2 = _random_spd(rng, d), _random_spd(rng, d)
        covmean = scipy.linalg.sqrtm(c1 @ c2).real
        expected = float((m1 - m2) @ (m1 - m2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))
        assert frechet_distance_from_stats(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-8)


def test_fd_equals_from_stats_with_cached_reference_and_accepts_torch() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((60, 3, 2))
    b = rng.standard_normal((70, 6)) + 0.5
    mean, cov = gaussian_stats(b)
    assert mean.shape == (6,) and cov.shape == (6, 6)
    np.testing.assert_allclose(cov, np.cov(b, rowvar=False))
    expected = frechet_distance_from_stats(*gaussian_stats(a.reshape(60, 6)), mean, cov)
    assert frechet_distance(torch.tensor(a, dtype=torch.float32), b) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros(5), np.zeros((5, 1)), "rank 1"),
        (np.zeros((5, 2)), np.zeros((5, 3)), "2 features per sample but feats_b has 3"),
        (np.zeros((1, 2)), np.zeros((5, 2)), "n >= 2 samples"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), np.zeros((5, 2)), "non-finite"),
        (np.zeros((5, 2)), np.array([[np.inf, 0.0], [1.0, 1.0]]), "non-finite"),
    ],
)
def test_fd_rejects_bad_feature_sets(a: np.ndarray, b: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


def test_fd_from_stats_rejects_bad_shapes() -> None:
    m, c = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="1-D mean"):
        frechet_distance_from_stats(np.zeros((2, 1)), c, m, c)
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance_from_stats(m, c, np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"\(2, 2\) covariance"):
        frechet_distance_from_stats(m, c, m, np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance_from_stats(m, np.full((2, 2), np.nan), m, c)


# ---------------------------------------------------------------------------------------------
# Kernel inception distance
# ---------------------------------------------------------------------------------------------


def test_kid_hand_computed_three_point_example() -> None:
    # k(x, y) = (x y + 1)^3 with d = 1 (γ = 1). X = {0, 1, 2}, Y = {0, 0, 1}.
    # XX off-diagonal: 2 (k01 + k02 + k12) = 2 (1 + 1 + 27) = 58, / 6 = 29/3.
    # YY off-diagonal: 2 (1 + 1 + 1) = 6, / 6 = 1.   XY: 3 + (1 + 1 + 8) + (1 + 1 + 27) = 42, 2·42/9 = 28/3.
    x, y = np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [0.0], [1.0]])
    assert kernel_inception_distance(x, y) == pytest.approx(29 / 3 + 1 - 28 / 3, rel=1e-12)


def test_kid_default_gamma_is_one_over_dim() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((10, 4)), rng.standard_normal((12, 4)) + 1.0
    kid = kernel_inception_distance(a, b)
    assert kid == pytest.approx(kernel_inception_distance(a, b, gamma=0.25), rel=1e-12)
    assert kid != pytest.approx(kernel_inception_distance(a, b, gamma=1.0), rel=1e-3)


def test_kid_near_zero_for_same_distribution_and_positive_for_shift() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((500, 8)), rng.standard_normal((500, 8))
    assert abs(kernel_inception_distance(a, b)) < 0.02
    assert kernel_inception_distance(a, b + 0.5) > 0.5


def test_kid_works_with_two_samples_per_set() -> None:
    # γ = 1/2, coef0 = 1, degree 3: k(a0, a1) = (0 + 1)^3 = 1, k(b0, b1) = (0.5 + 1)^3;
    # every a·b is 0 except a1·b1 = 1, so k(a1, b1) = 1.5^3 and the other three cross terms are 1.
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 1.0], [1.0, 1.0]])
    k_ab_mean = (1 + 1 + 1 + 1.5**3) / 4
    assert kernel_inception_distance(a, b) == pytest.approx(1 + 1.5**3 - 2 * k_ab_mean, rel=1e-12)


def test_kid_rejects_bad_inputs() -> None:
    a = np.zeros((4, 3))
    with pytest.raises(ValueError, match="n >= 2 samples"):
        kernel_inception_distance(np.zeros((1, 3)), a)
    with pytest.raises(ValueError, match="features per sample"):
        kernel_inception_distance(a, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="degree"):
        kernel_inception_distance(a, a, degree=0)
    with pytest.raises(ValueError, match="gamma"):
        kernel_inception_distance(a, a, gamma=-1.0)


# ---------------------------------------------------------------------------------------------
# Improved precision and recall
# ---------------------------------------------------------------------------------------------


def test_precision_recall_of_identical_sets_is_one() -> None:
    rng = np.random.default_rng(6)
    real = rng.standard_normal((100, 3))
    assert precision_recall(real, real[rng.permutation(100)]) == (1.0, 1.0)


def test_precision_recall_hand_checked_one_dimensional_k1() -> None:
    # Real {0, 1, 3}: 1-NN radii 1, 1, 2. Fakes 0.25, 0.75 fall inside; 7 and 7.5 do not -> precision 1/2.
    # Fake {0.25, 0.75, 7, 7.5}: 1-NN radii 0.5 each. Reals 0 and 1 are within 0.25; 3 is not -> recall 2/3.
    real = np.array([[0.0], [1.0], [3.0]])
    fake = np.array([[0.25], [0.75], [7.0], [7.5]])
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(0.5)
    assert recall == pytest.approx(2 / 3)


def test_recall_drops_when_fakes_collapse_onto_one_mode() -> None:
    rng = np.random.default_rng(7)
    real = np.concatenate([rng.normal(-5.0, 1.0, (200, 2)), rng.normal(5.0, 1.0, (200, 2))])
    fake = rng.normal(5.0, 1.0, (200, 2))
    precision, recall = precision_recall(real, fake, k=3)
    assert precision >= 0.9
    assert recall <= 0.6


def test_precision_recall_rejects_bad_inputs() -> None:
    a = np.zeros((5, 2))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        precision_recall(a, a, k=0)
    with pytest.raises(ValueError, match="n >= 4 samples"):
        precision_recall(np.zeros((3, 2)), a, k=3)
    with pytest.raises(ValueError, match="features per sample"):
        precision_recall(a, np.zeros((5, 3)))


# ---------------------------------------------------------------------------------------------
# Sliced Wasserstein
# ---------------------------------------------------------------------------------------------


def test_sliced_wasserstein_of_one_dimensional_shift_is_the_shift() -> None:
    x = np.random.default_rng(8).standard_normal((300, 1))
    assert sliced_wasserstein(x, x + 1.5) == pytest.approx(1.5, rel=1e-9)
    assert sliced_wasserstein(x, x - 0.25) == pytest.approx(0.25, rel=1e-9)


def test_sliced_wasserstein_zero_for_identical_sets_and_order_invariant() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((120, 5)), rng.standard_normal((90, 5)) + 0.3
    assert sliced_wasserstein(a, a) == pytest.approx(0.0, abs=1e-12)
    assert sliced_wasserstein(a, np.concatenate([a, a])) == pytest.approx(0.0, abs=1e-12)
    shuffled = sliced_wasserstein(a[rng.permutation(120)], b[rng.permutation(90)])
    assert shuffled == pytest.approx(sliced_wasserstein(a, b), rel=1e-12)
    assert sliced_wasserstein(a, b) > 0.1


def test_sliced_wasserstein_unequal_sizes_exact_quantile_integral() -> None:
    # Quantile functions of {0, 1} and {0, 1, 2} differ by 1 on [1/3, 1/2) and [2/3, 1): W2² = 1/6 + 1/3.
    sw = sliced_wasserstein([[0.0], [1.0]], [[0.0], [1.0], [2.0]])
    assert sw == pytest.approx(math.sqrt(0.5), rel=1e-12)


def test_sliced_wasserstein_is_deterministic_in_seed() -> None:
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((50, 4)) * 2.0
    assert sliced_wasserstein(a, b, seed=3) == sliced_wasserstein(torch.tensor(a), b, seed=3)
    assert sliced_wasserstein(a, b, seed=3) != sliced_wasserstein(a, b, seed=4)


def test_sliced_wasserstein_rejects_bad_inputs() -> None:
    a = np.zeros((5, 2))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(a, a, n_projections=0)
    with pytest.raises(ValueError, match="features per sample"):
        sliced_wasserstein(a, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="n >= 1 samples"):
        sliced_wasserstein(np.zeros((0, 2)), a)
    with pytest.raises(ValueError, match="rank 1"):
        sliced_wasserstein(np.zeros(5), a)
    with pytest.raises(ValueError, match="zero features"):
        sliced_wasserstein(np.zeros((5, 0)), a)


# ---------------------------------------------------------------------------------------------
# Task metrics
# ---------------------------------------------------------------------------------------------


def test_accuracy_from_logits_and_from_labels() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, -1.0, -2.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 0])) == pytest.approx(0.75)
    assert accuracy(torch.tensor([1, 1, 2]), 1) == pytest.approx(2 / 3)
    assert accuracy(np.array([3, 0]), np.array([3, 0])) == 1.0


def test_mae_and_fraction_within_hand_examples() -> None:
    pred, target = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.5, 2.0, 1.0])
    assert mean_absolute_error(pred, target) == pytest.approx(3.5 / 3)
    assert fraction_within(pred, target, 0.5) == pytest.approx(2 / 3)
    assert fraction_within(pred, target, 0.49) == pytest.approx(1 / 3)
    assert mean_absolute_error(np.array([[1.0, -1.0], [3.0, 0.0]]), 1.0) == pytest.approx(5 / 4)


def test_task_metrics_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"\(B, C\) logits"):
        accuracy(np.zeros((2, 3, 4)), 0)
    with pytest.raises(ValueError, match="target must be an int or 2 ints"):
        accuracy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="integer class labels"):
        accuracy(np.array([0.5, 1.0]), 1)
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.zeros(0), 0)
    with pytest.raises(ValueError, match="does not broadcast"):
        mean_absolute_error(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        mean_absolute_error(np.zeros(0), 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        mean_absolute_error(np.array([np.nan]), 0.0)
    with pytest.raises(ValueError, match="tol"):
        fraction_within(np.zeros(3), 0.0, -0.1)

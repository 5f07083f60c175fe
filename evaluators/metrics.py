"""Sample-quality and task metrics over torch tensors or numpy arrays, computed in float64.

Feature metrics (Fréchet distance, KID, k-NN precision/recall, sliced Wasserstein) take sets of
shape ``(n, d)``; inputs with more dims are flattened per sample, ``(n, ...) -> (n, prod(...))``.
Every function validates its inputs and raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import hashlib

from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import cdist

ArrayLike = Any  # a torch.Tensor, a numpy array, or anything np.asarray accepts


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array (float64 for floating inputs), detached from autograd."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.to(torch.float64)
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a tensor or array, got {type(x).__name__}") from exc


def _as_float(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a finite float64 array."""
    arr = _to_numpy(x, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def _as_features(x: ArrayLike, name: str, min_samples: int) -> np.ndarray:
    """Return ``x`` as a finite float64 ``(n, d)`` feature matrix with ``n >= min_samples``."""
    arr = _as_float(x, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (n, d) or (n, ...), got rank {arr.ndim} shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} needs n >= {min_samples} samples, got n = {arr.shape[0]}")
    n_features = int(np.prod(arr.shape[1:]))
    if n_features == 0:
        raise ValueError(f"{name} has zero features per sample (shape {arr.shape})")
    return arr.reshape(arr.shape[0], n_features)


def _check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise if two feature matrices have different feature dimensions."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} has {a.shape[1]} features per sample but {name_b} has {b.shape[1]}")


def _check_positive_int(value: Any, name: str) -> None:
    """Raise unless ``value`` is a positive integer (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigh, negative eigenvalues clipped."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------


def gaussian_stats(feats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of a feature set, the Gaussian fit of FID (Heusel et al. 2017)."""
    x = _as_features(feats, "feats", min_samples=2)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_stats(m1: ArrayLike, c1: ArrayLike, m2: ArrayLike, c2: ArrayLike) -> float:
    """Fréchet distance ‖m1−m2‖² + Tr(C1 + C2 − 2(C1 C2)^{1/2}) between two Gaussians (Heusel et al. 2017).

    Tr((C1 C2)^{1/2}) is taken as Tr((C1^{1/2} C2 C1^{1/2})^{1/2}), whose argument is symmetric PSD.
    """
    mu1, mu2 = _as_float(m1, "m1"), _as_float(m2, "m2")
    cov1, cov2 = _as_float(c1, "c1"), _as_float(c2, "c2")
    for name, mu in (("m1", mu1), ("m2", mu2)):
        if mu.ndim != 1:
            raise ValueError(f"{name} must be a 1-D mean vector, got shape {mu.shape}")
    if mu1.shape != mu2.shape:
        raise ValueError(f"m1 and m2 have different dimensions: {mu1.shape[0]} vs {mu2.shape[0]}")
    d = mu1.shape[0]
    for name, cov in (("c1", cov1), ("c2", cov2)):
        if cov.shape != (d, d):
            raise ValueError(f"{name} must be a ({d}, {d}) covariance matching the means, got {cov.shape}")
    s1 = _sqrt_psd(cov1)
    inner = s1 @ cov2 @ s1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)
    return max(fd, 0.0)


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017)."""
    a = _as_features(feats_a, "feats_a", min_samples=2)
    b = _as_features(feats_b, "feats_b", min_samples=2)
    _check_same_dim(a, b, "feats_a", "feats_b")
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))


# ---------------------------------------------------------------------------------------------
# Kernel inception distance
# ---------------------------------------------------------------------------------------------


def kernel_inception_distance(
    feats_a: ArrayLike,
    feats_b: ArrayLike,
    *,
    degree: int = 3,
    coef0: float = 1.0,
    gamma: float | None = None,
) -> float:
    """Unbiased MMD² with kernel (γ x·y + coef0)^degree, γ = 1/d by default (Bińkowski et al. 2018)."""
    a = _as_features(feats_a, "feats_a", min_samples=2)
    b = _as_features(feats_b, "feats_b", min_samples=2)
    _check_same_dim(a, b, "feats_a", "feats_b")
    _check_positive_int(degree, "degree")
    if not np.isfinite(coef0):
        raise ValueError(f"coef0 must be finite, got {coef0!r}")
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)
    if not (np.isfinite(g) and g > 0):
        raise ValueError(f"gamma must be a positive finite number, got {gamma!r}")
    k_ab = (g * (a @ b.T) + coef0) ** degree
    return float(_mean_offdiagonal_kernel(a, g, coef0, degree) + _reference_term(b, g, coef0, degree)
                 - 2.0 * k_ab.mean())


def _mean_offdiagonal_kernel(x: np.ndarray, g: float, coef0: float, degree: int) -> float:
    k = (g * (x @ x.T) + coef0) ** degree
    n = x.shape[0]
    return float((k.sum() - np.trace(k)) / (n * (n - 1)))


_REFERENCE_TERMS: dict[tuple, float] = {}


def _reference_term(b: np.ndarray, g: float, coef0: float, degree: int) -> float:
    """The reference set's own kernel term: the same for every trial of a study, so computed once
    per (content, kernel) — it is O(n²) in the often large reference set."""
    key = (hashlib.sha1(np.ascontiguousarray(b).tobytes()).hexdigest(), b.shape, g, coef0, degree)
    if key not in _REFERENCE_TERMS:
        if len(_REFERENCE_TERMS) > 64:
            _REFERENCE_TERMS.clear()
        _REFERENCE_TERMS[key] = _mean_offdiagonal_kernel(b, g, coef0, degree)
    return _REFERENCE_TERMS[key]


# ---------------------------------------------------------------------------------------------
# Improved precision and recall
# ---------------------------------------------------------------------------------------------


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each sample to its k-th nearest other sample in the same set."""
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def _coverage(manifold: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Fraction of queries inside any k-NN ball of the manifold set (Kynkäänniemi et al. 2019, Eq. 1)."""
    radii = _knn_radii(manifold, k)
    inside = cdist(queries, manifold) <= radii[None, :]
    return float(inside.any(axis=1).mean())


def precision_recall(real_feats: ArrayLike, fake_feats: ArrayLike, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds (Kynkäänniemi et al. 2019, Eqs. 1-2)."""
    _check_positive_int(k, "k")
    real = _as_features(real_feats, "real_feats", min_samples=k + 1)
    fake = _as_features(fake_feats, "fake_feats", min_samples=k + 1)
    _check_same_dim(real, fake, "real_feats", "fake_feats")
    return _coverage(real, fake, k), _coverage(fake, real, k)


# ---------------------------------------------------------------------------------------------
# Sliced Wasserstein
# ---------------------------------------------------------------------------------------------


def _w2_squared_sorted(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Exact squared 2-Wasserstein distance per column between 1-D empirical laws given sorted columns.

    W2² = ∫₀¹ (F_a⁻¹(t) − F_b⁻¹(t))² dt; both quantile functions are step functions, constant between
    the merged breakpoints {i/n_a} ∪ {j/n_b}, so the integral is a finite weighted sum.
    """
    na, nb = sa.shape[0], sb.shape[0]
    breaks = np.unique(np.concatenate([np.arange(na + 1) / na, np.arange(nb + 1) / nb]))
    widths = np.diff(breaks)
    mids = (breaks[:-1] + breaks[1:]) / 2
    ia = np.minimum((mids * na).astype(np.int64), na - 1)
    ib = np.minimum((mids * nb).astype(np.int64), nb - 1)
    return widths @ (sa[ia] - sb[ib]) ** 2


def sliced_wasserstein(a: ArrayLike, b: ArrayLike, *, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance (E_θ W2²(θ·a, θ·b))^{1/2} over unit directions θ (Bonneel et al. 2015)."""
    _check_positive_int(n_projections, "n_projections")
    x = _as_features(a, "a", min_samples=1)
    y = _as_features(b, "b", min_samples=1)
    _check_same_dim(x, y, "a", "b")
    dirs = np.random.default_rng(seed).standard_normal((n_projections, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    px = np.sort(x @ dirs.T, axis=0)
    py = np.sort(y @ dirs.T, axis=0)
    return float(np.sqrt(_w2_squared_sorted(px, py).mean()))


# ---------------------------------------------------------------------------------------------
# Task metrics
# ---------------------------------------------------------------------------------------------


def _as_labels(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as an int64 array, requiring integer values."""
    arr = _as_float(x, name)
    if not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must hold integer class labels")
    return arr.astype(np.int64)


def accuracy(logits_or_labels: ArrayLike, target: ArrayLike) -> float:
    """Fraction of predictions equal to the target class; ``(B, C)`` logits are reduced by argmax.

    A 1-D input is read as ``B`` predicted labels; ``target`` is one int for all samples or ``B`` ints.
    """
    pred = _as_float(logits_or_labels, "logits_or_labels")
    if pred.ndim == 2:
        if pred.shape[1] == 0:
            raise ValueError("logits_or_labels has zero classes (shape (B, 0))")
        labels = pred.argmax(axis=1)
    elif pred.ndim == 1:
        labels = _as_labels(pred, "logits_or_labels")
    else:
        raise ValueError(f"logits_or_labels must be (B,) labels or (B, C) logits, got shape {pred.shape}")
    if labels.shape[0] == 0:
        raise ValueError("logits_or_labels is empty")
    tgt = _as_labels(target, "target")
    if tgt.ndim > 1 or (tgt.ndim == 1 and tgt.shape[0] != labels.shape[0]):
        raise ValueError(f"target must be an int or {labels.shape[0]} ints, got shape {tgt.shape}")
    return float(np.mean(labels == tgt))


def _abs_errors(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Absolute errors |pred − target| with ``target`` broadcast to ``pred``'s shape."""
    p = _as_float(pred, "pred")
    t = _as_float(target, "target")
    if p.size == 0:
        raise ValueError("pred is empty")
    try:
        t = np.broadcast_to(t, p.shape)
    except ValueError as exc:
        raise ValueError(f"target of shape {t.shape} does not broadcast to pred's shape {p.shape}") from exc
    return np.abs(p - t)


def mean_absolute_error(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean of |pred − target| over all elements, ``target`` broadcast to ``pred``."""
    return float(_abs_errors(pred, target).mean())


def fraction_within(pred: ArrayLike, target: ArrayLike, tol: float) -> float:
    """Fraction of elements with |pred − target| ≤ tol, ``target`` broadcast to ``pred``."""
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    return float(np.mean(_abs_errors(pred, target) <= tol))

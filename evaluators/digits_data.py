"""The real 8×8 digits of scikit-learn (``load_digits``) split for the bundled digits tasks.

Model space is ``x = pixels / 8 − 1`` with shape (1, 8, 8), float32, in [−1, 1]; pixel space is
scikit-learn's 0..16 intensities. The split is fixed: one permutation from ``default_rng(0)``,
interleaved by class so every split holds each digit in proportion, then cut into

* ``train``   (900): trains the diffusion model, the guide classifier and the stroke-mass regressor;
* ``judge``   (597): trains only the independent judge classifier (the guide never sees it);
* ``heldout`` (300): never trained on; the fidelity reference set and where accuracies are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits

SPLIT_SEED = 0
SPLIT_SIZES = {"train": 900, "judge": 597, "heldout": 300}
PIXEL_MAX = 16.0


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, 1, 8, 8) in model space and integer labels ``y`` (N,); ``index`` maps each
    row back to its position in ``load_digits()``."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DigitSplits:
    """The three disjoint splits of the 1,797 digits."""

    train: Split
    judge: Split
    heldout: Split


def to_model_space(pixels: torch.Tensor | np.ndarray) -> torch.Tensor:
    """0..16 pixel intensities to float32 model space ``pixels / 8 − 1`` in [−1, 1]."""
    return torch.as_tensor(pixels, dtype=torch.float32) / (PIXEL_MAX / 2) - 1.0


def to_pixel_space(x: torch.Tensor) -> torch.Tensor:
    """Model space back to 0..16 intensities, ``(x + 1) · 8`` clamped to [0, 16]."""
    return ((x + 1.0) * (PIXEL_MAX / 2)).clamp(0.0, PIXEL_MAX)


def stroke_mass(x: torch.Tensor) -> torch.Tensor:
    """Mean ink per sample: ``(x + 1) / 2`` averaged over all pixels, shape (B,), in [0, 1] for
    in-range images (differentiable, no clamping)."""
    return ((x + 1.0) / 2.0).flatten(1).mean(dim=1)


def split_indices() -> dict[str, np.ndarray]:
    """Row indices into ``load_digits()`` for each split (deterministic, class-stratified)."""
    labels = load_digits().target
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    permuted_labels = labels[order]
    # Rank of each permuted image within its class, scaled to [0, 1): sorting by it interleaves
    # the classes evenly, so every contiguous chunk of the result is close to class-balanced.
    rank_in_class = np.empty(len(order), dtype=np.float64)
    for digit in np.unique(labels):
        members = np.flatnonzero(permuted_labels == digit)
        rank_in_class[members] = (np.arange(len(members)) + 0.5) / len(members)
    interleaved = order[np.argsort(rank_in_class, kind="stable")]
    bounds = np.cumsum([0, *SPLIT_SIZES.values()])
    assert bounds[-1] == len(labels)
    return {name: interleaved[lo:hi] for name, lo, hi in zip(SPLIT_SIZES, bounds[:-1], bounds[1:])}


def load_digit_splits() -> DigitSplits:
    """The ``train`` / ``judge`` / ``heldout`` splits as model-space tensors."""
    digits = load_digits()
    images = to_model_space(digits.images.astype(np.float32)).unsqueeze(1)
    labels = torch.as_tensor(digits.target, dtype=torch.long)
    splits = {}
    for name, rows in split_indices().items():
        index = torch.as_tensor(rows, dtype=torch.long)
        splits[name] = Split(x=images[index].contiguous(), y=labels[index].contiguous(), index=index)
    return DigitSplits(**splits)

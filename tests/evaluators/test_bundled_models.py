"""The bundled digits models: integrity of the shipped weights, the splits, and measured quality.

Thresholds are the numbers measured after training (see ``evaluators/weights/TRAINING.json``) with
a margin: guide accuracy 0.997, judge 0.990, stroke-mass MAE 0.0016, held-out ε-MSE 0.401 / 0.109 /
0.022 / 0.0011 / 0.00016 at t = 50 / 250 / 500 / 750 / 950 (an untrained model: 1.01).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from guidetune.evaluators.bundled import (
    WEIGHTS_DIR,
    BundledWeightsError,
    load_bundled_models,
    read_checksums,
    verified_path,
)
from guidetune.evaluators.digits_data import (
    SPLIT_SIZES,
    load_digit_splits,
    stroke_mass,
    to_model_space,
    to_pixel_space,
)
from guidetune.evaluators.digits_networks import DiffusionModel, JudgeClassifier
from guidetune.evaluators.train_digits import classifier_accuracy, epsilon_mse, regressor_mae
from guidetune.guidance import TFGParams, sample

MODEL_FILES = ("diffusion.pt", "guide.pt", "judge.pt", "stroke_mass.pt")
EPS_MSE_CEILINGS = {50: 0.45, 250: 0.13, 500: 0.03, 750: 0.002, 950: 0.0005}


@pytest.fixture(scope="module")
def splits():
    return load_digit_splits()


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return load_bundled_models()


# ---- weights integrity -------------------------------------------------------------------------
def test_shipped_weights_match_their_checksums():
    expected = read_checksums(WEIGHTS_DIR)
    assert sorted(expected) == sorted(MODEL_FILES)
    for name in MODEL_FILES:
        path = verified_path(WEIGHTS_DIR, name, expected)
        assert path.stat().st_size < 10 * 2**20


def _copy_weights(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, folder)
    return folder


def test_tampered_weights_file_raises_a_clear_error(tmp_path):
    folder = _copy_weights(tmp_path)
    data = bytearray((folder / "guide.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "guide.pt").write_bytes(bytes(data))
    with pytest.raises(BundledWeightsError, match=r"guide\.pt.*python -m guidetune\.evaluators\.train_digits"):
        load_bundled_models(weights_dir=folder)


def test_missing_weights_file_raises_a_clear_error(tmp_path):
    folder = _copy_weights(tmp_path)
    (folder / "judge.pt").unlink()
    with pytest.raises(BundledWeightsError, match=r"judge\.pt is missing.*train_digits --only judge"):
        load_bundled_models(weights_dir=folder)


def test_models_are_frozen_and_cached(models):
    assert load_bundled_models() is models
    for module in (models.diffusion, models.guide, models.judge, models.stroke_mass):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
        assert all(p.dtype == torch.float32 for p in module.parameters())


# ---- data --------------------------------------------------------------------------------------
def test_splits_are_disjoint_with_documented_sizes(splits):
    indices = {name: set(getattr(splits, name).index.tolist()) for name in SPLIT_SIZES}
    for name, size in SPLIT_SIZES.items():
        split = getattr(splits, name)
        assert len(indices[name]) == len(split) == size
        assert split.x.shape == (size, 1, 8, 8) and split.x.dtype == torch.float32
        assert split.x.min() >= -1 and split.x.max() <= 1
        assert set(split.y.tolist()) == set(range(10))
    assert not indices["train"] & indices["judge"]
    assert not indices["train"] & indices["heldout"]
    assert not indices["judge"] & indices["heldout"]
    assert len(set.union(*indices.values())) == 1797


def test_splits_are_deterministic(splits):
    again = load_digit_splits()
    assert torch.equal(again.train.index, splits.train.index)
    assert torch.equal(again.heldout.x, splits.heldout.x)


def test_pixel_space_round_trip():
    pixels = torch.as_tensor(np.random.default_rng(0).integers(0, 17, size=(5, 1, 8, 8)), dtype=torch.float32)
    assert torch.equal(to_pixel_space(to_model_space(pixels)), pixels)
    assert to_model_space(pixels).min() >= -1 and to_model_space(pixels).max() <= 1


def test_stroke_mass_is_mean_ink():
    blank, full = -torch.ones(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    half = torch.cat([blank[..., :4], full[..., 4:]], dim=-1)
    assert stroke_mass(torch.cat([blank, full, half])).tolist() == [0.0, 1.0, 0.5]


# ---- measured quality --------------------------------------------------------------------------
def test_guide_heldout_accuracy(models, splits):
    assert classifier_accuracy(models.guide, splits.heldout.x, splits.heldout.y) >= 0.98


def test_judge_heldout_accuracy(models, splits):
    assert classifier_accuracy(models.judge, splits.heldout.x, splits.heldout.y) >= 0.97


def test_judge_features_shape(models, splits):
    features = models.judge.features(splits.heldout.x[:7])
    assert features.shape == (7, JudgeClassifier.feature_dim) == (7, 128)
    assert torch.isfinite(features).all()


def test_stroke_mass_regressor_heldout_mae(models, splits):
    assert regressor_mae(models.stroke_mass, splits.heldout.x) < 0.003


def test_untrained_diffusion_model_has_eps_mse_about_one(splits):
    torch.manual_seed(0)
    untrained = DiffusionModel().eval()
    assert epsilon_mse(untrained, splits.heldout.x, 500) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("t", sorted(EPS_MSE_CEILINGS))
def test_diffusion_eps_mse_on_heldout(models, splits, t):
    assert epsilon_mse(models.diffusion, splits.heldout.x, t) < EPS_MSE_CEILINGS[t]


def test_unguided_samples_look_like_digits_to_the_judge(models):
    x = sample(models.diffusion, None, TFGParams(), shape=(1, 8, 8), steps=50, eta=1.0, seeds=list(range(64)))
    probs = models.judge(x.clamp(-1, 1)).softmax(dim=1)
    assert probs.max(dim=1).values.mean() > 0.85           # measured 0.926
    assert len(probs.argmax(dim=1).unique()) == 10          # every digit appears among 64 samples

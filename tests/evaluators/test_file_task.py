"""User tasks from files (``load_file_task``) and the optional diffusers adapter."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from torch import nn

from guidetune.evaluators.bundled import load_bundled_models
from guidetune.evaluators.digits_data import load_digit_splits
from guidetune.evaluators.digits_networks import linear_alphas_cumprod
from guidetune.evaluators.errors import TaskFileError, UnknownTargetError
from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.file_task import FileTask, FileTaskSpec, load_file_task
from guidetune.guidance import EpsilonFromV, EpsilonFromX0, TFGParams, sample

SHAPE = (1, 8, 8)


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` but the spec the tests (re)write."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != "task.json"}


# ---------------------------------------------------------------------------------------------
# tiny synthetic TorchScript modules


class TinyEps(nn.Module):
    """ε = 0.1·x, with ᾱ as a buffer (or not)."""

    def __init__(self, alphas: torch.Tensor | None = None):
        super().__init__()
        if alphas is not None:
            self.register_buffer("alphas_cumprod", alphas)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.1 * x


class WrongShapeEps(TinyEps):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class IntEps(TinyEps):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x * 10).long()


class NanEps(TinyEps):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class LinearLogits(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class VectorLogits(LinearLogits):  # (B,) where a logits predictor must give (B, C)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))[:, 0]


class DetachedLogits(LinearLogits):  # not differentiable w.r.t. x
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.detach().flatten(1))


class ArgmaxLogits(LinearLogits):  # differentiable-looking output, zero gradient
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.fc(x.flatten(1)).argmax(1), 10).float() + 0.0 * x.flatten(1).sum(1, keepdim=True)


class MeanInk(nn.Module):
    """Scalar predictor: mean of (x + 1)/2, shape (B,)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).flatten(1).mean(1)


class WideScalar(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3]


class KeyedLogLikelihood(nn.Module):
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        flat = x.flatten(1)
        return {"dark": -((flat + 1) ** 2).mean(1), "bright": -((flat - 1) ** 2).mean(1)}


def _save(module: nn.Module, path: Path) -> str:
    torch.jit.script(module).save(str(path))
    return path.name


def _tiny_spec(folder: Path, **overrides) -> dict:
    """A valid spec of tiny synthetic files in ``folder``, with overrides."""
    if not (folder / "eps.pt").exists():
        _save(TinyEps(linear_alphas_cumprod()), folder / "eps.pt")
        _save(LinearLogits(), folder / "logits.pt")
    spec = {"model": "eps.pt", "shape": list(SHAPE), "steps": 5, "clip_x0": 1.0,
            "predictor": {"path": "logits.pt", "kind": "logits"}, "targets": ["0", "1"]}
    spec.update(overrides)
    return spec


def _load(folder: Path, **overrides) -> FileTask:
    path = folder / "task.json"
    path.write_text(json.dumps(_tiny_spec(folder, **overrides)))
    return load_file_task(path)


# ---------------------------------------------------------------------------------------------
# the bundled digits models as user files


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits_task")
    models = load_bundled_models()
    x, t = torch.randn(4, *SHAPE), torch.tensor([0, 300, 600, 999])
    torch.jit.trace(models.diffusion, (x, t), check_trace=False).save(str(folder / "model.pt"))
    torch.jit.trace(models.guide, x).save(str(folder / "guide.pt"))
    torch.jit.trace_module(models.judge, {"forward": x, "features": x}).save(str(folder / "judge.pt"))
    np.savez(folder / "reference.npz", x=load_digit_splits().heldout.x.numpy())
    spec = {
        "name": "my-digits", "model": "model.pt", "shape": list(SHAPE), "clip_x0": 1.0, "steps": 25,
        "predictor": {"path": "guide.pt", "kind": "logits"}, "judge": {"path": "judge.pt", "kind": "logits"},
        "reference": "reference.npz", "targets": [str(d) for d in range(10)],
    }
    (folder / "task.json").write_text(json.dumps(spec, indent=2))
    return folder


def test_a_valid_spec_loads_evaluates_and_guidance_beats_unguided(digits_dir):
    before = _digests(digits_dir)
    task = load_file_task(digits_dir / "task.json")
    assert _digests(digits_dir) == before  # loading changes no file
    assert (task.name, task.shape, task.steps, task.clip_x0) == ("my-digits", SHAPE, 25, 1.0)
    assert task.validity_metric == "judge_accuracy" and not task.judge_is_guide
    assert torch.equal(task.model.alphas_cumprod, linear_alphas_cumprod())

    unguided, guided = evaluate(task, "3", [TFGParams(rho=0.0, mu=0.0, n_iter=2),
                                            TFGParams(rho=1.0, mu=1.0, n_iter=2)], 16, 0)
    for result in (unguided, guided):
        assert result.ok and result.n_samples == 16
        for key in ("validity", "guide_validity", "fidelity_fd", "kid", "precision", "recall"):
            assert math.isfinite(getattr(result, key)), key
    # the independent judge sees the target class far more often with guidance
    assert guided.validity >= unguided.validity + 0.4, (guided.validity, unguided.validity)
    assert task.reference_features("3").shape == (300, 128)  # judge.features, not its logits


def test_spec_as_dict_or_dataclass_and_target_checks(digits_dir):
    data = json.loads((digits_dir / "task.json").read_text())
    spec = FileTaskSpec.from_dict(data, base_dir=digits_dir)
    task = load_file_task(spec)
    assert load_file_task({**data, **{k: str(digits_dir / v) for k, v in [("model", "model.pt"), ("reference", "reference.npz")]},
                           "predictor": {"path": str(digits_dir / "guide.pt"), "kind": "logits"},
                           "judge": None}).judge_is_guide
    assert task.check_target("7") == "7"
    with pytest.raises(UnknownTargetError, match="class index 0–9"):
        task.check_target("12")
    log_prob = task.guide_log_prob("3", [0, 1])
    x = torch.zeros(2, *SHAPE, requires_grad=True)
    (grad,) = torch.autograd.grad(log_prob(x).sum(), x)
    assert torch.isfinite(grad).all() and (grad != 0).any()


def test_predictor_as_judge_without_reference(tmp_path):
    task = _load(tmp_path)
    assert task.judge_is_guide and "optimistic" in task.description
    assert task.features(torch.zeros(3, *SHAPE)).shape == (3, 10)  # the logits, no features method
    assert task.reference_features("0").shape == (0, 10)
    assert task.fidelity_yardstick("0", 4, 0) == (pytest.approx(math.nan, nan_ok=True), 0)
    score = task.score(torch.zeros(4, *SHAPE), "0", range(4))
    assert score.validity == score.guide_validity


def test_without_reference_evaluate_reports_nan_fidelity(tmp_path):
    (result,) = evaluate(_load(tmp_path), "1", [TFGParams(mu=0.5)], 4, 0)
    assert math.isfinite(result.validity) and math.isnan(result.fidelity_fd) and math.isnan(result.kid)


def test_x0_and_v_models_alphas_files_and_other_predictor_kinds(tmp_path):
    abar = linear_alphas_cumprod()
    np.save(tmp_path / "abar.npy", abar.numpy())
    torch.save(abar, tmp_path / "abar.pt")
    _save(TinyEps(), tmp_path / "bare.pt")  # no alphas_cumprod attribute
    _save(MeanInk(), tmp_path / "ink.pt")
    _save(KeyedLogLikelihood(), tmp_path / "ll.pt")
    x, t = torch.randn(2, *SHAPE), torch.tensor([10, 500])

    task = _load(tmp_path, model="bare.pt", alphas_cumprod="abar.npy", prediction="x0")
    assert isinstance(task.model, EpsilonFromX0) and torch.allclose(task.model.alphas_cumprod, abar)
    a = abar[t].view(-1, 1, 1, 1)
    assert torch.allclose(task.model(x, t), (x - a.sqrt() * 0.1 * x) / (1 - a).sqrt())
    task = _load(tmp_path, model="bare.pt", alphas_cumprod="abar.pt", prediction="v")
    assert isinstance(task.model, EpsilonFromV)
    assert torch.allclose(task.model(x, t), a.sqrt() * 0.1 * x + (1 - a).sqrt() * x)

    np.savez(tmp_path / "ref.npz", x=np.random.default_rng(0).uniform(-1, 1, (8, *SHAPE)).astype(np.float32))
    scalar = _load(tmp_path, predictor={"path": "ink.pt", "kind": "scalar", "tolerance": 0.1}, targets=["0.5", "0.2"],
                   reference="ref.npz")
    assert scalar.validity_metric == "judge_within_tolerance"
    x0 = torch.full((2, *SHAPE), -0.5)  # mean ink 0.25
    assert torch.allclose(scalar.guide_log_prob("0.2", [0, 1])(x0), torch.full((2,), -(0.05**2) / (2 * 0.1**2)))
    assert scalar.score(x0, "0.2", [0, 1]).validity == 1.0 and scalar.score(x0, "0.5", [0, 1]).validity == 0.0
    assert scalar.check_target("0.33") == "0.33"  # any number is a scalar target

    ll = _load(tmp_path, predictor={"path": "ll.pt", "kind": "log_likelihood"}, targets=["dark", "bright"])
    assert ll.validity_metric == "judge_mean_log_likelihood"
    dark = torch.full((2, *SHAPE), -1.0)
    assert ll.score(dark, "dark", [0, 1]).validity == 0.0 and ll.score(dark, "bright", [0, 1]).validity == -4.0
    with pytest.raises(UnknownTargetError, match="keys"):
        ll.check_target("grey")
    with pytest.raises(TaskFileError, match="keys"):
        _load(tmp_path, predictor={"path": "ll.pt", "kind": "log_likelihood"}, targets=["grey"])
    # a scalar run through the sampler
    (result,) = evaluate(scalar, "0.2", [TFGParams(mu=0.5, n_iter=2)], 4, 0)
    assert math.isfinite(result.validity) and math.isfinite(result.fidelity_fd) and "judge_mae" in result.extras
    assert scalar.reference_features("0.2").shape == (8, 1)  # the scalar judge's outputs


# ---------------------------------------------------------------------------------------------
# every failed check names the file and the check


def _error(folder: Path, **overrides) -> str:
    with pytest.raises(TaskFileError) as info:
        _load(folder, **overrides)
    return str(info.value)


def test_missing_and_corrupt_files_are_rejected_and_left_untouched(tmp_path, digits_dir):
    assert "not found" in _error(tmp_path, model="nowhere.pt") and "nowhere.pt" in _error(tmp_path, model="nowhere.pt")
    rng = np.random.default_rng(0)
    (tmp_path / "random.pt").write_bytes(rng.bytes(4096))
    (tmp_path / "truncated.pt").write_bytes((digits_dir / "model.pt").read_bytes()[:5000])
    torch.save(LinearLogits().state_dict(), tmp_path / "state_dict.pt")
    before = _digests(tmp_path)
    message = _error(tmp_path, model="random.pt")
    assert "random.pt" in message and "not a TorchScript file" in message and "torch.jit.script" in message
    message = _error(tmp_path, model="truncated.pt")
    assert "truncated.pt" in message and "not a TorchScript file" in message
    message = _error(tmp_path, predictor={"path": "state_dict.pt", "kind": "logits"})
    assert "state_dict.pt" in message and "torch.save checkpoint" in message
    assert "judge file" in _error(tmp_path, judge={"path": "random.pt", "kind": "logits"})
    assert _digests(tmp_path) == before  # byte-identical after the failed loads


@pytest.mark.parametrize(("module", "words"), [
    (WrongShapeEps(linear_alphas_cumprod()), ["output shape (4, 64)", "input shape (4, 1, 8, 8)"]),
    (IntEps(linear_alphas_cumprod()), ["not a floating dtype", "torch.int64"]),
    (NanEps(linear_alphas_cumprod()), ["non-finite"]),
    (TinyEps(), ["no attribute `alphas_cumprod`"]),
    (TinyEps(linear_alphas_cumprod().flip(0)), ["alphas_cumprod", "non-increasing"]),
    (TinyEps(linear_alphas_cumprod().view(10, 100)), ["alphas_cumprod", "1-D"]),
    (TinyEps(linear_alphas_cumprod() * 2), ["alphas_cumprod", "(0, 1]"]),
])
def test_bad_models_are_rejected(tmp_path, module, words):
    _save(module, tmp_path / "bad.pt")
    message = _error(tmp_path, model="bad.pt")
    assert "model file" in message and "bad.pt" in message
    for word in words:
        assert word in message


def test_bad_alphas_files_are_rejected(tmp_path):
    _save(TinyEps(), tmp_path / "bare.pt")
    np.save(tmp_path / "rising.npy", np.linspace(0.1, 0.9, 100))
    np.save(tmp_path / "ints.npy", np.arange(100))
    message = _error(tmp_path, model="bare.pt", alphas_cumprod="rising.npy")
    assert "rising.npy" in message and "non-increasing" in message
    assert "floating" in _error(tmp_path, model="bare.pt", alphas_cumprod="ints.npy")
    assert "not found" in _error(tmp_path, model="bare.pt", alphas_cumprod="missing.npy")


@pytest.mark.parametrize(("module", "kind", "words"), [
    (VectorLogits(), "logits", ["'logits' predictor must return (B, C)", "(4,)"]),
    (WideScalar(), "scalar", ["'scalar' predictor must return (B,) or (B, 1)", "(4, 3)"]),
    (DetachedLogits(), "logits", ["not differentiable"]),
    (ArgmaxLogits(), "logits", ["not differentiable", "all-zero gradient"]),
])
def test_bad_predictors_are_rejected(tmp_path, module, kind, words):
    _save(module, tmp_path / "pred.pt")
    message = _error(tmp_path, predictor={"path": "pred.pt", "kind": kind, "tolerance": 0.1}, targets=["1"])
    assert "predictor file" in message and "pred.pt" in message
    for word in words:
        assert word in message


def test_bad_kinds_targets_and_references_are_rejected(tmp_path):
    assert "unknown prediction kind 'score'" in _error(tmp_path, prediction="score")
    assert "unknown predictor kind 'probs'" in _error(tmp_path, predictor={"path": "logits.pt", "kind": "probs"})
    assert "unknown judge kind" in _error(tmp_path, judge={"path": "logits.pt", "kind": "softmax"})
    assert "tolerance" in _error(tmp_path, predictor={"path": "logits.pt", "kind": "scalar"})
    assert "class index 0–9" in _error(tmp_path, targets=["10"])
    assert "unknown keys ['modle']" in _error(tmp_path, modle="eps.pt")
    np.savez(tmp_path / "no_x.npz", images=np.zeros((5, *SHAPE)))
    np.savez(tmp_path / "wrong.npz", x=np.zeros((5, 8, 8)))
    message = _error(tmp_path, reference="no_x.npz")
    assert "no_x.npz" in message and "no array 'x'" in message and "images" in message
    message = _error(tmp_path, reference="wrong.npz")
    assert "wrong.npz" in message and "(N, 1, 8, 8)" in message and "(5, 8, 8)" in message
    assert "reference file" in _error(tmp_path, reference="gone.npz")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(TaskFileError, match="not valid JSON"):
        load_file_task(tmp_path / "broken.json")


# ---------------------------------------------------------------------------------------------
# diffusers


def test_diffusers_adapter_reports_a_missing_install(monkeypatch):
    from guidetune.evaluators import diffusers_adapter

    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    with pytest.raises(ImportError, match=r"pip install guidetune\[diffusers\]"):
        diffusers_adapter.from_diffusers(nn.Identity(), object())


def test_diffusers_unet_and_scheduler_honour_the_contract():
    diffusers = pytest.importorskip("diffusers")
    from guidetune.evaluators.diffusers_adapter import from_diffusers

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    ).eval()
    scheduler = diffusers.DDPMScheduler()
    model = from_diffusers(unet, scheduler)
    x, t = torch.randn(3, *SHAPE), torch.tensor([0, 400, 999])
    with torch.no_grad():
        assert torch.equal(model(x, t), unet(x, t).sample)
    assert torch.equal(model.alphas_cumprod, scheduler.alphas_cumprod) and model.prediction_type == "epsilon"
    out = sample(model, None, TFGParams(), shape=SHAPE, steps=3, seeds=[0, 1])
    assert out.shape == (2, *SHAPE) and torch.isfinite(out).all()
    guided = sample(model, lambda x0: -(x0**2).flatten(1).sum(1), TFGParams(rho=0.1, mu=0.1), shape=SHAPE, steps=3, seeds=[0, 1])
    assert torch.isfinite(guided).all()

    v_model = from_diffusers(unet, diffusers.DDPMScheduler(prediction_type="v_prediction"))
    assert isinstance(v_model, EpsilonFromV) and v_model.prediction_type == "v_prediction"
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        assert torch.allclose(v_model(x, t), a.sqrt() * unet(x, t).sample + (1 - a).sqrt() * x, atol=1e-6)
    assert isinstance(from_diffusers(unet, diffusers.DDIMScheduler(prediction_type="sample")), EpsilonFromX0)

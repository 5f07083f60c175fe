"""Bundled tasks: a diffusion prior, a guide (the target predictor the sampler follows) and an
independent judge (what validity is measured with; never the guide, which its own gradients fool).

Digits tasks live in model space ``x = pixels / 8 − 1`` with shape (1, 8, 8) in [−1, 1]: a user's
predictor for the bundled model must take that input.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from guidetune.guidance import (GaussianMixture, MixtureEpsilonModel, TFGParams, linear_beta_alphas_cumprod,
                                measurement_log_prob, sample)

from . import metrics
from .errors import EvaluatorError, UnknownTargetError, UnknownTaskError

LogProb = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TaskScore:
    """What a task's judge says of one config's samples (before fidelity, which is generic)."""

    validity: float                  # higher is better
    guide_validity: float = math.nan  # the same score as the guide sees it
    extras: dict[str, float] | None = None


class Task(ABC):
    """A prior, a guide per target, a judge, and a feature space for fidelity."""

    name: str
    description: str
    shape: tuple[int, ...]
    steps: int = 50
    eta: float = 1.0
    clip_x0: float | None = None
    validity_metric: str
    validity_range: tuple[float, float] = (0.0, 1.0)  # typical worst and best validity, for normalised scores
    strength_scale: float = 1.0                       # scales the searched ρ̄, μ̄ range to the guide's steepness
    device: torch.device = torch.device("cpu")        # where its networks live and its samples are drawn

    def to(self, device: torch.device | str) -> "Task":
        """Move the task's networks and data to ``device`` (in place; returns the task)."""
        self.device = torch.device(device)
        self._move(self.device)
        return self

    def _move(self, device: torch.device) -> None:
        """Subclasses move what they hold."""

    @abstractmethod
    def targets(self) -> list[str]:
        """Example targets (some tasks accept more, see ``check_target``)."""

    def check_target(self, target: str) -> str:
        if target not in self.targets():
            raise UnknownTargetError(f"task {self.name!r} has no target {target!r}; known targets: {self.targets()}")
        return target

    @property
    @abstractmethod
    def model(self):
        """The ε-prediction model (``model(x, t)`` with ``alphas_cumprod``)."""

    @abstractmethod
    def guide_log_prob(self, target: str, seeds: Sequence[int]) -> LogProb:
        """log f(x0) of the guide for ``target``; row i of a batch belongs to sample seed ``seeds[i]``."""

    @abstractmethod
    def score(self, samples: torch.Tensor, target: str, seeds: Sequence[int]) -> TaskScore:
        """Judge the samples (row i drawn with ``seeds[i]``)."""

    @abstractmethod
    def features(self, samples: torch.Tensor) -> torch.Tensor:
        """The feature space for fidelity and coverage."""

    @abstractmethod
    def reference_features(self, target: str) -> torch.Tensor:
        """Features of real data the samples should resemble for this target."""

    def export(self, samples: torch.Tensor) -> np.ndarray:
        """Samples in the form ``guidetune sample`` writes (model space unless a task says otherwise)."""
        return samples.detach().cpu().numpy()

    def unguided_samples(self, n_samples: int, seed: int) -> torch.Tensor:
        seeds = range(seed, seed + n_samples)
        return sample(self.model, None, TFGParams(), shape=self.shape, steps=self.steps, eta=self.eta, seeds=seeds,
                      clip_x0=self.clip_x0, device=self.device)

    def yardstick_samples(self, target: str, n_samples: int, seed: int,
                          max_draw: int | None = None) -> tuple[torch.Tensor, int]:
        """``n_samples`` unguided samples of this target and how many samples were drawn for them
        (never more than ``max_draw``: ``EvaluatorError`` when that cannot be done)."""
        if max_draw is not None and max_draw < n_samples:
            raise EvaluatorError(f"the unguided yardstick needs {n_samples} samples, only {max_draw} are left in the budget")
        return self.unguided_samples(n_samples, seed), n_samples

    def yardstick_cost(self, target: str, n_samples: int) -> int:
        """The samples ``yardstick_samples`` is expected to draw for ``n_samples`` of the target."""
        return n_samples

    def fidelity_yardstick(self, target: str, n_samples: int, seed: int) -> tuple[float, int]:
        """(Fréchet distance, samples drawn) of the unguided model's own samples of this target to the
        reference: the yardstick for "no less faithful than unguided sampling"."""
        samples, drawn = self.yardstick_samples(target, n_samples, seed)
        return metrics.frechet_distance(self.features(samples), self.reference_features(target)), drawn


# ---------------------------------------------------------------------------------------------
# digits


class _DigitsTask(Task):
    shape = (1, 8, 8)
    clip_x0 = 1.0

    def __init__(self) -> None:
        from .bundled import load_bundled_models
        from .digits_data import load_digit_splits

        self.models = load_bundled_models("cpu")   # frozen networks, checked against their SHA-256
        self.splits = load_digit_splits()           # the data (on the CPU; moved where used)

    def _move(self, device: torch.device) -> None:
        from .bundled import load_bundled_models

        self.models = load_bundled_models(device)

    @property
    def model(self):
        return self.models.diffusion

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.models.judge.features(samples)

    def export(self, samples: torch.Tensor) -> np.ndarray:
        from .digits_data import to_pixel_space

        return to_pixel_space(samples.detach().cpu()).squeeze(1).numpy()

    def _class_logits(self, network, samples: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return network(samples)

    def target_label(self, target: str) -> int:
        return int(target)

    def yardstick_cost(self, target: str, n_samples: int) -> int:
        """One class in ten: about ten draws per kept sample (a class the model draws less often costs more)."""
        return 10 * n_samples

    def yardstick_samples(self, target: str, n_samples: int, seed: int,
                          max_draw: int | None = None) -> tuple[torch.Tensor, int]:
        """Unguided samples that the judge assigns to the target's class, to hold against that class's
        held-out digits (all-class samples against one class would make any guidance look faithful).
        Drawn in chunks of ``2 · n_samples`` (at most 40 · n_samples in all' worth, and never past ``max_draw``)."""
        label, kept, drawn, chunk = self.target_label(target), [], 0, 2 * n_samples
        limit = 40 * n_samples if max_draw is None else min(40 * n_samples, max_draw)
        while sum(len(k) for k in kept) < n_samples and drawn < limit:
            size = min(chunk, limit - drawn)
            batch = self.unguided_samples(size, seed + drawn)
            drawn += size
            kept.append(batch[self._class_logits(self.models.judge, batch).argmax(1) == label])
        samples = torch.cat(kept)[:n_samples]
        if len(samples) < n_samples:
            raise EvaluatorError(f"the unguided yardstick found {len(samples)} of the {n_samples} samples of class "
                                 f"{label} it needs in {drawn} draws; raise the budget or lower the sample count")
        return samples, drawn


class DigitsLabelTask(_DigitsTask):
    name = "digits-label"
    description = "sample a digit of the target class (guide: CNN classifier; judge: independent MLP)"
    validity_metric = "judge_accuracy"

    def targets(self) -> list[str]:
        return [str(d) for d in range(10)]

    def guide_log_prob(self, target: str, seeds: Sequence[int]) -> LogProb:
        label = int(self.check_target(target))
        guide = self.models.guide

        def log_prob(x0: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(guide(x0), dim=1)[:, label]

        return log_prob

    def score(self, samples, target, seeds) -> TaskScore:
        label = int(target)
        return TaskScore(
            validity=metrics.accuracy(self._class_logits(self.models.judge, samples), label),
            guide_validity=metrics.accuracy(self._class_logits(self.models.guide, samples), label),
        )

    def reference_features(self, target: str) -> torch.Tensor:
        heldout = self.splits.heldout
        return self.features(heldout.x[heldout.y == int(target)].to(self.device))


class DigitsCombinedTask(_DigitsTask):
    """Two targets at once: a class label and a stroke mass (mean ink in [0, 1]) within a tolerance.
    Target syntax ``"LABEL:MASS"``, e.g. ``"3:0.40"``; the guide is log p(label) + log N(m̂; MASS, tol²)."""

    name = "digits-combined"
    description = "a digit of the target class with a target stroke mass (two guides: classifier + regressor)"
    validity_metric = "joint_accuracy"
    tolerance = 0.03

    def targets(self) -> list[str]:
        return ["0:0.40", "1:0.30", "3:0.40", "7:0.30", "8:0.45"]

    def check_target(self, target: str) -> str:
        self._parse(target)
        return target

    def _parse(self, target: str) -> tuple[int, float]:
        try:
            label_text, mass_text = target.split(":")
            label, mass = int(label_text), float(mass_text)
        except ValueError:
            raise UnknownTargetError(
                f"digits-combined targets look like 'LABEL:MASS' (e.g. '3:0.40'), got {target!r}"
            ) from None
        if not 0 <= label <= 9 or not 0.0 < mass < 1.0:
            raise UnknownTargetError(f"digits-combined needs a label 0–9 and a mass in (0, 1), got {target!r}")
        return label, mass

    def guide_log_prob(self, target: str, seeds: Sequence[int]) -> LogProb:
        label, mass = self._parse(target)
        guide, regressor, tol = self.models.guide, self.models.stroke_mass, self.tolerance

        def log_prob(x0: torch.Tensor) -> torch.Tensor:
            label_lp = torch.log_softmax(guide(x0), dim=1)[:, label]
            mass_lp = -((regressor(x0).reshape(-1) - mass) ** 2) / (2 * tol**2)
            return label_lp + mass_lp

        return log_prob

    def score(self, samples, target, seeds) -> TaskScore:
        from .digits_data import stroke_mass

        label, mass = self._parse(target)
        judge_ok = self._class_logits(self.models.judge, samples).argmax(1) == label
        guide_ok = self._class_logits(self.models.guide, samples).argmax(1) == label
        true_mass = stroke_mass(samples.clamp(-1, 1))
        mass_ok = (true_mass - mass).abs() <= self.tolerance
        with torch.no_grad():
            predicted_mass = self.models.stroke_mass(samples).reshape(-1)
        guide_mass_ok = (predicted_mass - mass).abs() <= self.tolerance
        return TaskScore(
            validity=float((judge_ok & mass_ok).float().mean()),
            guide_validity=float((guide_ok & guide_mass_ok).float().mean()),
            extras={
                "label_accuracy": float(judge_ok.float().mean()),
                "mass_within_tolerance": float(mass_ok.float().mean()),
                "mass_mae": float((true_mass - mass).abs().mean()),
            },
        )

    def target_label(self, target: str) -> int:
        return self._parse(target)[0]

    def reference_features(self, target: str) -> torch.Tensor:
        label, _ = self._parse(target)
        heldout = self.splits.heldout
        return self.features(heldout.x[heldout.y == label].to(self.device))


class DigitsInverseTask(_DigitsTask):
    """Recover held-out digits from noisy measurements. Sample seed s reconstructs held-out image
    ``s mod 300``. Targets: ``superres`` (2×2 average pooling to 4×4, noise σ = 0.05) and
    ``inpaint`` (bottom half hidden, noise σ = 0.05)."""

    name = "digits-inverse"
    description = "super-resolution (8×8 from 4×4) and inpainting (bottom half) of held-out digits from noisy measurements"
    validity_metric = "neg_residual_rmse"
    validity_range = (-0.6, 0.0)
    strength_scale = 0.01
    noise_std = 0.05

    def targets(self) -> list[str]:
        return ["superres", "inpaint"]

    def operator(self, target: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.check_target(target) == "superres":
            return lambda x: torch.nn.functional.avg_pool2d(x, 2).flatten(1)
        return lambda x: x[:, :, :4, :].flatten(1)

    def truth(self, seeds: Sequence[int]) -> torch.Tensor:
        heldout = self.splits.heldout.x
        return heldout[torch.as_tensor([s % len(heldout) for s in seeds])].to(self.device)

    def measurements(self, target: str, seeds: Sequence[int]) -> torch.Tensor:
        """y_i = A(x_i) + σ·n_i with noise fixed by the seed (the same measurement in every trial)."""
        clean = self.operator(target)(self.truth(seeds))
        noise = torch.stack([torch.randn(clean.shape[1], generator=torch.Generator().manual_seed(int(s) + 7919)) for s in seeds])
        return clean + self.noise_std * noise.to(clean)

    def guide_log_prob(self, target: str, seeds: Sequence[int]) -> LogProb:
        A, y, s2 = self.operator(target), self.measurements(target, seeds), self.noise_std**2

        def log_prob(x0: torch.Tensor) -> torch.Tensor:
            return -((A(x0) - y.to(x0)) ** 2).sum(1) / (2 * s2)

        return log_prob

    def score(self, samples, target, seeds) -> TaskScore:
        A, y = self.operator(target), self.measurements(target, seeds)
        with torch.no_grad():
            residual = (A(samples) - y).pow(2).mean(1).sqrt()
        mse = (samples - self.truth(seeds)).pow(2).flatten(1).mean(1)
        return TaskScore(validity=-float(residual.mean()), extras={
            "residual_rmse": float(residual.mean()),
            "mse_to_truth": float(mse.mean()),
            "psnr_to_truth": float((10 * torch.log10(4.0 / mse.clamp_min(1e-12))).mean()),  # peak-to-peak range 2
        })

    def reference_features(self, target: str) -> torch.Tensor:
        return self.features(self.splits.heldout.x.to(self.device))

    def yardstick_samples(self, target: str, n_samples: int, seed: int,
                          max_draw: int | None = None) -> tuple[torch.Tensor, int]:
        """Unguided samples of every class: the reference is every held-out digit."""
        return Task.yardstick_samples(self, target, n_samples, seed, max_draw)

    def yardstick_cost(self, target: str, n_samples: int) -> int:
        return n_samples


# ---------------------------------------------------------------------------------------------
# the analytic mixture


def gmm_inverse_mixture(device: torch.device | str = "cpu") -> GaussianMixture:
    """Two anisotropic Gaussians in 2-D (the engine tests' mixture)."""
    return GaussianMixture(
        torch.tensor([0.5, 0.5], dtype=torch.float64, device=device),
        torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=torch.float64, device=device),
        torch.stack([torch.eye(2) * 0.3, torch.tensor([[0.5, 0.2], [0.2, 0.4]])]).double().to(device),
    )


class GmmInverseTask(Task):
    """Observe y = x[0] + N(0, 0.3²) under a 2-D Gaussian-mixture prior; the exact posterior is known.
    Target = the observed value y. Validity = −(sliced Wasserstein distance to exact posterior samples)."""

    name = "gmm-inverse"
    description = "2-D Gaussian mixture, noisy observation of the first coordinate; exact posterior as ground truth"
    validity_metric = "neg_sliced_wasserstein"
    validity_range = (-3.0, 0.0)
    strength_scale = 0.02
    shape = (2,)
    noise_std = 0.3
    A = torch.tensor([[1.0, 0.0]], dtype=torch.float64)

    def __init__(self) -> None:
        self.mixture = gmm_inverse_mixture()
        self._model = MixtureEpsilonModel(self.mixture, linear_beta_alphas_cumprod())
        self._posterior: dict[tuple[str, int], torch.Tensor] = {}

    def _move(self, device: torch.device) -> None:
        self.mixture = gmm_inverse_mixture(device)
        self._model = MixtureEpsilonModel(self.mixture, linear_beta_alphas_cumprod().to(device))

    def targets(self) -> list[str]:
        return ["1.5", "0.0", "-1.0"]

    def check_target(self, target: str) -> str:
        try:
            float(target)
        except ValueError:
            raise UnknownTargetError(f"gmm-inverse targets are observed values such as '1.5', got {target!r}") from None
        return target

    @property
    def model(self):
        return self._model

    def guide_log_prob(self, target: str, seeds: Sequence[int]) -> LogProb:
        y = torch.tensor([float(self.check_target(target))], dtype=torch.float64)
        return measurement_log_prob(self.A, y, self.noise_std)

    def posterior_samples(self, target: str, n: int = 4000) -> torch.Tensor:
        """Exact posterior samples (drawn on the CPU with a fixed seed, so the same on every device)."""
        if (target, n) not in self._posterior:
            y = torch.tensor([float(target)], dtype=torch.float64)
            exact = gmm_inverse_mixture().posterior(self.A, y, self.noise_std)
            self._posterior[target, n] = exact.sample(n, torch.Generator().manual_seed(0)).float()
        return self._posterior[target, n]

    def score(self, samples, target, seeds) -> TaskScore:
        guide_lp = self.guide_log_prob(target, seeds)(samples)
        return TaskScore(
            validity=-metrics.sliced_wasserstein(samples, self.posterior_samples(target)),
            extras={"mean_log_likelihood": float(guide_lp.mean())},
        )

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        return samples.reshape(samples.shape[0], -1)

    def reference_features(self, target: str) -> torch.Tensor:
        return self.posterior_samples(target)


# ---------------------------------------------------------------------------------------------

TASKS: dict[str, Callable[[], Task]] = {
    "digits-label": DigitsLabelTask,
    "digits-combined": DigitsCombinedTask,
    "digits-inverse": DigitsInverseTask,
    "gmm-inverse": GmmInverseTask,
}


def make_task(name: str, device: torch.device | str = "cpu") -> Task:
    """A new task, by value: the bundled task called ``name`` or a user's task from a JSON spec file
    path (see ``evaluators/file_task.py``), its networks on ``device``. Nothing is shared between
    tasks or cached per process (a worker builds the task it serves once and keeps it)."""
    if name.endswith(".json"):
        from .file_task import load_file_task

        task = load_file_task(name)
    elif name in TASKS:
        task = TASKS[name]()
    else:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}, or the path of a task spec "
                               "(.json) describing your own model and predictor")
    return task.to(device) if torch.device(device) != task.device else task

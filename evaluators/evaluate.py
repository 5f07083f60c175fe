"""``evaluate``: sample a batch of guidance configurations on one task and score each of them.

Configurations that share ``TFGParams.structure()`` run packed in one sampling call with
per-sample strengths; every configuration uses the same seeds (common random numbers), so
differences between trials come from the configurations, not from the noise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from guidetune.guidance import TFGParams, sample_with_stats
from guidetune.guidance.params import CONTINUOUS_FIELDS

from . import metrics
from .errors import EvaluatorError
from .records import TrialResult
from .tasks import Task

KID_MIN_SAMPLES = 2
PRECISION_RECALL_K = 3


def pack_params(configs: Sequence[TFGParams], n_samples: int) -> TFGParams:
    """One TFGParams whose continuous fields hold each config's value ``n_samples`` times in turn."""
    if not configs:
        raise EvaluatorError("no configurations to evaluate")
    structure = configs[0].structure()
    for config in configs[1:]:
        if config.structure() != structure:
            raise EvaluatorError(
                "configurations packed into one batch must share their structural parameters "
                f"(n_recur, n_iter, n_mc, schedules, update rule, DSG); got {structure} and {config.structure()}"
            )
    per_sample = {}
    for name in CONTINUOUS_FIELDS:
        values = [float(getattr(c, name)) for c in configs]
        per_sample[name] = torch.tensor(values, dtype=torch.float64).repeat_interleave(n_samples)
    return configs[0].replace(**per_sample)


def evaluate(
    task: Task,
    target: str,
    configs: Sequence[TFGParams],
    n_samples: int,
    seed: int = 0,
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> list[TrialResult]:
    """Sample ``n_samples`` per configuration (seeds ``seed … seed + n_samples − 1``) and score them."""
    if n_samples < 1:
        raise EvaluatorError(f"n_samples must be at least 1, got {n_samples}")
    task.check_target(target)
    for config in configs:
        if any(isinstance(getattr(config, n), torch.Tensor) for n in CONTINUOUS_FIELDS):
            raise EvaluatorError("evaluate takes one float per strength and configuration; it packs them itself")
    seeds = [seed + i for i in range(n_samples)] * len(configs)
    packed = pack_params(configs, n_samples)
    log_prob = task.guide_log_prob(target, seeds)
    run = sample_with_stats(
        task.model, log_prob if packed.needs_log_prob else None, packed, shape=task.shape, steps=task.steps, eta=task.eta,
        seeds=seeds, clip_x0=task.clip_x0, batch_size=batch_size, progress=progress, on_nonfinite="mark", device=task.device,
    )
    reference = task.reference_features(target)
    results = []
    for k, config in enumerate(configs):
        start = time.perf_counter()
        rows = slice(k * n_samples, (k + 1) * n_samples)
        samples, failed_steps = run.samples[rows], run.nonfinite_step[rows]
        common = dict(
            n_samples=n_samples, seed=seed,
            validity_metric=task.validity_metric, forward_passes=float(run.forward_passes),
            backward_passes=float(run.backward_passes),
        )
        if (failed_steps >= 0).any():
            bad = failed_steps[failed_steps >= 0]
            results.append(TrialResult(
                validity=math.nan, failed=f"{len(bad)} of {n_samples} samples became non-finite (first at inference "
                f"step {int(bad.min())} of {task.steps}); the strengths are too large for this model",
                seconds_per_sample=run.seconds / len(seeds), **common,
            ))
            continue
        score = task.score(samples, target, seeds[rows])
        feats = task.features(samples)
        fidelity = _fidelity(feats, reference)
        results.append(TrialResult(
            validity=score.validity, guide_validity=score.guide_validity, extras=score.extras or {},
            seconds_per_sample=run.seconds / len(seeds) + (time.perf_counter() - start) / n_samples,
            **fidelity, **common,
        ))
    return results


def _fidelity(features: torch.Tensor, reference: torch.Tensor | None) -> dict[str, float]:
    """FD, KID and k-NN precision/recall against the reference; NaN where either set is too small
    (a task without reference data has no fidelity)."""
    n = features.shape[0]
    out = {"fidelity_fd": math.nan, "kid": math.nan, "precision": math.nan, "recall": math.nan}
    if reference is None or reference.shape[0] < 2:
        return out
    if n >= 2:
        out["fidelity_fd"] = metrics.frechet_distance(features, reference)
        out["kid"] = metrics.kernel_inception_distance(features, reference)
    if n > PRECISION_RECALL_K and reference.shape[0] > PRECISION_RECALL_K:
        out["precision"], out["recall"] = metrics.precision_recall(reference, features, k=PRECISION_RECALL_K)
    return out

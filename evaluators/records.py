"""The record one evaluated trial produces: what a searcher scores and the study store keeps."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, eq=False)
class TrialResult:
    """Metrics of one guidance configuration on one task and target, from ``n_samples`` samples (the
    configuration, task and target live on the trial and study records, not here).

    ``validity`` is oriented so that higher is better (accuracy as is; an error such as a property
    MAE or a measurement residual is stored negated, and ``validity_metric`` says which). A failed
    trial keeps its reason in ``failed`` and NaN metrics.
    """

    n_samples: int                        # how many samples the metrics below rest on
    seed: int                             # first sample seed; sample i used seed + i
    validity: float                       # judge's validity score, higher is better
    validity_metric: str                  # e.g. "judge_accuracy", "neg_property_mae", "neg_residual"
    guide_validity: float = math.nan      # the same score as the guide itself sees it (fooling gap)
    fidelity_fd: float = math.nan         # Fréchet distance to reference data in judge features
    kid: float = math.nan                 # kernel inception distance (same features), small-n friendly
    precision: float = math.nan           # k-NN manifold precision (Kynkäänniemi et al. 2019)
    recall: float = math.nan              # k-NN manifold recall
    forward_passes: float = 0.0           # denoiser forward passes per sample
    backward_passes: float = 0.0          # denoiser backward passes per sample
    seconds_per_sample: float = math.nan  # wall time of sampling and scoring per sample
    failed: str | None = None             # why the trial failed (None when it succeeded)
    extras: dict[str, float] = field(default_factory=dict)  # per-target scores and the like

    def __eq__(self, other: object) -> bool:
        """Field by field, NaN equal to NaN (a missing metric read back from a store is the same record)."""
        if not isinstance(other, TrialResult):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN stays NaN; use ``allow_nan`` or map it at the edge)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialResult":
        return cls(**data)

"""A cheap deterministic stand-in for the real evaluator: validity is a smooth bump in
(log ρ, log μ, log γ, log₂ N_recur, log₂ N_iter) with its optimum inside the default space, observation
noise of standard deviation ``noise / √n_samples``, and a Fréchet distance that grows with strength."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from guidetune.evaluators.records import TrialResult
from guidetune.guidance.params import TFGParams
from guidetune.searcher import Searcher, run_study

OPTIMUM = {"rho": 2.0, "mu": 1.0, "gamma": 0.01, "n_recur": 2, "n_iter": 4}
UNGUIDED_FD = 10.0


def true_validity(c: TFGParams) -> float:
    """0.05 + 0.9·exp(−½‖d‖²): d = distances to the optimum in log-units (widths 1.5, 1.5, 2, 1, 1.5)."""
    d = [
        math.log(max(float(c.rho), 1e-12) / OPTIMUM["rho"]) / 1.5,
        math.log(max(float(c.mu), 1e-12) / OPTIMUM["mu"]) / 1.5,
        math.log10(max(float(c.gamma), 1e-12) / OPTIMUM["gamma"]) / 2.0,
        math.log2(c.n_recur / OPTIMUM["n_recur"]) / 1.0,
        math.log2(max(c.n_iter, 1) / OPTIMUM["n_iter"]) / 1.5,
    ]
    schedule_bonus = 0.0 if c.rho_schedule == "increase" else -0.05
    return 0.05 + 0.9 * math.exp(-0.5 * sum(x * x for x in d)) + schedule_bonus


def true_fd(c: TFGParams) -> float:
    return UNGUIDED_FD * (1.0 + 0.1 * (float(c.rho) + float(c.mu)) * c.n_recur + 5.0 * float(c.gamma))


@dataclass
class SyntheticEvaluator:
    noise: float = 0.5                                     # validity noise std at one sample
    n_steps: int = 10                                      # inference steps (for the pass counts)
    fail_if: Callable[[TFGParams], str | None] | None = None  # returns a failure reason or None
    calls: list[dict] = field(default_factory=list)        # one entry per evaluate call

    def passes_per_sample(self, c: TFGParams) -> float:
        return float(self.n_steps * c.n_recur * (2 if float(c.rho) != 0 else 1))

    def _noise(self, c: TFGParams, n_samples: int, seed: int) -> float:
        key = repr((sorted(c.to_dict().items()), n_samples, seed)).encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        return float(rng.normal()) * self.noise / math.sqrt(n_samples)

    def __call__(self, configs: list[TFGParams], n_samples: int, seed: int) -> list[TrialResult]:
        structures = {c.structure() for c in configs}
        assert len(structures) == 1, f"configs of one call must share structure, got {structures}"
        self.calls.append({"n_configs": len(configs), "n_samples": n_samples, "seed": seed,
                           "structure": next(iter(structures))})
        out = []
        for c in configs:
            reason = self.fail_if(c) if self.fail_if else None
            fwd = float(self.n_steps * c.n_recur)
            bwd = fwd if float(c.rho) != 0 else 0.0
            common = dict(n_samples=n_samples, seed=seed,
                          validity_metric="synthetic_accuracy", forward_passes=fwd, backward_passes=bwd)
            if reason:
                out.append(TrialResult(validity=math.nan, failed=reason, **common))
                continue
            out.append(TrialResult(validity=true_validity(c) + self._noise(c, n_samples, seed),
                                   fidelity_fd=true_fd(c) * (1 + self._noise(c, n_samples, seed + 1) / 10),
                                   **common))
        return out

    @property
    def n_calls(self) -> int:
        return len(self.calls)


def assert_restart_continues_exactly(first: Searcher, restarted: Searcher, *, noise: float, budget_samples: int):
    """``restarted`` (rebuilt from ``first``'s stored trials) asks what ``first`` asks, and both then run on
    to ``budget_samples`` with the same trials; returns ``first``'s continuation."""
    assert first.ask() == restarted.ask()
    first._pending.clear()
    restarted._pending.clear()
    a = run_study(first, SyntheticEvaluator(noise=noise), budget_samples=budget_samples, progress=False)
    b = run_study(restarted, SyntheticEvaluator(noise=noise), budget_samples=budget_samples, progress=False)
    assert [(t.params, t.n_samples) for t in a.trials] == [(t.params, t.n_samples) for t in b.trials]
    return a.trials

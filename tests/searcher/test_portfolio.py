"""portfolio: full-size probes over the strength ladders, then beam-mf from the best probe."""

from __future__ import annotations

import math

import pytest
from synthetic_evaluator import SyntheticEvaluator, assert_restart_continues_exactly

from guidetune.evaluators.records import TrialResult
from guidetune.searcher import MaximizeValidity, default_tfg_space, make_searcher, run_study
from guidetune.searcher.errors import SearchError
from guidetune.searcher.multifidelity import ProbeThenBeam


def test_probes_are_the_center_and_distinct_ladder_points_at_full_size():
    space = default_tfg_space()
    s = make_searcher("portfolio", space, MaximizeValidity(), 3, n_samples=32, probes=5)
    asked = s.ask()
    assert [p.tags for p in asked] == [{"phase": "probe", "probe": i} for i in range(5)]
    assert asked[0].params == space.center_point() == {**space.start_point(), "rho": 2**-2, "mu": 2**-2, "gamma": 0.01}
    assert all(p.n_samples == 32 for p in asked)
    ladders = {p.name: p.ladder() for p in space.params if p.name in ("rho", "mu", "gamma")}
    for p in asked:
        assert all(p.params[k] in ladder for k, ladder in ladders.items())
        assert p.params["n_recur"] == 1 and p.params["n_iter"] == 1     # counts stay at their (cheap) start
    assert len({tuple(sorted(p.params.items())) for p in asked}) == 5
    assert [p.params for p in make_searcher("portfolio", space, MaximizeValidity(), 3, n_samples=32, probes=5).ask()] \
        == [p.params for p in asked]                                     # seeded
    with pytest.raises(SearchError, match="probes"):
        ProbeThenBeam(space, MaximizeValidity(), probes=0)


def _peak(configs, n_samples, seed):
    """validity = −(log₂ ρ̄ − 1)² − (log₂ μ̄ − 1)²: best at ρ̄ = μ̄ = 2, no noise."""
    return [TrialResult(n_samples=n_samples, seed=seed, validity_metric="peak",
                        validity=-(math.log2(float(c.rho)) - 1) ** 2 - (math.log2(float(c.mu)) - 1) ** 2)
            for c in configs]


def test_the_beam_starts_at_the_best_probe_and_the_best_is_a_full_size_result():
    space = default_tfg_space()
    s = make_searcher("portfolio", space, MaximizeValidity(validity_range=(-100, 0)), 0, n_samples=32, probes=4)
    outcome = run_study(s, _peak, budget_samples=3000, progress=False)
    probes = [t for t in outcome.trials if t.tags.get("phase") == "probe"]
    best_probe = max(probes, key=lambda t: t.result.validity)
    beam = [t for t in outcome.trials if t.tags.get("phase") != "probe"]
    assert beam[0].params == best_probe.params and beam[0].n_samples == 16   # beam-mf's round 0 (a quarter, ≥ 16)
    assert outcome.best.n_samples == 32 and outcome.best.result.validity == 0.0   # the peak, found and run at full size
    # while the beam runs below full size, the reported best is a probe
    early = [t for t in outcome.trials[: len(probes) + 3]]
    assert s.best(early).tags["phase"] == "probe"


def test_a_rebuilt_portfolio_continues_exactly():
    space = default_tfg_space()
    first = make_searcher("portfolio", space, MaximizeValidity(), 1, n_samples=32)
    stored = run_study(first, SyntheticEvaluator(noise=0.5), max_trials=9, progress=False).told
    again = make_searcher("portfolio", space, MaximizeValidity(), 1, n_samples=32, trials=stored)
    assert again.inner is not None and again.best(stored).number == first.best(stored).number
    assert (again.inner.round, again.inner.level) == (first.inner.round, first.inner.level)
    assert_restart_continues_exactly(first, again, noise=0.5, budget_samples=3000)

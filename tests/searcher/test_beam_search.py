from __future__ import annotations

import math

from synthetic_evaluator import SyntheticEvaluator

from guidetune.evaluators.records import TrialResult
from guidetune.searcher import (BeamSearcher, LogFloat, MaximizeValidity, PowerOfTwoInt, SearchSpace,
                                default_tfg_space, make_searcher, reference_tfg_space, run_study)


def _linear_evaluator(weights):
    """validity = Σ w·value: every parameter helps, so the beam climbs to the caps."""
    calls = []

    def evaluate(configs, n_samples, seed):
        calls.append(len(configs))
        return [TrialResult(n_samples=n_samples, seed=seed,
                            validity=sum(w * float(getattr(c, k)) for k, w in weights.items()),
                            validity_metric="lin") for c in configs]
    evaluate.calls = calls
    return evaluate


def test_round0_equals_reference_defaults():
    beam = BeamSearcher(reference_tfg_space(), MaximizeValidity())
    got = [p.params for p in beam.ask()]
    assert got == [
        {"rho": 0.25, "mu": 0.25, "gamma": 0.001},
        {"rho": 0.5, "mu": 0.25, "gamma": 0.001},
        {"rho": 0.25, "mu": 0.5, "gamma": 0.001},
        {"rho": 0.25, "mu": 0.25, "gamma": 0.01},
    ]
    assert all(p.n_samples == 64 for p in beam.pending)


def test_round0_extended_space_doubles_recurrence_and_iterations():
    beam = BeamSearcher(default_tfg_space(), MaximizeValidity())
    low = 2.0 ** -6  # the default space reaches five doublings below TFG's 0.25
    start = {"rho": low, "mu": low, "gamma": 0.001, "n_recur": 1, "n_iter": 1}
    assert [p.params for p in beam.ask()] == [
        start, {**start, "rho": 2 * low}, {**start, "mu": 2 * low}, {**start, "gamma": 0.01},
        {**start, "n_recur": 2}, {**start, "n_iter": 2},
    ]


def test_round1_children_of_top2_deduplicated():
    beam = BeamSearcher(reference_tfg_space(), MaximizeValidity(), beam_width=2, rounds=2)
    ev = _linear_evaluator({"rho": 1.0, "mu": 0.1, "gamma": 1.0})
    out = run_study(beam, ev, max_trials=4, progress=False)
    # round 0 scores: rho×2 .526 > mu×2 .301 > gamma×10 .285 > start .276
    assert [t.params for t in beam.ranked[:2]] == [{"rho": 0.5, "mu": 0.25, "gamma": 0.001},
                                                  {"rho": 0.25, "mu": 0.5, "gamma": 0.001}]
    assert [p.params for p in beam.ask()] == [
        {"rho": 1.0, "mu": 0.25, "gamma": 0.001},
        {"rho": 0.5, "mu": 0.5, "gamma": 0.001},   # also a child of the 2nd parent: kept once
        {"rho": 0.5, "mu": 0.25, "gamma": 0.01},
        {"rho": 0.25, "mu": 1.0, "gamma": 0.001},
        {"rho": 0.25, "mu": 0.5, "gamma": 0.01},
    ]
    assert len(out.trials) == 4


def _small_capped_space():
    return SearchSpace((LogFloat("rho", low=0.25, high=1.5, start=0.25, factor=2.0, cap=1.5),
                        LogFloat("mu", low=0.5, high=1.0, factor=2.0),
                        PowerOfTwoInt("n_recur", 1, 2)))


def test_children_capped_deduplicated_and_never_decreasing():
    space = _small_capped_space()
    beam = BeamSearcher(space, MaximizeValidity(), beam_width=3, rounds=10)
    out = run_study(beam, _linear_evaluator({"rho": 1.0, "mu": 1.0, "n_recur": 1.0}), progress=False)
    assert out.stop_reason == "finished" and beam.finished
    points = [tuple(sorted(t.params.items())) for t in out.trials]
    assert len(points) == len(set(points)), "a config was run twice"
    rhos = sorted({t.params["rho"] for t in out.trials})
    assert rhos == [0.25, 0.5, 1.0, 1.5]          # 1.0 × 2 capped at 1.5, never 2.0
    assert max(t.params["mu"] for t in out.trials) == 1.0
    assert out.best.params == {"rho": 1.5, "mu": 1.0, "n_recur": 2}
    # every child has a parent run before it that differs in exactly one parameter, stepped up
    for k, t in enumerate(out.trials):
        if t.tags["beam_round"] == 0 and t.tags["beam_index"] == 0:
            continue
        parents = []
        for earlier in out.trials[:k]:
            diff = [n for n in space.names if earlier.params[n] != t.params[n]]
            if len(diff) == 1 and space[diff[0]].step_up(earlier.params[diff[0]]) == t.params[diff[0]]:
                parents.append(earlier)
        assert parents, f"trial {t.number} {t.params} has no parent it grew from"
        assert all(t.params[n] >= parents[0].params[n] for n in space.names)


def test_fixed_number_of_rounds():
    beam = BeamSearcher(reference_tfg_space(), MaximizeValidity(), rounds=3, n_samples=16)
    out = run_study(beam, SyntheticEvaluator(noise=0.05), progress=False)
    assert {t.tags["beam_round"] for t in out.trials} == {0, 1, 2}
    assert beam.finished and out.stop_reason == "finished"


def test_beam_ends_early_when_the_top_k_have_no_new_children():
    """Reference behaviour: once every child of the top-k was run, later rounds are empty."""
    space = SearchSpace((LogFloat("rho", low=0.25, high=0.5),))
    beam = BeamSearcher(space, MaximizeValidity(), rounds=6)
    out = run_study(beam, _linear_evaluator({"rho": 1.0}), progress=False)
    assert [t.params["rho"] for t in out.trials] == [0.25, 0.5]
    assert beam.finished


def test_final_rerun_at_full_size():
    beam = BeamSearcher(reference_tfg_space(), MaximizeValidity(), rounds=2, n_samples=16,
                        final_top=2, final_n_samples=128)
    out = run_study(beam, SyntheticEvaluator(), progress=False)
    final = [t for t in out.trials if t.tags["phase"] == "final"]
    assert [t.params for t in final] == [t.params for t in beam.ranked[:2]]
    assert all(t.n_samples == 128 for t in final)
    assert out.best in final


def _continue(searcher, evaluator, n):
    return [t.params for t in run_study(searcher, evaluator, max_trials=n, progress=False).trials]


def test_restart_from_stored_trials_beam():
    space, obj = default_tfg_space(), MaximizeValidity()
    first = make_searcher("beam", space, obj, seed=0, n_samples=32)
    stored = run_study(first, SyntheticEvaluator(), max_trials=6 + 3, progress=False).told  # mid round 1
    restarted = make_searcher("beam", space, obj, seed=0, n_samples=32, trials=stored)
    assert restarted.round == first.round == 1
    a, b = first.ask(), restarted.ask()
    assert a == b and len(a) > 0
    # and the rest of the study unfolds identically
    for s, p in ((first, a), (restarted, b)):
        s._pending.clear()
    assert _continue(first, SyntheticEvaluator(), 25) == _continue(restarted, SyntheticEvaluator(), 25)


def test_failed_candidates_rank_last_and_are_not_rerun():
    ev = SyntheticEvaluator(fail_if=lambda c: "NaN in x0 at step 4" if c.gamma > 0.005 else None)
    beam = BeamSearcher(reference_tfg_space(), MaximizeValidity(), rounds=3, n_samples=16)
    out = run_study(beam, ev, progress=False)
    failed = [t for t in out.trials if t.state.name == "FAILED"]
    assert failed and all(t.fail_reason == "NaN in x0 at step 4" for t in failed)
    assert all(beam.rank_key(t)[2] == -math.inf for t in beam.ranked[-len(failed):])
    assert out.best.state.name == "COMPLETE"

from __future__ import annotations

import functools
import threading

import pytest

from synthetic_evaluator import SyntheticEvaluator

from guidetune.guidance.params import TFGParams
from guidetune.storage.records import TrialState
from guidetune.searcher import (BudgetTooSmallError, MaximizeValidity, SearchError,
                                default_tfg_space, make_searcher, run_study,
                                tfg_denoiser_passes)


def _beam(**kw):
    return make_searcher("beam", default_tfg_space(), MaximizeValidity(), seed=0, **kw)


def test_packing_one_evaluate_call_per_structure_group():
    ev = SyntheticEvaluator()
    out = run_study(_beam(n_samples=32), ev, max_trials=6, progress=False)  # round 0 only
    # start, rho×2, mu×2, gamma×10 share a structure; n_recur=2 and n_iter=2 are one each
    assert [c["n_configs"] for c in ev.calls] == [4, 1, 1]
    assert len(out.trials) == 6
    # a whole study: calls == Σ over rounds of distinct structures in the round
    ev = SyntheticEvaluator(noise=0.05)
    out = run_study(_beam(n_samples=32, rounds=4), ev, progress=False)
    expected = 0
    for r in sorted({t.tags["beam_round"] for t in out.trials}):
        expected += len({out.space.to_params(t.params).structure() for t in out.trials if t.tags["beam_round"] == r})
    assert ev.n_calls == expected < len(out.trials)


def test_max_pack_splits_groups():
    ev = SyntheticEvaluator()
    run_study(_beam(n_samples=32), ev, max_trials=6, max_pack=3, progress=False)
    assert [c["n_configs"] for c in ev.calls] == [3, 1, 1, 1]


def test_sample_budget_respected_exactly():
    ev = SyntheticEvaluator(noise=0.05)
    out = run_study(_beam(n_samples=64, rounds=8), ev, budget_samples=1000, progress=False)
    assert out.stop_reason == "budget_samples"
    run = [t for t in out.trials if t.state.is_finished]
    assert out.samples_spent == sum(t.n_samples for t in run) == sum(c["n_configs"] * c["n_samples"] for c in ev.calls)
    # proposals of the round that did not fit stay stored PENDING (a larger budget continues with them)
    assert all(t.state is TrialState.PENDING for t in out.trials if not t.state.is_finished)
    assert out.samples_spent <= 1000
    assert out.samples_spent > 1000 - 64 * 6  # it did not stop needlessly early (at most one round left unspent)
    assert [h[0] for h in out.history] == sorted(h[0] for h in out.history)


def test_pass_budget_respected():
    ev = SyntheticEvaluator(noise=0.05)
    out = run_study(_beam(n_samples=16, rounds=8), ev, budget_passes=5_000, progress=False)
    assert out.stop_reason == "budget_passes"
    assert out.passes_spent <= 5_000
    assert out.passes_spent == sum((t.result.forward_passes + t.result.backward_passes) * t.n_samples
                                   for t in out.trials if t.state.is_finished)


def test_too_small_budget_raises_before_any_evaluation():
    ev = SyntheticEvaluator()
    with pytest.raises(BudgetTooSmallError, match="budget_samples=63 cannot pay for one trial"):
        run_study(_beam(n_samples=64), ev, budget_samples=63, progress=False)
    with pytest.raises(BudgetTooSmallError, match="budget_passes=100 cannot pay"):
        run_study(_beam(n_samples=64), ev, budget_passes=100, progress=False)
    assert ev.n_calls == 0


def test_pass_budget_needs_a_cost_model():
    def bare(configs, n_samples, seed):
        raise AssertionError("never called")
    with pytest.raises(SearchError, match="cost model"):
        run_study(_beam(), bare, budget_passes=1e9, progress=False)
    cost = functools.partial(tfg_denoiser_passes, n_steps=10)
    assert cost(TFGParams(rho=1.0, n_recur=2)) == 40.0 and cost(TFGParams(mu=1.0)) == 10.0


def test_failed_trials_recorded_and_search_goes_on():
    reason = "non-finite: NaN in trajectory at step 3"
    ev = SyntheticEvaluator(fail_if=lambda c: reason if c.rho >= 1.0 else None)
    out = run_study(make_searcher("random", default_tfg_space(), MaximizeValidity(), seed=0, n_samples=16),
                    ev, max_trials=20, progress=False)
    failed = [t for t in out.trials if t.state is TrialState.FAILED]
    assert failed and all(t.fail_reason == reason and t.result.failed == reason for t in failed)
    assert len(out.trials) == 20 and failed[0].number < 19
    assert out.best.state is TrialState.COMPLETE and out.best.params["rho"] < 1.0


def test_evaluator_exceptions_caught_only_when_asked():
    def flaky(configs, n_samples, seed):
        if any(c.n_recur == 2 for c in configs):
            raise RuntimeError("CUDA out of memory")
        return SyntheticEvaluator()(configs, n_samples, seed)
    out = run_study(_beam(n_samples=8), flaky, max_trials=6, catch=(RuntimeError,), progress=False)
    bad = [t for t in out.trials if t.state is TrialState.FAILED]
    assert [t.params["n_recur"] for t in bad] == [2] and "CUDA out of memory" in bad[0].fail_reason
    with pytest.raises(RuntimeError):
        run_study(_beam(n_samples=8), flaky, max_trials=6, progress=False)


def test_stop_on_request_event_and_callable():
    event = threading.Event()
    seen = []

    def on_trial(t):
        seen.append(t)
        if len(seen) == 5:
            event.set()
    out = run_study(_beam(n_samples=8), SyntheticEvaluator(), stop=event, on_trial=on_trial, progress=False)
    assert out.stop_reason == "requested" and 5 <= len(out.trials) < 6 + 1
    assert [t.number for t in seen] == [t.number for t in out.told]
    assert all(t.state is TrialState.PENDING for t in out.trials[len(seen):])   # proposed, never started
    out = run_study(_beam(n_samples=8), SyntheticEvaluator(), stop=lambda: True, progress=False)
    assert out.stop_reason == "requested" and out.trials == ()


def test_history_best_and_export_format():
    out = run_study(_beam(n_samples=32, rounds=3), SyntheticEvaluator(noise=0.05), progress=True)
    scores = [h[1] for h in out.history]
    assert scores == sorted(scores) and scores[-1] == out.best_score
    assert out.best_score == max(MaximizeValidity().score(t.result) for t in out.trials)
    config = out.best_config()
    params = TFGParams.from_dict(config)
    assert params == out.space.to_params(out.best.params)
    assert set(config) == set(TFGParams().to_dict())

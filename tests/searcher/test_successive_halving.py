from __future__ import annotations

from synthetic_evaluator import SyntheticEvaluator, assert_restart_continues_exactly

from guidetune.searcher import (MaximizeValidity, SuccessiveHalving, default_tfg_space, make_searcher,
                                reference_tfg_space, run_study, rung_sizes)
from guidetune.searcher.multifidelity import FINAL_SEED_OFFSET
from guidetune.searcher.optuna_searchers import RandomSearcher


def test_rung_sizes():
    assert rung_sizes(16, 2, 64) == [16, 32, 64]
    assert rung_sizes(16, 3, 144) == [16, 48, 144]
    assert rung_sizes(16, 3, 100) == [16, 48, 100]
    assert rung_sizes(64, 3, 64) == [64]


def _sh(max_brackets=1, final_top=1, seed=0):
    obj = MaximizeValidity()
    inner = RandomSearcher(default_tfg_space(), obj, seed=seed, n_samples=144)
    return SuccessiveHalving(inner, min_samples=16, eta=3, max_samples=144, bracket_size=9,
                             max_brackets=max_brackets, final_top=final_top)


def test_promotes_top_third_compared_within_the_rung():
    sh = _sh()
    out = run_study(sh, SyntheticEvaluator(), progress=False)
    by_rung = {r: [t for t in out.trials if t.tags.get("sh_rung") == r] for r in range(3)}
    assert [len(by_rung[r]) for r in range(3)] == [9, 3, 1]
    assert [t.n_samples for t in by_rung[0]] == [16] * 9 and by_rung[1][0].n_samples == 48
    assert sh.promotions == [(0, 0, 9, 3), (0, 1, 3, 1), (0, 2, 1, 1)]
    score = sh.objective.score
    top3 = sorted(by_rung[0], key=lambda t: score(t.result), reverse=True)[:3]
    assert sorted(tuple(sorted(t.params.items())) for t in by_rung[1]) == \
        sorted(tuple(sorted(t.params.items())) for t in top3)
    top1 = max(by_rung[1], key=lambda t: score(t.result))
    assert by_rung[2][0].params == top1.params
    # inner searcher heard each candidate once: 8 pruned (6 at rung 0, 2 at rung 1), 1 complete
    states = [(t.state.name, t.tags["rung"]) for t in sh.inner.told]
    assert sorted(states) == sorted([("PRUNED", 0)] * 6 + [("PRUNED", 1)] * 2 + [("COMPLETE", 2)])


def test_final_best_was_reevaluated_at_full_size():
    sh = _sh(max_brackets=3, final_top=2)
    out = run_study(sh, SyntheticEvaluator(), progress=False)
    assert sh.finished and out.stop_reason == "finished"
    final = [t for t in out.trials if t.tags.get("sh_phase") == "final"]
    full = [t for t in out.trials if t.tags.get("sh_rung") == 2]
    assert len(full) == 3 and len(final) == 2
    assert all(t.n_samples == 144 and t.seed == FINAL_SEED_OFFSET for t in final)
    ranked = sorted(full, key=lambda t: sh.objective.score(t.result), reverse=True)
    assert [t.params for t in final] == [t.params for t in ranked[:2]]
    assert out.best in final and out.best.n_samples == 144


def test_sh_spends_fewer_samples_than_full_evaluation():
    out = run_study(_sh(max_brackets=2), SyntheticEvaluator(), progress=False)
    assert out.samples_spent == 2 * (9 * 16 + 3 * 48 + 144) + 144
    assert out.samples_spent < 2 * 9 * 144


def test_tpe_mf_runs_and_restarts_exactly():
    space, obj = reference_tfg_space(), MaximizeValidity()
    opts = dict(n_samples=64, bracket_size=4)
    first = make_searcher("tpe-mf", space, obj, seed=0, **opts)
    stored = run_study(first, SyntheticEvaluator(noise=0.1), max_trials=10, progress=False).told
    restarted = make_searcher("tpe-mf", space, obj, seed=0, trials=stored, **opts)
    continued = assert_restart_continues_exactly(first, restarted, noise=0.1, budget_samples=1500)
    # rungs 16 → 32 → 64 over brackets of 4: 4 × 16 + 2 × 32 + 1 × 64 samples per bracket
    bracket0 = [t for t in stored + continued if t.tags.get("sh_bracket") == 0]
    assert sorted(t.n_samples for t in bracket0) == [16] * 4 + [32] * 2 + [64]

from __future__ import annotations

import statistics

import pytest

from synthetic_evaluator import UNGUIDED_FD, SyntheticEvaluator, true_validity

from guidetune.searcher import (Categorical, LogFloat, MaximizeValidity, MissingDependencyError, SearchError,
                                ParetoValidityFidelity, PowerOfTwoInt, SearchSpace, default_tfg_space,
                                make_searcher, run_study)

try:
    import cmaes  # noqa: F401
    HAVE_CMAES = True
except ImportError:
    HAVE_CMAES = False

# name, options, trials: kept small (GP fits are the slow part, ~1 s per ask on 2 cores)
CASES = [
    ("random", {"batch_size": 4}, 24),
    ("tpe", {"batch_size": 4, "n_startup_trials": 8}, 32),
    ("gp", {"batch_size": 3, "n_startup_trials": 6}, 12),
    ("nsga2", {"population_size": 8}, 32),
    pytest.param("cmaes", {"popsize": 6}, 30,
                 marks=pytest.mark.skipif(not HAVE_CMAES, reason="the 'cmaes' package is not installed")),
]


@pytest.mark.parametrize("name, options, n_trials", CASES)
def test_improves_over_its_random_start(name, options, n_trials):
    obj = MaximizeValidity()
    searcher = make_searcher(name, default_tfg_space(), obj, seed=3, n_samples=64, **options)
    out = run_study(searcher, SyntheticEvaluator(noise=0.2), max_trials=n_trials, progress=False)
    assert len(out.trials) == n_trials
    first = statistics.median(obj.score(t.result) for t in out.trials[:5])
    assert out.best_score > first
    assert out.best.params == max(out.trials, key=lambda t: obj.score(t.result)).params


def test_tpe_proposals_get_better_than_its_random_startup():
    searcher = make_searcher("tpe", default_tfg_space(), MaximizeValidity(), seed=0, n_samples=64,
                             batch_size=4, n_startup_trials=8)
    ev = SyntheticEvaluator(noise=0.2)
    out = run_study(searcher, ev, max_trials=40, progress=False)
    truth = [true_validity(out.space.to_params(t.params)) for t in out.trials]
    assert statistics.mean(truth[-12:]) > statistics.mean(truth[:8]) + 0.15


def test_restart_from_stored_trials_tpe():
    space, obj = default_tfg_space(), MaximizeValidity()
    opts = dict(n_samples=32, batch_size=4, n_startup_trials=4)
    first = make_searcher("tpe", space, obj, seed=11, **opts)
    stored = run_study(first, SyntheticEvaluator(), max_trials=12, progress=False).told
    restarted = make_searcher("tpe", space, obj, seed=11, trials=stored, **opts)
    a, b = first.ask(), restarted.ask()
    assert a == b and len(a) == 4
    # a different seed gives a different proposal: the equality above is not vacuous
    other = make_searcher("tpe", space, obj, seed=12, trials=stored, **opts)
    assert other.ask() != a


def test_grid_enumerates_every_point_once():
    space = SearchSpace((LogFloat("rho", 0.25, 1.0), PowerOfTwoInt("n_recur", 1, 2),
                         Categorical("mu_schedule", ("increase", "constant"))), {"mu": 1.0})
    searcher = make_searcher("grid", space, MaximizeValidity(), seed=0, n_samples=8, batch_size=5)
    out = run_study(searcher, SyntheticEvaluator(), progress=False)
    assert out.stop_reason == "finished" and searcher.finished
    got = sorted(tuple(sorted(t.params.items())) for t in out.trials)
    assert got == sorted(tuple(sorted(p.items())) for p in space.grid())
    assert len(got) == 3 * 2 * 2


def test_nsga2_pareto_front():
    obj = ParetoValidityFidelity(unguided_fd=UNGUIDED_FD)
    searcher = make_searcher("nsga2", default_tfg_space(), obj, seed=1, n_samples=32, population_size=8)
    out = run_study(searcher, SyntheticEvaluator(), max_trials=24, progress=False)
    vals = [obj.values(t.result) for t in out.trials]
    front = [v for v in vals if not any(w[0] >= v[0] and w[1] <= v[1] and w != v for w in vals)]
    assert 1 <= len(front) < len(vals)


@pytest.mark.skipif(not HAVE_CMAES, reason="the 'cmaes' package is not installed")
def test_cmaes_fixes_categoricals():
    space = default_tfg_space(schedules=True)
    searcher = make_searcher("cmaes", space, MaximizeValidity(), seed=0, n_samples=16, popsize=6,
                             fixed={"mu_schedule": "constant"})
    out = run_study(searcher, SyntheticEvaluator(), max_trials=12, progress=False)
    assert {t.params["rho_schedule"] for t in out.trials} == {"increase"}
    assert {t.params["mu_schedule"] for t in out.trials} == {"constant"}
    assert len({t.params["rho"] for t in out.trials}) == 12


@pytest.mark.skipif(HAVE_CMAES, reason="only meaningful where 'cmaes' is missing")
def test_cmaes_missing_dependency_is_clear():
    with pytest.raises(MissingDependencyError, match="pip install cmaes"):
        make_searcher("cmaes", default_tfg_space(), MaximizeValidity())


@pytest.mark.parametrize("name, options, n_trials", [
    ("random", {"batch_size": 3}, 6),
    ("tpe", {"batch_size": 3, "n_startup_trials": 3}, 9),
    ("grid", {"batch_size": 3}, 6),
    ("nsga2", {"population_size": 4}, 12),
    ("gp", {"batch_size": 2, "n_startup_trials": 4}, 6),
    pytest.param("cmaes", {"popsize": 4}, 10,
                 marks=pytest.mark.skipif(not HAVE_CMAES, reason="the 'cmaes' package is not installed")),
])
def test_restart_from_json_stored_trials(name, options, n_trials):
    """Sampler state kept in Optuna system attributes survives the trip through JSON."""
    import json

    from guidetune.storage.records import Trial

    space, obj = default_tfg_space(), MaximizeValidity()
    first = make_searcher(name, space, obj, seed=5, n_samples=16, **options)
    stored = run_study(first, SyntheticEvaluator(), max_trials=n_trials, progress=False).told
    loaded = [Trial.from_dict(json.loads(json.dumps(t.to_dict()))) for t in stored]
    restarted = make_searcher(name, space, obj, seed=5, n_samples=16, trials=loaded, **options)
    assert first.ask() == restarted.ask()


def test_trial_samples_sets_the_size_of_every_proposal_and_is_checked():
    space, obj = default_tfg_space(), MaximizeValidity()
    searcher = make_searcher("tpe", space, obj, seed=0, n_samples=32, trial_samples=8, batch_size=4)
    assert [p.n_samples for p in searcher.ask()] == [8, 8, 8, 8]
    assert {p.n_samples for p in make_searcher("random", space, obj, n_samples=32).ask()} == {32}
    for bad in (0, 33, 8.0):
        with pytest.raises(SearchError, match=r"trial_samples must be an integer in \[1, n_samples=32\]"):
            make_searcher("tpe", space, obj, n_samples=32, trial_samples=bad)


@pytest.mark.parametrize("start, expected", [
    ("center", lambda space: space.center_point()),
    ("low", lambda space: space.start_point()),
    ({"rho": 0.25, "n_iter": 4}, lambda space: {**space.start_point(), "rho": 0.25, "n_iter": 4}),
])
def test_start_puts_one_chosen_point_first_and_a_rebuilt_searcher_does_not_repeat_it(start, expected):
    space, obj = default_tfg_space(), MaximizeValidity()
    searcher = make_searcher("tpe", space, obj, seed=2, n_samples=16, batch_size=4, start=start)
    first = searcher.ask()
    assert first[0].params == expected(space) and first[0].n_samples == 16
    assert len(first) == 4 and all(p.params != first[0].params for p in first[1:])   # the rest: the sampler's
    plain = make_searcher("tpe", space, obj, seed=2, n_samples=16, batch_size=4).ask()
    assert expected(space) not in [p.params for p in plain]
    searcher = make_searcher("tpe", space, obj, seed=2, n_samples=16, batch_size=4, start=start)
    stored = run_study(searcher, SyntheticEvaluator(), max_trials=12, progress=False).told
    assert [t.params for t in stored].count(expected(space)) == 1 and stored[0].params == expected(space)
    rebuilt = make_searcher("tpe", space, obj, seed=2, n_samples=16, batch_size=4, start=start, trials=stored)
    again = rebuilt.ask()
    assert again == searcher.ask() and expected(space) not in [p.params for p in again]


def test_start_is_checked():
    space, obj = default_tfg_space(), MaximizeValidity()
    with pytest.raises(SearchError, match="start must be 'low'.*'center'.*got 'middle'"):
        make_searcher("tpe", space, obj, start="middle")
    with pytest.raises(SearchError, match="rho=99.0 lies outside the space"):
        make_searcher("random", space, obj, start={"rho": 99.0})
    with pytest.raises(SearchError, match=r"unexpected \['zzz'\]"):
        make_searcher("tpe", space, obj, start={"zzz": 1})


def test_startup_samples_sizes_the_random_startup_trials_only_and_survives_a_rebuild():
    space, obj = default_tfg_space(), MaximizeValidity()
    options = dict(seed=4, n_samples=32, batch_size=3, n_startup_trials=5, startup_samples=8)
    searcher = make_searcher("tpe", space, obj, **options)
    stored = run_study(searcher, SyntheticEvaluator(), max_trials=7, progress=False).told
    assert sorted(t.n_samples for t in stored) == [8] * 5 + [32] * 2
    assert searcher.best(stored).n_samples == 32   # reported: a full-size trial, not a lucky small one
    rebuilt = make_searcher("tpe", space, obj, trials=stored, **options)
    assert rebuilt.ask() == searcher.ask() and {p.n_samples for p in rebuilt.ask()} == {32}
    assert {p.n_samples for p in make_searcher("tpe", space, obj, n_samples=32, trial_samples=16).ask()} == {16}
    for bad in (0, 17, 4.0):
        with pytest.raises(SearchError, match=r"startup_samples must be an integer in \[1, trial_samples=16\]"):
            make_searcher("tpe", space, obj, n_samples=32, trial_samples=16, startup_samples=bad)

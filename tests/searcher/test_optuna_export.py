from __future__ import annotations

import optuna
import pytest

from synthetic_evaluator import UNGUIDED_FD, SyntheticEvaluator

from guidetune.storage.records import TrialState
from guidetune.searcher import (ConstrainedValidity, MaximizeValidity, ParetoValidityFidelity,
                                default_tfg_space, make_searcher, run_study)
from guidetune.searcher.optuna_export import export_to_optuna


@pytest.mark.parametrize("objective", [MaximizeValidity(), ConstrainedValidity(UNGUIDED_FD, 1.5),
                                       ParetoValidityFidelity(UNGUIDED_FD)])
def test_export_round_trip_through_sqlite(tmp_path, objective):
    ev = SyntheticEvaluator(fail_if=lambda c: "NaN at step 2" if c.rho > 4 else None)
    space = default_tfg_space()
    out = run_study(make_searcher("random", space, objective, seed=2, n_samples=16), ev, max_trials=16,
                    progress=False)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    export_to_optuna(out.trials, url, "synthetic", objective, space=space)
    study = optuna.load_study(study_name="synthetic", storage=url)
    assert len(study.trials) == len(out.trials)
    complete = [t for t in out.trials if t.state is TrialState.COMPLETE]
    loaded = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(loaded) == len(complete) > 0
    for ours, theirs in zip(complete, loaded):
        assert theirs.values == pytest.approx(list(objective.values(ours.result)))
        assert theirs.params == ours.params  # real values: n_recur 1, 2, 4, not exponents
        assert theirs.user_attrs["guidetune_number"] == ours.number
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == sum(t.state is TrialState.FAILED for t in out.trials)
    assert all(t.user_attrs["fail_reason"] == "NaN at step 2" for t in failed)
    if objective.kind == "constrained":
        assert all(list(t.constraints.values()) == [pytest.approx(objective.constraint(o.result))]
                   for o, t in zip(complete, loaded))

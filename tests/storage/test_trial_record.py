from __future__ import annotations

import json
import math

import pytest

from guidetune.evaluators.records import TrialResult
from guidetune.storage.records import Trial, TrialState
from guidetune.storage.errors import IllegalTransitionError, ImmutableTrialError


def _result(**kw):
    base = dict(n_samples=16, seed=3, validity=0.5,
                validity_metric="acc", fidelity_fd=12.0, forward_passes=10.0)
    base.update(kw)
    return TrialResult(**base)


def test_life_cycle_and_immutability():
    t = Trial(number=0, params={"rho": 1.0}, n_samples=16, seed=3)
    assert t.state is TrialState.PENDING
    r = t.start()
    assert r.state is TrialState.RUNNING and t.state is TrialState.PENDING
    done = r.finish(_result())
    assert done.state is TrialState.COMPLETE and done.result.validity == 0.5
    with pytest.raises(ImmutableTrialError):
        done.transition(TrialState.FAILED, fail_reason="late")
    with pytest.raises(IllegalTransitionError, match="PENDING -> COMPLETE"):
        t.transition(TrialState.COMPLETE, result=_result())
    with pytest.raises(AttributeError):
        done.state = TrialState.FAILED  # frozen


def test_failed_result_becomes_failed_trial_with_reason():
    t = Trial(number=1, params={"rho": 8.0}, n_samples=16, seed=3).start()
    bad = t.finish(_result(validity=math.nan, failed="non-finite: NaN at step 7"))
    assert bad.state is TrialState.FAILED and bad.fail_reason == "non-finite: NaN at step 7"
    nan = Trial(number=2, params={"rho": 8.0}, n_samples=16, seed=3).start().finish(_result(validity=math.inf))
    assert nan.state is TrialState.FAILED and "non-finite" in nan.fail_reason


def test_json_round_trip():
    t = Trial(number=4, params={"rho": 0.5, "n_recur": 2, "rho_schedule": "increase"}, n_samples=32, seed=7,
              tags={"beam_round": 1, "optuna_system_attrs": {"grid_id": 3}}).start().finish(_result())
    text = json.dumps(t.to_dict())
    again = Trial.from_dict(json.loads(text))
    assert json.dumps(again.to_dict()) == text
    assert again.state is TrialState.COMPLETE and again.tags["beam_round"] == 1
    assert again.params == t.params and again.result.fidelity_fd == 12.0


def test_requeue_is_the_only_way_back_and_keeps_the_attempt():
    running = Trial(number=0, params={"rho": 1.0}, n_samples=4, seed=0).start(attempt=1, worker="w1")
    requeued = running.transition(TrialState.PENDING)
    assert requeued.state is TrialState.PENDING and requeued.attempt == 1
    with pytest.raises(IllegalTransitionError, match="PENDING -> PENDING"):
        requeued.transition(TrialState.PENDING)


def test_params_are_copied():
    params = {"rho": 1.0}
    t = Trial(number=0, params=params, n_samples=1, seed=0)
    params["rho"] = 2.0
    assert t.params == {"rho": 1.0}

from __future__ import annotations

import json
import math

import pytest

from guidetune.evaluators.records import TrialResult
from guidetune.searcher import (ConstrainedValidity, MaximizeValidity, ObjectiveError, ParetoValidityFidelity,
                                ReferenceTFGScore, objective_from_dict)


def _r(validity, fd=math.nan, failed=None):
    return TrialResult(n_samples=8, seed=0, validity=validity,
                       validity_metric="acc", fidelity_fd=fd, failed=failed)


def test_validity_normalisation():
    assert MaximizeValidity().score(_r(0.7)) == pytest.approx(0.7)
    neg_mae = MaximizeValidity(validity_range=(-4.0, 0.0))
    assert neg_mae.score(_r(-1.0)) == pytest.approx(0.75)
    assert neg_mae.values(_r(-3.0)) == pytest.approx((0.25,))


def test_failed_scores_worst():
    for obj in (MaximizeValidity(), ConstrainedValidity(10.0), ParetoValidityFidelity(10.0), ReferenceTFGScore()):
        assert obj.score(_r(math.nan, 10.0, failed="nan at step 3")) == -math.inf
        assert obj.values(_r(math.nan, 10.0, failed="nan")) is None
        assert obj.score(None) == -math.inf


def test_constrained_numbers():
    obj = ConstrainedValidity(unguided_fd=10.0, max_ratio=1.5)
    feasible = _r(0.6, fd=14.0)
    assert obj.constraint(feasible) == pytest.approx(math.log(1.4) - math.log(1.5))
    assert obj.score(feasible) == pytest.approx(0.6)
    infeasible = _r(0.99, fd=30.0)  # twice the allowed FD
    assert obj.constraint(infeasible) == pytest.approx(math.log(2.0))
    assert obj.score(infeasible) == pytest.approx(-1.0 - math.log(2.0))
    assert obj.score(_r(0.01, fd=14.0)) > obj.score(infeasible)
    assert obj.score(_r(0.9, fd=math.nan)) == -math.inf


def test_pareto_numbers_are_scale_free():
    cifar = ParetoValidityFidelity(unguided_fd=40.0)
    digits = ParetoValidityFidelity(unguided_fd=0.4)
    assert cifar.directions == ("maximize", "minimize")
    assert cifar.values(_r(0.8, fd=80.0)) == pytest.approx((0.8, math.log(2.0)))
    assert digits.values(_r(0.8, fd=0.8)) == pytest.approx((0.8, math.log(2.0)))
    assert cifar.score(_r(0.8, fd=80.0)) == pytest.approx(0.8 - math.log(2.0))


def test_reference_score_is_dominated_by_fid_scale():
    ref = ReferenceTFGScore(metrics=("validity", "_fid"))
    accurate = _r(0.95, fd=41.0)
    useless = _r(0.10, fd=40.0)
    assert ref.score(accurate) == pytest.approx((0.95 - 41.0) / 2)
    # the weakness: 1 FID point outweighs 85 accuracy points
    assert ref.score(useless) > ref.score(accurate)
    norm = ParetoValidityFidelity(unguided_fd=40.0)
    assert norm.score(accurate) > norm.score(useless)


def test_reference_unknown_metric_is_an_error():
    with pytest.raises(ObjectiveError, match="'sharpness'"):
        ReferenceTFGScore(metrics=("sharpness",)).score(_r(0.5))


def test_objective_json_round_trip():
    for obj in (MaximizeValidity((-2.0, 0.0)), ConstrainedValidity(12.5, 2.0), ParetoValidityFidelity(3.0, tradeoff=0.5),
                ReferenceTFGScore(("validity", "_fid"))):
        again = objective_from_dict(json.loads(json.dumps(obj.to_dict())))
        assert again == obj
    with pytest.raises(ObjectiveError, match="unknown objective kind"):
        objective_from_dict({"kind": "vibes"})
    with pytest.raises(ObjectiveError, match="unguided_fd"):
        ConstrainedValidity(unguided_fd=0.0)

from __future__ import annotations

import itertools
import json

import pytest

from guidetune.guidance.params import TFGParams
from guidetune.searcher import (Categorical, LogFloat, PowerOfTwoInt, SearchSpace, SearchSpaceError,
                                default_tfg_space, reference_tfg_space)


def test_default_space_ladders_reach_below_the_reference_start():
    sp = default_tfg_space()
    assert sp.names == ("rho", "mu", "gamma", "n_recur", "n_iter")
    assert sp["rho"].ladder() == [2.0 ** k for k in range(-6, 4)]   # 1/64 … 8; the reference starts at 0.25
    assert sp["mu"].ladder() == [2.0 ** k for k in range(-6, 4)]
    assert reference_tfg_space()["rho"].ladder() == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert sp["gamma"].ladder() == [0.001, 0.01, 0.1, 1.0]
    assert sp["n_recur"].values() == [1, 2, 4]
    assert sp["n_iter"].values() == [1, 2, 4, 8]


def test_json_round_trip_with_categoricals_and_base():
    sp = default_tfg_space(schedules=True, base={"gamma_schedule": "constant", "n_mc": 2})
    again = SearchSpace.from_dict(json.loads(json.dumps(sp.to_dict())))
    assert again == sp
    assert again.to_dict() == sp.to_dict()


def test_to_params_merges_base():
    sp = reference_tfg_space()
    p = sp.to_params({"rho": 0.5, "mu": 0.25, "gamma": 0.01})
    assert isinstance(p, TFGParams)
    assert (p.rho, p.mu, p.gamma, p.n_recur, p.n_iter) == (0.5, 0.25, 0.01, 1, 4)
    assert TFGParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("build, message", [
    (lambda: SearchSpace(()), "empty search space"),
    (lambda: LogFloat("rho", low=2.0, high=1.0), "low=2.0 > high=1.0"),
    (lambda: LogFloat("rho_bar", low=0.1, high=1.0), "unknown parameter 'rho_bar'"),
    (lambda: LogFloat("rho", low=0.0, high=1.0), "low > 0"),
    (lambda: LogFloat("rho", low=0.1, high=1.0, start=2.0), "low <= start <= cap <= high"),
    (lambda: PowerOfTwoInt("n_recur", 1, 3), "power of two"),
    (lambda: PowerOfTwoInt("n_recur", 4, 2), "low=4 > high=2"),
    (lambda: Categorical("rho_schedule", ()), "at least one choice"),
    (lambda: SearchSpace((LogFloat("rho", 0.1, 1.0),), base={"rho": 0.5}), "both searched and fixed"),
    (lambda: SearchSpace((LogFloat("rho", 0.1, 1.0),), base={"nope": 1}), "unknown parameter 'nope'"),
    (lambda: SearchSpace((Categorical("rho_schedule", ("increase", "sideways")),)), "sideways"),
    (lambda: SearchSpace((LogFloat("tail_tau", 0.5, 2.0),)), "tail_tau"),
    (lambda: SearchSpace.from_dict({"params": [{"kind": "cubic", "name": "rho"}]}), "unknown parameter kind"),
])
def test_validation_errors_are_clear(build, message):
    with pytest.raises(SearchSpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_grid_is_the_full_cartesian_product():
    sp = default_tfg_space(schedules=True)
    grid = sp.grid()
    assert len(grid) == 10 * 10 * 4 * 3 * 4 * 3 * 3
    assert len({json.dumps(g, sort_keys=True) for g in grid}) == len(grid)
    expected = {tuple(c) for c in itertools.product(*(p.ladder() for p in sp.params))}
    assert {tuple(g[n] for n in sp.names) for g in grid} == expected
    for g in grid[:50]:
        sp.validate_point(g)


def test_validate_point_rejects_outside_values():
    sp = default_tfg_space()
    point = sp.start_point()
    point["n_iter"] = 3
    with pytest.raises(SearchSpaceError, match="n_iter=3"):
        sp.validate_point(point)

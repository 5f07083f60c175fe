from __future__ import annotations

import pytest

from guidetune.searcher import (SEARCHER_NAMES, MaximizeValidity, MissingDependencyError, Searcher,
                                UnknownSearcherError, default_tfg_space, make_searcher)


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownSearcherError) as info:
        make_searcher("hyperband", default_tfg_space(), MaximizeValidity())
    message = str(info.value)
    assert "unknown searcher 'hyperband'" in message
    for name in ("beam", "beam-mf", "tpe", "tpe-mf", "cmaes", "random", "grid", "gp", "nsga2"):
        assert name in message


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_every_name_builds_and_proposes_points_of_the_space(name):
    space = default_tfg_space()
    try:
        searcher = make_searcher(name, space, MaximizeValidity(), seed=0, n_samples=16)
    except MissingDependencyError:
        pytest.skip(f"{name} needs an optional package that is missing")
    assert isinstance(searcher, Searcher)
    proposals = searcher.ask(2)
    assert 1 <= len(proposals) <= 2
    for p in proposals:
        space.validate_point(p.params)

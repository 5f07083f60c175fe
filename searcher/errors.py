"""Errors the searcher raises; each message says what is wrong and how to fix it."""

from __future__ import annotations


class SearchError(Exception):
    """Base class of every error the searcher raises on purpose."""


class SearchSpaceError(SearchError, ValueError):
    """A search space is malformed (empty, low > high, unknown parameter, value outside it)."""


class ObjectiveError(SearchError, ValueError):
    """An objective is malformed or asked for a metric that the result does not carry."""


class UnknownSearcherError(SearchError, KeyError):
    """``make_searcher`` was given a name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class BudgetTooSmallError(SearchError, ValueError):
    """A study's budget cannot pay for even one trial."""


class EvaluatorContractError(SearchError, ValueError):
    """An evaluator returned results that do not match the configs it was given."""


class MissingDependencyError(SearchError, ImportError):
    """An optional package that a searcher needs is not installed."""


class ClusterTooSmallError(SearchError):
    """The Ray cluster has fewer CPUs or GPUs than one trial group asks for (now: nodes may join later)."""

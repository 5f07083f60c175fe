"""Domain errors of the evaluators; the api maps them to exit codes and HTTP statuses."""

from __future__ import annotations


class EvaluatorError(ValueError):
    """Base class of the evaluators' deliberate errors."""


class UnknownTaskError(EvaluatorError):
    """No task of that name."""


class UnknownTargetError(EvaluatorError):
    """The task has no such target, or the target is malformed."""


class TaskFileError(EvaluatorError):
    """A user's task file failed a check (the message names the file and the check)."""

"""Errors the engine raises; each message says what is wrong and how to fix it."""

from __future__ import annotations


class GuidanceError(Exception):
    """Base class of every error the guidance engine raises on purpose."""


class GuidanceConfigError(GuidanceError, ValueError):
    """A guidance parameter is out of its domain (unknown schedule, negative strength, ...)."""


class ModelContractError(GuidanceError, ValueError):
    """A model or predictor does not honour its contract (shape, dtype, gradient)."""


class NonFiniteError(GuidanceError, FloatingPointError):
    """The trajectory produced NaN or inf; ``step`` is the inference step (0 = noisiest)."""

    def __init__(self, message: str, *, step: int, samples: list[int]):
        super().__init__(message)
        self.step = step
        self.samples = samples

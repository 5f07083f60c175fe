"""Errors of the study store; each message says what is wrong and how to fix it (Vizier's domain errors:
NotFound, AlreadyExists, Immutable, mapped to exit codes and HTTP statuses at the edge)."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFoundError(StorageError, LookupError):
    """A study or trial that does not exist was asked for."""


class AlreadyExistsError(StorageError, ValueError):
    """A study name is taken by a study with a different spec."""


class IllegalTransitionError(StorageError, ValueError):
    """A trial was moved between states that the trial life cycle does not connect."""


class ImmutableTrialError(IllegalTransitionError):
    """A finished trial (COMPLETE, FAILED, PRUNED) was asked to change."""


class SchemaVersionError(StorageError):
    """The database's schema is older than, or unknown to, this version of guidetune."""


class StorageURLError(StorageError, ValueError):
    """A storage URL is malformed, names a missing folder, or no server answers it."""


class StorageUnavailableError(StorageError):
    """The database stayed unreachable for longer than the retry window."""


class LeaseHeldError(StorageError):
    """Another live coordinator holds the study (only one process may run a study at a time)."""

"""The study store: study and trial records, SQL tables with Alembic migrations, the store itself."""

from __future__ import annotations

from .errors import (AlreadyExistsError, IllegalTransitionError, ImmutableTrialError, LeaseHeldError, NotFoundError,
                     SchemaVersionError, StorageError, StorageUnavailableError, StorageURLError)
from .records import (ALLOWED_TRANSITIONS, SPEC_VERSION, StudyRecord, StudySpec, StudyState, Trial, TrialState)
from .store import StudyStore, coordinator_id

__all__ = [
    "AlreadyExistsError", "IllegalTransitionError", "ImmutableTrialError", "LeaseHeldError", "NotFoundError",
    "SchemaVersionError", "StorageError", "StorageUnavailableError", "StorageURLError", "ALLOWED_TRANSITIONS",
    "SPEC_VERSION", "StudyRecord", "StudySpec", "StudyState", "Trial", "TrialState", "StudyStore", "coordinator_id",
]

"""The SQL tables (SQLAlchemy 2 declarative). Alembic owns the schema: ``migrations/`` creates these
tables; this module only maps them. Indexes serve the cheap reads: trials after N (primary key),
best so far (``study_id, state, score``), order of tells (``study_id, tell_seq``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_REVISION = "0003"   # the Alembic head this code reads and writes


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner: Mapped[str] = mapped_column(String(200), default="local")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    samples_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    passes_spent: Mapped[float] = mapped_column(Float, default=0.0)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)        # the next trial number
    n_told: Mapped[int] = mapped_column(Integer, default=0)          # the next tell_seq
    n_running: Mapped[int] = mapped_column(Integer, default=0)       # trial counts by state, kept in step
    n_complete: Mapped[int] = mapped_column(Integer, default=0)      # with the trials (pending = n_trials
    n_failed: Mapped[int] = mapped_column(Integer, default=0)        # minus the others): status reads one row
    n_pruned: Mapped[int] = mapped_column(Integer, default=0)
    yardstick: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    confirmation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)   # fresh-seed re-evaluation
    best_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    coordinator: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class TrialRow(Base):
    __tablename__ = "trials"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_samples: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    passes: Mapped[float] = mapped_column(Float, default=0.0)         # denoiser passes the trial spent
    tell_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_score: Mapped[float | None] = mapped_column(Float, nullable=True)   # the study's reported best after this tell
    created_at: Mapped[datetime] = mapped_column(DateTime())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)

    __table_args__ = (
        Index("ix_trials_best", "study_id", "state", "score"),
        Index("ix_trials_tell", "study_id", "tell_seq"),
    )


class TokenRow(Base):
    """An API token, stored as its SHA-256 (the token itself is shown once, when created)."""

    __tablename__ = "tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime())


class UploadRow(Base):
    """A validated network an owner uploaded (a predictor or a diffusion model); the file lives
    under ``GUIDETUNE_HOME/uploads`` named by its SHA-256."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))          # predictor | model
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime())


class IdempotencyRow(Base):
    """An ``Idempotency-Key`` an owner sent with a study it created (a retry returns that study)."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime())

"""Alembic environment: runs the project's migrations on the connection ``storage.engine`` hands it."""

from __future__ import annotations

from alembic import context

from guidetune.storage.schema import Base

target_metadata = Base.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `guidetune db upgrade` (guidetune.storage.engine.upgrade)")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

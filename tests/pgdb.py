"""Fresh PostgreSQL databases for tests: created on the local server (127.0.0.1:5432, user postgres,
trust auth) and dropped after."""

from __future__ import annotations

import os
import uuid

PG_ADMIN = os.environ.get("GUIDETUNE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_admin_engine():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def pg_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        engine = _pg_admin_engine()
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: skip with the reason
        return f"no PostgreSQL server answers at {PG_ADMIN} ({type(exc).__name__})"


def create_pg_database() -> str:
    from sqlalchemy import text

    name = f"guidetune_test_{uuid.uuid4().hex[:12]}"
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    from sqlalchemy import text

    name = url.rsplit("/", 1)[1]
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()

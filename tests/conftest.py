"""Shared fixtures. Store tests run against both backends: SQLite in a temporary folder, and a fresh
PostgreSQL database on the local server (127.0.0.1:5432, user postgres), created for the test and
dropped after; PostgreSQL tests skip, with the reason, only where no server answers."""

from __future__ import annotations

import os
import uuid

import pytest

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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL of an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studies.db'}"
        return
    reason = pg_available()
    if reason:
        pytest.skip(reason)
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def store(store_url):
    from guidetune.storage import StudyStore

    s = StudyStore(store_url, retry_seconds=5.0)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _private_guidetune_home(tmp_path, monkeypatch):
    """Every test stores its studies under its own GUIDETUNE_HOME (subprocesses inherit it)."""
    monkeypatch.setenv("GUIDETUNE_HOME", str(tmp_path / "guidetune-home"))
    monkeypatch.delenv("GUIDETUNE_DATABASE_URL", raising=False)

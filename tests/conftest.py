"""Shared fixtures. Store tests run against both backends: SQLite in a temporary folder, and a fresh
PostgreSQL database on the local server (127.0.0.1:5432, user postgres), created for the test and
dropped after; PostgreSQL tests skip, with the reason, only where no server answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # helper modules beside the tests (pgdb)

from pgdb import create_pg_database, drop_pg_database, pg_available  # noqa: E402


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

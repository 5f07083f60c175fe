"""URLs, engines and retries of the study store."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from guidetune.storage.engine import check_url, resolve_url, retrying
from guidetune.storage.errors import StorageUnavailableError, StorageURLError


def test_default_url_is_an_sqlite_file_under_guidetune_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GUIDETUNE_HOME", str(tmp_path / "home"))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'home' / 'guidetune.db'}"
    assert (tmp_path / "home").is_dir()
    monkeypatch.setenv("GUIDETUNE_DATABASE_URL", "postgresql://u@h:5/db")
    assert resolve_url(None) == "postgresql+psycopg://u@h:5/db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("url,message", [
    ("not a url", "is not a database URL"),
    ("sqlite:////no/such/folder/studies.db", "does not exist"),
    ("mysql://root@127.0.0.1/test", "not supported"),
    ("postgresql://postgres@127.0.0.1:1/test", "no PostgreSQL server answered"),
])
def test_bad_urls_are_refused_with_what_to_do(url, message):
    with pytest.raises(StorageURLError, match=message) as info:
        check_url(url, flag="--optuna-storage")
    assert "--optuna-storage" in str(info.value)


def test_a_password_never_appears_in_a_message():
    with pytest.raises(StorageURLError) as info:
        check_url("postgresql://postgres:s3cret@127.0.0.1:1/test")
    assert "s3cret" not in str(info.value)


def _busy() -> OperationalError:
    return OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))


def test_transient_errors_are_retried_then_reported():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise _busy()
        return "done"
    assert retrying(flaky, what="commit", retry_seconds=5.0, sleep=lambda s: None) == "done" and len(calls) == 4

    def down():
        raise _busy()
    with pytest.raises(StorageUnavailableError, match="stayed unreachable for 0.2 s while trying to commit"):
        retrying(down, what="commit", retry_seconds=0.2)


def test_other_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    with pytest.raises(IntegrityError):
        retrying(broken, what="insert", retry_seconds=5.0, sleep=lambda s: None)
    assert len(calls) == 1

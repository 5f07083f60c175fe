"""Where the store lives and how it is reached: URL resolution and checks, engines tuned per backend,
Alembic upgrades, the schema check at start-up, and retries of transient errors.

* URL: ``--storage`` / ``GUIDETUNE_DATABASE_URL``; default an SQLite file under ``GUIDETUNE_HOME``
  (default ``~/.guidetune``). ``postgresql://`` means PostgreSQL through psycopg 3.
* SQLite: WAL journal, ``synchronous=NORMAL`` (a commit costs 0.2–0.5 ms here, against ~4 ms with
  FULL; a power cut may lose the last commits, never corrupt the file), a busy timeout.
* A new empty database is migrated to the head on first use; an older or unknown schema is refused
  with the command to run.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

from .errors import SchemaVersionError, StorageUnavailableError, StorageURLError
from .schema import SCHEMA_REVISION

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
WRITE = "guidetune_write"   # execution option of connections that write (SQLite: BEGIN IMMEDIATE)


def guidetune_home() -> Path:
    return Path(os.environ.get("GUIDETUNE_HOME") or Path.home() / ".guidetune").expanduser()


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``GUIDETUNE_DATABASE_URL``, else ``sqlite:///$GUIDETUNE_HOME/guidetune.db`` (folder created)."""
    url = url or os.environ.get("GUIDETUNE_DATABASE_URL")
    if not url:
        home = guidetune_home()
        home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{home / 'guidetune.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def check_url(url: str, *, flag: str = "--storage") -> None:
    """Parse ``url`` and check what can be checked without writing: a known backend, an SQLite file's
    folder exists, a server answers. Raises ``StorageURLError`` naming ``flag``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageURLError(f"{flag} {url!r} is not a database URL; use e.g. sqlite:///path/to/studies.db "
                              "or postgresql://user@host:5432/dbname") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().resolve().parent
            if not folder.is_dir():
                raise StorageURLError(f"{flag} {url!r}: the folder {folder} does not exist; create it or choose "
                                      "another path")
        return
    if backend != "postgresql":
        raise StorageURLError(f"{flag} {url!r}: backend {backend!r} is not supported; use sqlite:///FILE or "
                              "postgresql://user@host:port/dbname")
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise StorageURLError(f"{flag} {safe_url(url)}: no PostgreSQL server answered ({reason}); check the host, port, "
                              "database name and credentials") from None
    finally:
        engine.dispose()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = not parsed.database or parsed.database == ":memory:"
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
                               **({"poolclass": StaticPool} if memory else {}))

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            dbapi_conn.isolation_level = None        # let SQLAlchemy's BEGIN below own the transaction
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA cache_size=-32000")     # 32 MB of page cache: large studies stay in memory
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # noqa: ANN001
            # a write transaction takes the write lock up front (no lock-upgrade deadlocks); a read does not
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")
        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to the head; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    with engine.connect() as conn, conn.execution_options(**{WRITE: True}).begin():
        command.upgrade(_alembic_config(conn), "head")
    return before, current_revision(engine)


def ensure_schema(engine: Engine, url: str) -> None:
    """Create the schema in an empty database; refuse an older or unknown one."""
    tables = set(inspect(engine).get_table_names())
    if not tables:
        upgrade(engine)
        return
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        raise SchemaVersionError(f"the database at {safe_url(url)} holds tables {sorted(tables)} but no guidetune schema; "
                                 "point --storage at an empty database or a guidetune one")
    raise SchemaVersionError(
        f"the database at {safe_url(url)} has schema revision {revision!r}, this guidetune needs {SCHEMA_REVISION!r}; "
        f"run `guidetune db upgrade --storage {safe_url(url)}` (back the database up first), or upgrade guidetune "
        "if the database is newer")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<malformed URL>"


def is_transient(exc: BaseException) -> bool:
    """A lost connection, a server restart, SQLite busy: worth retrying."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower() if exc.orig is not None else ""
        return any(s in text for s in ("locked", "busy", "connection", "server closed", "terminating",
                                       "shutting down", "could not receive", "could not send", "timeout",
                                       "the database system is", "eof", "consuming input failed"))
    return False


def retrying(fn: Callable[[], T], *, what: str, retry_seconds: float,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, retried with jittered exponential backoff on transient errors for ``retry_seconds``."""
    deadline = time.monotonic() + retry_seconds
    delay = 0.05
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            if time.monotonic() + delay > deadline:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
                raise StorageUnavailableError(
                    f"the study store stayed unreachable for {retry_seconds:g} s while trying to {what} ({reason}); "
                    "check that the database is up, then run the same command again to resume") from None
            sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

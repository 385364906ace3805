"""Database engines and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from wellcar.server.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any number of servers may start at once against one PostgreSQL database; this
# advisory lock makes exactly one of them run the migrations.
_PG_MIGRATION_LOCK = 0x57454C4C  # "WELL"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'wellcar.db').resolve()}"


def normalise_url(url: str) -> str:
    """Accept the URL forms people paste (postgres://, postgresql://) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # WAL lets readers run while one writer commits; busy_timeout makes concurrent
    # writers (threads or other server processes) wait instead of failing.
    # isolation_level=None hands transaction control to us (BEGIN IMMEDIATE below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


READ_ONLY = "wellcar_read_only"  # execution option: this connection only reads


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock at BEGIN: a grant decision reads counts and then
    # writes, and must not interleave with another one (max updates per period).
    # Readers (REST reads, metrics) take no lock, so they never hold up check-ins.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise DatabaseError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return create_engine(
            parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    raise DatabaseError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


# SQLite has one writer at a time. Threads of one process queue on this lock instead of
# polling SQLite's busy handler, whose sleeps made tail latency explode under load.
_SQLITE_WRITERS: dict[int, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(id(engine), threading.Lock())


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite, writers of this process take turns in order."""
    lock = _writer_lock(engine)
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock, engine.begin() as conn:
        yield conn


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent, safe under concurrency)."""
    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach the database: {exc.orig}") from exc


def null_pool_engine(url: str) -> Engine:
    """An engine without pooling, for one-off CLI work."""
    return create_engine(normalise_url(url), poolclass=NullPool)

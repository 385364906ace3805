"""On SQLite, readers never hold the write lock that check-ins need."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select, text

from wellcar.server.db import schema as t
from wellcar.server.db.engine import READ_ONLY, create_db_engine, migrate, sqlite_url


def test_open_read_does_not_block_writer(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    migrate(engine)
    with engine.connect().execution_options(**{READ_ONLY: True}) as reader:
        reader.execute(select(t.application)).all()  # a read transaction is open
        started = time.monotonic()
        with engine.begin() as writer:
            writer.execute(
                text(
                    "INSERT INTO instance (id, ip, alias, oem, oem_version, "
                    "aleph_version, created_ts) VALUES ('m', '', '', '', '', '', "
                    "'2026-01-01 00:00:00')"
                )
            )
        assert time.monotonic() - started < 5  # would wait for busy_timeout (30 s) if locked
    engine.dispose()


def test_writers_take_the_lock_at_begin(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    migrate(engine)
    with engine.begin() as first:
        first.execute(select(t.application)).all()
        # A second writer cannot even begin while the first holds the lock.
        other = create_db_engine(sqlite_url(tmp_path))
        raw = other.raw_connection()
        raw.driver_connection.execute("PRAGMA busy_timeout=100")  # type: ignore[union-attr]
        cur = raw.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            locked = False
        except Exception as exc:
            locked = "locked" in str(exc)
        finally:
            raw.close()
            other.dispose()
    assert locked
    engine.dispose()

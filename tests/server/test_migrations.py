"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from wellcar.server.db.engine import (
    create_db_engine,
    current_revision,
    head_revision,
    migrate,
    sqlite_url,
)
from wellcar.server.db.schema import metadata


def _assert_matches(url: str) -> None:
    engine = create_db_engine(url)
    migrate(engine)
    migrate(engine)  # a second start changes nothing
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"application", "groups", "instance_application", "activity"} <= tables


def test_sqlite_schema(tmp_path: Path) -> None:
    _assert_matches(sqlite_url(tmp_path))


@pytest.mark.postgres
def test_postgres_schema(postgres_url: str) -> None:
    _assert_matches(postgres_url)

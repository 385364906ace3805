"""Alembic environment: runs on the connection the server hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from wellcar.server.db.schema import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` run by hand
    raise RuntimeError("run migrations through wellcar.server.db.engine.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""Nebraska's "fake" instances, which never count in lists, totals or statistics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_

# Ids like "{uuid}", left by old Nebraska test tooling.
FAKE_INSTANCE_PATTERN = "{________-____-____-____-____________}"


def not_fake(column: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), column.not_like(FAKE_INSTANCE_PATTERN))

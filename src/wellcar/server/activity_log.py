"""The activity feed: rollouts started, finished and failed, packages missing."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import ActivityClass, Severity

_INSERT_ACTIVITY = insert(t.activity)
_a = t.activity
_RECENT = (
    select(_a.c.id)
    .where(
        _a.c["class"] == bindparam("b_class"),
        _a.c.application_id == bindparam("b_app_id"),
        _a.c.group_id == bindparam("b_group_id"),
        _a.c.version == bindparam("b_version"),
        _a.c.created_ts > bindparam("b_since"),
    )
    .limit(1)
)


def add_activity(
    conn: Connection,
    cls: ActivityClass,
    severity: Severity,
    version: str,
    app_id: str,
    now: datetime,
    *,
    group_id: str | None = None,
    channel_id: str | None = None,
    instance_id: str | None = None,
) -> None:
    conn.execute(
        _INSERT_ACTIVITY,
        {
            "class": int(cls),
            "severity": int(severity),
            "version": version,
            "application_id": app_id,
            "group_id": group_id,
            "channel_id": channel_id,
            "instance_id": instance_id,
            "created_ts": now,
        },
    )


def has_recent_activity(
    conn: Connection,
    cls: ActivityClass,
    app_id: str,
    group_id: str,
    version: str,
    now: datetime,
    within: timedelta,
) -> bool:
    params = {
        "b_class": int(cls),
        "b_app_id": app_id,
        "b_group_id": group_id,
        "b_version": version,
        "b_since": now - within,
    }
    return conn.execute(_RECENT, params).first() is not None

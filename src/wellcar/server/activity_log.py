"""The activity feed: rollouts started, finished and failed, packages missing."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import ActivityClass, Severity


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
        insert(t.activity).values(
            {
                "class": int(cls),
                "severity": int(severity),
                "version": version,
                "application_id": app_id,
                "group_id": group_id,
                "channel_id": channel_id,
                "instance_id": instance_id,
                "created_ts": now,
            }
        )
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
    a = t.activity
    found = conn.execute(
        select(a.c.id)
        .where(
            a.c["class"] == int(cls),
            a.c.application_id == app_id,
            a.c.group_id == group_id,
            a.c.version == version,
            a.c.created_ts > now - within,
        )
        .limit(1)
    ).first()
    return found is not None

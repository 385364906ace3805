"""The activity feed as the REST API reads it (rollouts, failures, channel changes).

Entries are written by `wellcar.server.activity_log`. Semantics follow Nebraska's
`backend/pkg/api/activity.go`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.engine import Connection

from wellcar.server.data.fake_instances import not_fake
from wellcar.server.db import schema as t
from wellcar.server.errors import InvalidInput

DEFAULT_ACTIVITY_SPAN = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Activity:
    id: str
    app_id: str
    group_id: str | None
    channel_id: str | None
    created_ts: datetime
    class_: int  # "class" in JSON
    severity: int
    version: str
    application_name: str
    group_name: str | None
    channel_name: str | None
    instance_id: str | None


@dataclass(frozen=True, slots=True)
class ActivityPage:
    total: int
    activities: list[Activity]


@dataclass(frozen=True, slots=True)
class ActivityQuery:
    now: datetime
    app_id: str | None = None
    group_id: str | None = None
    channel_id: str | None = None
    instance_id: str | None = None
    version: str | None = None
    severity: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 10
    offset: int = 0


def list_activity(conn: Connection, q: ActivityQuery) -> ActivityPage:
    """Newest first, with application/group/channel names (Nebraska's activityPage)."""
    a = t.activity
    app = t.application
    g = t.groups
    c = t.channel
    start = q.start if q.start is not None else q.now - DEFAULT_ACTIVITY_SPAN
    end = q.end if q.end is not None else q.now
    if start > end:
        raise InvalidInput("start: must not be after end")
    conds: list[ColumnElement[bool]] = [a.c.created_ts >= start, a.c.created_ts <= end]
    if q.app_id:
        conds.append(a.c.application_id == q.app_id)
    if q.group_id:
        conds.append(a.c.group_id == q.group_id)
    if q.channel_id:
        conds.append(a.c.channel_id == q.channel_id)
    if q.instance_id:
        conds.append(a.c.instance_id == q.instance_id)
    else:
        conds.append(not_fake(a.c.instance_id))
    if q.version:
        conds.append(a.c.version == q.version)
    if q.severity:
        conds.append(a.c.severity == q.severity)
    source = (
        a.join(app, app.c.id == a.c.application_id)
        .outerjoin(g, g.c.id == a.c.group_id)
        .outerjoin(c, c.c.id == a.c.channel_id)
    )
    total = int(conn.execute(select(func.count()).select_from(source).where(*conds)).scalar_one())
    rows = conn.execute(
        select(
            a,
            app.c.name.label("application_name"),
            g.c.name.label("group_name"),
            c.c.name.label("channel_name"),
        )
        .select_from(source)
        .where(*conds)
        .order_by(a.c.created_ts.desc(), a.c.id.desc())
        .limit(q.limit)
        .offset(q.offset)
    ).all()
    entries = [
        Activity(
            id=str(r.id),
            app_id=r.application_id,
            group_id=r.group_id,
            channel_id=r.channel_id,
            created_ts=r.created_ts,
            class_=r._mapping["class"],
            severity=r.severity,
            version=r.version,
            application_name=r.application_name,
            group_name=r.group_name,
            channel_name=r.channel_name,
            instance_id=r.instance_id,
        )
        for r in rows
    ]
    return ActivityPage(total=total, activities=entries)

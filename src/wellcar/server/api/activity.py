"""/api/activity: the feed of rollouts, failures and channel changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from wellcar.server.data import activity as data
from wellcar.server.data.applications import resolve_app
from wellcar.server.errors import InvalidInput

from . import endpoints as ep
from .common import EngineDep, PageParam, PerPageParam, make_router, paging, read_tx
from .deps import Now, Reader
from .endpoints import register
from .models import Activity, ActivityPage

router = make_router("activity")


def parse_time(name: str, value: str | None) -> datetime | None:
    """RFC 3339 (or a bare date) to naive UTC; naive input counts as UTC."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name}: {value!r} is not an RFC 3339 time like 2026-11-18T10:00:00Z"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


@register(router, ep.LIST_ACTIVITY)
def list_activity(
    _: Reader,
    engine: EngineDep,
    now: Now,
    app: Annotated[
        str | None, Query(alias="appIDorProductID", description="application id or product id")
    ] = None,
    app_short: Annotated[
        str | None, Query(alias="app", description="same as appIDorProductID")
    ] = None,
    group_id: Annotated[str | None, Query(alias="groupID")] = None,
    group: Annotated[str | None, Query(description="same as groupID")] = None,
    channel_id: Annotated[str | None, Query(alias="channelID")] = None,
    channel: Annotated[str | None, Query(description="same as channelID")] = None,
    instance_id: Annotated[str | None, Query(alias="instanceID")] = None,
    instance: Annotated[str | None, Query(description="same as instanceID")] = None,
    version: str | None = None,
    severity: Annotated[int | None, Query(ge=1, le=4, description="1 success ... 4 error")] = None,
    start: Annotated[str | None, Query(description="RFC 3339; default 3 days ago")] = None,
    end: Annotated[str | None, Query(description="RFC 3339; default now")] = None,
    page: PageParam = 1,
    perpage: PerPageParam = 10,
) -> ActivityPage:
    """Activity entries, newest first, with application, group and channel names."""
    limit, offset = paging(page, perpage)
    app_ref = app or app_short
    with read_tx(engine) as conn:
        query = data.ActivityQuery(
            now=now,
            app_id=resolve_app(conn, app_ref) if app_ref else None,
            group_id=group_id or group,
            channel_id=channel_id or channel,
            instance_id=instance_id or instance,
            version=version,
            severity=severity,
            start=parse_time("start", start),
            end=parse_time("end", end),
            limit=limit,
            offset=offset,
        )
        found = data.list_activity(conn, query)
    entries = [Activity.model_validate(a) for a in found.activities]
    return ActivityPage(totalCount=found.total, count=len(entries), activities=entries)

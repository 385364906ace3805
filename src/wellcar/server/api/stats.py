"""Per-group statistics: version breakdown, version and status timelines, status counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from wellcar.server.data import stats as data
from wellcar.server.data.applications import resolve_app
from wellcar.server.data.groups import get_group, group_row

from . import endpoints as ep
from .common import EngineDep, make_router, read_tx
from .deps import Now, Reader
from .endpoints import register
from .models import (
    InstancesStats,
    StatusTimeline,
    VersionBreakdownEntry,
    VersionTimeline,
    utc_iso,
)

router = make_router("statistics")

Duration = Annotated[str, Query(description="1h, 1d, 7d or 30d")]


@register(router, ep.VERSION_BREAKDOWN)
def version_breakdown(
    _: Reader, engine: EngineDep, now: Now, app_id: str, group_id: str
) -> list[VersionBreakdownEntry]:
    """Versions run by the group's instances seen in the last 24 hours."""
    with read_tx(engine) as conn:
        group = group_row(conn, resolve_app(conn, app_id), group_id)
        breakdown = data.version_breakdown(conn, group.id, now)
    return [VersionBreakdownEntry.model_validate(entry) for entry in breakdown]


@register(router, ep.VERSION_TIMELINE)
def version_timeline(
    _: Reader, engine: EngineDep, now: Now, app_id: str, group_id: str, duration: Duration = "1d"
) -> VersionTimeline:
    """For each time step of the window: instances per version (RFC 3339 -> version -> n)."""
    with read_tx(engine) as conn:
        group = group_row(conn, resolve_app(conn, app_id), group_id)
        timeline = data.version_timeline(conn, group.id, duration, now)
    return {utc_iso(at): counts for at, counts in timeline.items()}


@register(router, ep.STATUS_TIMELINE)
def status_timeline(
    _: Reader, engine: EngineDep, now: Now, app_id: str, group_id: str, duration: Duration = "1d"
) -> StatusTimeline:
    """For each time step: status changes in the step before it (time -> status -> version -> n)."""
    with read_tx(engine) as conn:
        group = group_row(conn, resolve_app(conn, app_id), group_id)
        timeline = data.status_timeline(conn, group.id, duration, now)
    return {utc_iso(at): changes for at, changes in timeline.items()}


@register(router, ep.INSTANCES_STATS)
def instances_stats(
    _: Reader, engine: EngineDep, now: Now, app_id: str, group_id: str, duration: Duration = "1d"
) -> InstancesStats:
    """The group's instances seen within the window, by status."""
    with read_tx(engine) as conn:
        group = get_group(conn, resolve_app(conn, app_id), group_id)
        package = group.channel.package if group.channel else None
        version = package.version if package else None
        stats = data.instances_stats(conn, group.id, version, duration, now)
    return InstancesStats.model_validate(stats)

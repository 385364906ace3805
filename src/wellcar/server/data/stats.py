"""Per-group statistics: version breakdown, status counts, version and status timelines.

Queries only filter and aggregate with portable SQL; time buckets are computed in Python,
so the same code serves SQLite and PostgreSQL. Semantics follow Nebraska's
`backend/pkg/api/internal/dbreads` (groups.go).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, func, or_, select, type_coerce
from sqlalchemy.engine import Connection

from wellcar.server.data.durations import parse_duration
from wellcar.server.data.fake_instances import not_fake
from wellcar.server.data.instances import is_undefined
from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import InstanceStatus
from wellcar.server.policy import ACTIVITY_WINDOW
from wellcar.server.semver import sort_key

ia = t.instance_application


@dataclass(frozen=True, slots=True)
class VersionBreakdownEntry:
    version: str
    instances: int
    percentage: float


@dataclass(frozen=True, slots=True)
class InstancesStats:
    total: int
    undefined: int
    update_granted: int
    error: int
    complete: int
    installed: int
    downloaded: int
    downloading: int
    onhold: int


# time -> version -> instances
VersionTimeline = dict[datetime, dict[str, int]]
# time -> status ("1".."8") -> version -> status changes
StatusTimeline = dict[datetime, dict[str, dict[str, int]]]


def _nightly(version: str) -> bool:
    return "nightly" in version


def version_breakdown(
    conn: Connection, group_id: str, now: datetime
) -> list[VersionBreakdownEntry]:
    """Versions of the group's instances seen in the last 24 h, newest version first."""
    rows = conn.execute(
        select(ia.c.version, func.count().label("n"))
        .where(
            ia.c.group_id == group_id,
            ia.c.last_check_for_updates > now - ACTIVITY_WINDOW,
            not_fake(ia.c.instance_id),
        )
        .group_by(ia.c.version)
    ).all()
    total = sum(int(r.n) for r in rows)
    entries = [
        VersionBreakdownEntry(
            version=r.version, instances=int(r.n), percentage=int(r.n) * 100.0 / total
        )
        for r in rows
    ]
    entries.sort(key=lambda e: (sort_key(e.version), e.version), reverse=True)
    return entries


def instances_stats(
    conn: Connection, group_id: str, channel_version: str | None, duration: str, now: datetime
) -> InstancesStats:
    """Instances per status over the window; Nebraska counts an instance without a status
    that already runs the channel's version as complete."""
    window, _step = parse_duration(duration)
    undefined = is_undefined(ia.c.status)
    if channel_version:
        undefined_expr = and_(undefined, ia.c.version != channel_version)
        complete_expr = or_(
            and_(undefined, ia.c.version == channel_version),
            ia.c.status == int(InstanceStatus.COMPLETE),
        )
    else:
        undefined_expr = undefined
        complete_expr = ia.c.status == int(InstanceStatus.COMPLETE)

    def total_of(cond: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    def status_is(s: InstanceStatus) -> ColumnElement[bool]:
        return ia.c.status == int(s)

    row = conn.execute(
        select(
            func.count().label("total"),
            total_of(undefined_expr).label("undefined"),
            total_of(status_is(InstanceStatus.UPDATE_GRANTED)).label("update_granted"),
            total_of(status_is(InstanceStatus.ERROR)).label("error"),
            total_of(complete_expr).label("complete"),
            total_of(status_is(InstanceStatus.INSTALLED)).label("installed"),
            total_of(status_is(InstanceStatus.DOWNLOADED)).label("downloaded"),
            total_of(status_is(InstanceStatus.DOWNLOADING)).label("downloading"),
            total_of(status_is(InstanceStatus.ON_HOLD)).label("onhold"),
        ).where(
            ia.c.group_id == group_id,
            ia.c.last_check_for_updates > now - window,
            not_fake(ia.c.instance_id),
        )
    ).one()
    return InstancesStats(**{k: int(v) for k, v in row._mapping.items()})


def _raw_time(column: ColumnElement[datetime]) -> ColumnElement[Any]:
    """A timestamp column fetched without SQLAlchemy's SQLite DateTime processing (a regex
    per value, most of a 100k-row timeline's time): SQLite gives the stored ISO text,
    PostgreSQL's driver a datetime; _as_datetime reads either."""
    return type_coerce(column, String)


def _as_datetime(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _time_series(now: datetime, duration: str) -> tuple[list[datetime], timedelta]:
    window, step = parse_duration(duration)
    count = int(window / step)
    return [now - window + step * i for i in range(count + 1)], step


@dataclass(slots=True)
class _Completion:
    at: datetime
    version: str
    previous: str | None  # the version before it, from the completing event


def version_timeline(
    conn: Connection, group_id: str, duration: str, now: datetime
) -> VersionTimeline:
    """Instances per version at each time step of the window (Nebraska's version_timeline).

    Counts the group's instances seen within the window. At each step an instance counts
    under the version it ran then: that of its last completed update (status Complete in
    its history) before the step, or, before its first completed update in the window,
    the previous version its completing event reported; otherwise its current version.
    Instances count from their registration on; nightly versions are left out (Nebraska).
    """
    spans, _step = _time_series(now, duration)
    window_start = spans[0]
    instances = conn.execute(
        select(ia.c.instance_id, ia.c.version, _raw_time(ia.c.created_ts)).where(
            ia.c.group_id == group_id,
            ia.c.last_check_for_updates >= window_start,
            not_fake(ia.c.instance_id),
        )
    ).all()
    h = t.instance_status_history
    e = t.event
    # Completed updates in the window. Filtered to the active instances in Python: joining
    # instance_application here lets SQLite pick a quadratic plan.
    completed = conn.execute(
        select(h.c.instance_id, h.c.version, _raw_time(h.c.created_ts), e.c.previous_version)
        .select_from(
            h.outerjoin(
                e,
                and_(
                    e.c.instance_id == h.c.instance_id,
                    e.c.created_ts == h.c.created_ts,
                    e.c.application_id == h.c.application_id,
                    e.c.type == 3,
                ),
            )
        )
        .where(
            h.c.group_id == group_id,
            h.c.created_ts >= window_start,
            h.c.status == int(InstanceStatus.COMPLETE),
        )
        .order_by(h.c.instance_id, h.c.created_ts)
    ).all()
    registered = [(i, v, _as_datetime(c)) for i, v, c in instances]
    active = {i for i, _, _ in registered}
    history: dict[str, list[_Completion]] = defaultdict(list)
    for instance_id, version, raw_at, previous in completed:
        if instance_id not in active:
            continue
        at = _as_datetime(raw_at)
        entries = history[instance_id]
        if entries and entries[-1].at == at:
            entries[-1].previous = entries[-1].previous or previous
            continue
        entries.append(_Completion(at, version or "", previous))

    per_span = versions_per_span(spans, registered, history)
    versions = sorted({v for counts in per_span for v in counts}, key=sort_key)
    return {
        ts: {v: per_span[i].get(v, 0) for v in versions}
        for i, ts in reversed(list(enumerate(spans)))
    }


def versions_per_span(
    spans: list[datetime],
    instances: list[tuple[str, str, datetime]],
    history: dict[str, list[_Completion]],
) -> list[dict[str, int]]:
    """How many instances ran each version at each time of ``spans``.

    An instance counts from its registration on: at a time, under the version of its last
    completed update at or before it, before its first one under the version that update
    reported as previous, and without completed updates under its current version.
    Nightly versions are not counted. Each instance adds a few intervals to a per-version
    difference array (one +1 where it starts running a version, one -1 where it stops), so
    the cost is the number of completions plus versions × times, not instances × times.
    """
    n = len(spans)
    changes: dict[str, list[int]] = defaultdict(lambda: [0] * (n + 1))

    def runs(version: str | None, start: int, stop: int) -> None:
        if version and stop > start and not _nightly(version):
            changes[version][start] += 1
            changes[version][stop] -= 1

    for instance_id, version, created in instances:
        start = bisect.bisect_left(spans, created)
        if start >= n:
            continue
        completions = history.get(instance_id)
        if not completions:
            runs(version, start, n)
            continue
        previous = completions[0].previous
        current = None if not previous or previous == "0.0.0.0" else previous
        position = start
        for completion in completions:
            # The first time at or after the completion: from there on it runs its version.
            begins = max(bisect.bisect_left(spans, completion.at), start)
            if begins > position:
                runs(current, position, begins)
                position = begins
            current = completion.version
        runs(current, position, n)
    per_span: list[dict[str, int]] = [{} for _ in spans]
    for version, deltas in changes.items():
        running = 0
        for i in range(n):
            running += deltas[i]
            if running:
                per_span[i][version] = running
    return per_span


def status_timeline(
    conn: Connection, group_id: str, duration: str, now: datetime
) -> StatusTimeline:
    """Status changes per step: for each time, the changes in the step before it, by
    status and version (Nebraska's status_timeline)."""
    spans, step = _time_series(now, duration)
    h = t.instance_status_history
    rows = conn.execute(
        select(h.c.status, h.c.version, _raw_time(h.c.created_ts)).where(
            h.c.group_id == group_id,
            h.c.created_ts >= spans[0] - step,
            h.c.created_ts < now,
            not_fake(h.c.instance_id),
        )
    ).all()
    buckets: dict[datetime, dict[str, dict[str, int]]] = {ts: {} for ts in spans}
    statuses: set[str] = set()
    for status, row_version, raw_created in rows:
        created = _as_datetime(raw_created)
        # The step ending at `ts` holds changes in [ts - step, ts).
        i = bisect.bisect_right(spans, created)
        for ts in spans[i : i + 1]:
            if ts - step <= created < ts:
                by_version = buckets[ts].setdefault(str(status), {})
                version = row_version or ""
                by_version[version] = by_version.get(version, 0) + 1
                statuses.add(str(status))
    for bucket in buckets.values():
        for status in statuses:
            bucket.setdefault(status, {})
    return {ts: buckets[ts] for ts in reversed(spans)}

"""Read side of the fleet for the REST API: instances, activity, per-group statistics.

Queries only filter and aggregate with portable SQL; time buckets are computed in Python,
so the same code serves SQLite and PostgreSQL. Semantics follow Nebraska's
`backend/pkg/api/internal/dbreads` (instances.go, groups.go, activity.go).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from wellcar.server.api import models as m
from wellcar.server.db import schema as t
from wellcar.server.errors import InvalidInput, NotFound
from wellcar.server.fleet_codes import InstanceStatus
from wellcar.server.fleet_queries import not_fake, version_key
from wellcar.server.policy import ACTIVITY_WINDOW

ia = t.instance_application
inst = t.instance

# duration parameter -> (window, bucket step), as Nebraska's durationCodeToPostgresTimings.
DURATIONS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=15)),
    "1d": (timedelta(days=1), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(days=1)),
    "30d": (timedelta(days=30), timedelta(days=3)),
}
DEFAULT_ACTIVITY_SPAN = timedelta(days=3)


def parse_duration(value: str) -> tuple[timedelta, timedelta]:
    try:
        return DURATIONS[value.strip()]
    except KeyError:
        raise InvalidInput(f"duration: {value!r} is not one of {', '.join(DURATIONS)}") from None


def _undefined(status: Any) -> ColumnElement[bool]:
    # Nebraska leaves a new instance's status NULL; Wellcar may also store 1 (Undefined).
    return or_(status.is_(None), status == int(InstanceStatus.UNDEFINED))


def _nightly(version: str) -> bool:
    return "nightly" in version


# ----------------------------------------------------------------------------- instances

SORT_COLUMNS = {"0": "alias", "alias": "alias", "id": "alias", "1": "ip", "ip": "ip",
                "2": "last_check_for_updates",
                "last_check_for_updates": "last_check_for_updates"}  # fmt: skip
SEARCH_FIELDS = ("all", "alias", "id", "ip")


@dataclass(frozen=True, slots=True)
class InstanceQuery:
    app_id: str
    group_id: str
    now: datetime
    duration: str = "30d"
    status: int = 0  # 0: any
    version: str = ""
    search_field: str = "All"
    search_value: str = ""
    sort: str = "0"
    descending: bool = True
    limit: int = 10
    offset: int = 0


def _instance_filters(q: InstanceQuery) -> list[ColumnElement[bool]]:
    window, _step = parse_duration(q.duration)
    conds: list[ColumnElement[bool]] = [
        ia.c.group_id == q.group_id,
        ia.c.application_id == q.app_id,
        ia.c.last_check_for_updates > q.now - window,
        not_fake(ia.c.instance_id),
    ]
    if q.status == int(InstanceStatus.UNDEFINED):
        conds.append(_undefined(ia.c.status))
    elif q.status:
        if q.status not in {int(s) for s in InstanceStatus}:
            raise InvalidInput(f"status: {q.status} is not an instance status (0 for any, 1-8)")
        conds.append(ia.c.status == q.status)
    if q.version:
        conds.append(ia.c.version == q.version.strip())
    value = q.search_value.strip()
    if value:
        field = q.search_field.strip().lower() or "all"
        if field not in SEARCH_FIELDS:
            raise InvalidInput(f"searchFilter: {q.search_field!r} is not one of All, alias, id, ip")
        matches = {
            "alias": inst.c.alias.icontains(value, autoescape=True),
            "id": inst.c.id.icontains(value, autoescape=True),
            "ip": inst.c.ip.contains(value, autoescape=True),
        }
        conds.append(or_(*matches.values()) if field == "all" else matches[field])
    return conds


def _needs_instance_join(q: InstanceQuery) -> bool:
    return bool(q.search_value.strip())


def count_instances(conn: Connection, q: InstanceQuery) -> int:
    source = ia.join(inst, inst.c.id == ia.c.instance_id) if _needs_instance_join(q) else ia
    query = select(func.count()).select_from(source).where(*_instance_filters(q))
    return int(conn.execute(query).scalar_one())


def _instance_model(r: Any, with_app: bool = True) -> m.Instance:
    application = None
    if with_app:
        application = m.InstanceApplication(
            instance_id=r["instance_id"],
            application_id=r["application_id"],
            group_id=r["group_id"],
            version=r["version"],
            created_ts=r["app_created_ts"],
            status=r["status"],
            last_check_for_updates=r["last_check_for_updates"],
            last_update_granted_ts=r["last_update_granted_ts"],
            last_update_version=r["last_update_version"],
            update_in_progress=bool(r["update_in_progress"]),
        )
    return m.Instance(
        id=r["id"],
        ip=r["ip"],
        created_ts=r["created_ts"],
        alias=r["alias"],
        oem=r["oem"],
        oem_version=r["oem_version"],
        aleph_version=r["aleph_version"],
        application=application,
    )


def _instance_select() -> Select[Any]:
    return select(
        inst,
        ia.c.instance_id,
        ia.c.application_id,
        ia.c.group_id,
        ia.c.version,
        ia.c.created_ts.label("app_created_ts"),
        ia.c.status,
        ia.c.last_check_for_updates,
        ia.c.last_update_granted_ts,
        ia.c.last_update_version,
        ia.c.update_in_progress,
    ).select_from(ia.join(inst, inst.c.id == ia.c.instance_id))


def list_instances(conn: Connection, q: InstanceQuery) -> m.InstancesPage:
    """One page of a group's instances and the total matching (Nebraska's instancePage)."""
    sort = SORT_COLUMNS.get(q.sort.strip().lower() if q.sort else "0")
    if sort is None:
        raise InvalidInput(
            f"sortFilter: {q.sort!r} is not one of 0/alias, 1/ip, 2/last_check_for_updates"
        )
    total = count_instances(conn, q)
    key: Any
    if sort == "alias":
        # Nebraska shows (and sorts by) the alias, or the machine id when there is none.
        key = case((inst.c.alias != "", inst.c.alias), else_=inst.c.id)
    elif sort == "ip":
        key = inst.c.ip
    else:
        key = ia.c.last_check_for_updates
    order = [key.desc(), inst.c.id.desc()] if q.descending else [key.asc(), inst.c.id.asc()]
    rows = conn.execute(
        _instance_select().where(*_instance_filters(q)).order_by(*order).limit(q.limit)
        .offset(q.offset)
    ).all()  # fmt: skip
    instances = []
    for row in rows:
        model = _instance_model(row._mapping)
        if not model.alias:
            model.alias = model.id  # as Nebraska's list: the alias, or the id
        instances.append(model)
    return m.InstancesPage(total=total, instances=instances)


def get_instance(conn: Connection, app_id: str, instance_id: str) -> m.Instance:
    row = conn.execute(
        _instance_select().where(ia.c.application_id == app_id, ia.c.instance_id == instance_id)
    ).first()
    if row is None:
        raise NotFound(f"no instance {instance_id!r} in application {app_id}")
    return _instance_model(row._mapping)


def update_instance_alias(conn: Connection, instance_id: str, alias: str) -> m.Instance:
    result = conn.execute(update(inst).where(inst.c.id == instance_id).values(alias=alias.strip()))
    if result.rowcount == 0:
        raise NotFound(f"no instance {instance_id!r}")
    row = conn.execute(select(inst).where(inst.c.id == instance_id)).one()
    return _instance_model(row._mapping, with_app=False)


def status_history(
    conn: Connection, app_id: str, group_id: str, instance_id: str, limit: int
) -> list[m.StatusHistoryEntry]:
    """Newest first; an Error entry carries the error code of the event that caused it."""
    h = t.instance_status_history
    exists = conn.execute(
        select(ia.c.instance_id).where(
            ia.c.instance_id == instance_id, ia.c.application_id == app_id
        )
    ).first()
    if exists is None:
        raise NotFound(f"no instance {instance_id!r} in application {app_id}")
    rows = conn.execute(
        select(h.c.status, h.c.version, h.c.created_ts)
        .where(
            h.c.instance_id == instance_id, h.c.application_id == app_id, h.c.group_id == group_id
        )
        .order_by(h.c.created_ts.desc(), h.c.id.desc())
        .limit(limit)
    ).all()
    codes: dict[datetime, str | None] = {}
    error_times = [r.created_ts for r in rows if r.status == int(InstanceStatus.ERROR)]
    if error_times:
        e = t.event
        for ev in conn.execute(
            select(e.c.created_ts, e.c.error_code).where(
                e.c.instance_id == instance_id,
                e.c.application_id == app_id,
                e.c.created_ts.in_(error_times),
            )
        ):
            if ev.error_code is not None or ev.created_ts not in codes:
                codes[ev.created_ts] = ev.error_code
    return [
        m.StatusHistoryEntry(
            status=r.status,
            version=r.version or "",
            created_ts=r.created_ts,
            error_code=codes.get(r.created_ts) if r.status == int(InstanceStatus.ERROR) else None,
        )
        for r in rows
    ]


# ------------------------------------------------------------------------------ activity


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


def list_activity(conn: Connection, q: ActivityQuery) -> m.ActivityPage:
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
        m.Activity(
            id=str(r.id),
            app_id=r.application_id,
            group_id=r.group_id,
            channel_id=r.channel_id,
            created_ts=r.created_ts,
            **{"class": r._mapping["class"]},
            severity=r.severity,
            version=r.version,
            application_name=r.application_name,
            group_name=r.group_name,
            channel_name=r.channel_name,
            instance_id=r.instance_id,
        )
        for r in rows
    ]
    return m.ActivityPage(totalCount=total, count=len(entries), activities=entries)


# ------------------------------------------------------------------------- group stats


def version_breakdown(
    conn: Connection, group_id: str, now: datetime
) -> list[m.VersionBreakdownEntry]:
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
        m.VersionBreakdownEntry(
            version=r.version, instances=int(r.n), percentage=int(r.n) * 100.0 / total
        )
        for r in rows
    ]
    entries.sort(key=lambda e: (version_key(e.version), e.version), reverse=True)
    return entries


def instances_stats(
    conn: Connection, group_id: str, channel_version: str | None, duration: str, now: datetime
) -> m.InstancesStats:
    """Instances per status over the window; Nebraska counts an instance without a status
    that already runs the channel's version as complete."""
    window, _step = parse_duration(duration)
    undefined = _undefined(ia.c.status)
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
    return m.InstancesStats(**{k: int(v) for k, v in row._mapping.items()})


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
) -> m.VersionTimeline:
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
        select(ia.c.instance_id, ia.c.version, ia.c.created_ts).where(
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
        select(h.c.instance_id, h.c.version, h.c.created_ts, e.c.previous_version)
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
    active = {r.instance_id for r in instances}
    history: dict[str, list[_Completion]] = defaultdict(list)
    for instance_id, version, at, previous in completed:
        if instance_id not in active:
            continue
        entries = history[instance_id]
        if entries and entries[-1].at == at:
            entries[-1].previous = entries[-1].previous or previous
            continue
        entries.append(_Completion(at, version or "", previous))

    per_span: list[dict[str, int]] = [defaultdict(int) for _ in spans]
    # Instances without a completed update in the window count under their version from
    # their registration on: a bisect over sorted registration times per version.
    steady: dict[str, list[datetime]] = defaultdict(list)
    for instance_id, version, created in instances:
        completions = history.get(instance_id)
        if completions is None:
            if not _nightly(version):
                steady[version].append(created)
            continue
        before = completions[0].previous
        if not before or before == "0.0.0.0":
            before = None
        k = 0
        for i in range(bisect.bisect_left(spans, created), len(spans)):
            while k < len(completions) and completions[k].at <= spans[i]:
                k += 1
            ran = completions[k - 1].version if k else before
            if ran and not _nightly(ran):
                per_span[i][ran] += 1
    for version, registered in steady.items():
        registered.sort()
        for i, ts in enumerate(spans):
            n = bisect.bisect_right(registered, ts)
            if n:
                per_span[i][version] += n
    versions = sorted({v for counts in per_span for v in counts}, key=version_key)
    return {
        m.utc_iso(ts): {v: per_span[i].get(v, 0) for v in versions}
        for i, ts in reversed(list(enumerate(spans)))
    }


def status_timeline(
    conn: Connection, group_id: str, duration: str, now: datetime
) -> m.StatusTimeline:
    """Status changes per step: for each time, the changes in the step before it, by
    status and version (Nebraska's status_timeline)."""
    spans, step = _time_series(now, duration)
    h = t.instance_status_history
    rows = conn.execute(
        select(h.c.status, h.c.version, h.c.created_ts).where(
            h.c.group_id == group_id,
            h.c.created_ts >= spans[0] - step,
            h.c.created_ts < now,
            not_fake(h.c.instance_id),
        )
    ).all()
    buckets: dict[datetime, dict[str, dict[str, int]]] = {ts: {} for ts in spans}
    statuses: set[str] = set()
    for r in rows:
        # The step ending at `ts` holds changes in [ts - step, ts).
        i = bisect.bisect_right(spans, r.created_ts)
        for ts in spans[i : i + 1]:
            if ts - step <= r.created_ts < ts:
                by_version = buckets[ts].setdefault(str(r.status), {})
                version = r.version or ""
                by_version[version] = by_version.get(version, 0) + 1
                statuses.add(str(r.status))
    for bucket in buckets.values():
        for status in statuses:
            bucket.setdefault(status, {})
    return {m.utc_iso(ts): buckets[ts] for ts in reversed(spans)}

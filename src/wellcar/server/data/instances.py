"""Instances (machines) as the REST API lists them: per group, with their status history.

Queries only filter with portable SQL, so the same code serves SQLite and PostgreSQL.
Semantics follow Nebraska's `backend/pkg/api/instances.go`. Registering instances and
their status changes on check-in is `wellcar.server.instances` (the Omaha write path).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from wellcar.server.data.durations import parse_duration
from wellcar.server.data.fake_instances import not_fake
from wellcar.server.db import schema as t
from wellcar.server.errors import InvalidInput, NotFound
from wellcar.server.fleet_codes import InstanceStatus

ia = t.instance_application
inst = t.instance


@dataclass(frozen=True, slots=True)
class InstanceApplication:
    """The instance's state for one application."""

    instance_id: str
    application_id: str
    group_id: str | None
    version: str
    created_ts: datetime
    status: int | None
    last_check_for_updates: datetime
    last_update_granted_ts: datetime | None
    last_update_version: str | None
    update_in_progress: bool


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    ip: str
    created_ts: datetime
    alias: str
    oem: str
    oem_version: str
    aleph_version: str
    application: InstanceApplication | None


@dataclass(frozen=True, slots=True)
class InstancesPage:
    total: int
    instances: list[Instance]


@dataclass(frozen=True, slots=True)
class StatusHistoryEntry:
    status: int
    version: str
    created_ts: datetime
    error_code: str | None


def is_undefined(status: Any) -> ColumnElement[bool]:
    # Nebraska leaves a new instance's status NULL; Wellcar may also store 1 (Undefined).
    return or_(status.is_(None), status == int(InstanceStatus.UNDEFINED))


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
        conds.append(is_undefined(ia.c.status))
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


def _instance(r: Any, *, with_app: bool = True, alias: str | None = None) -> Instance:
    application = None
    if with_app:
        application = InstanceApplication(
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
    return Instance(
        id=r["id"],
        ip=r["ip"],
        created_ts=r["created_ts"],
        alias=r["alias"] if alias is None else alias,
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


def list_instances(conn: Connection, q: InstanceQuery) -> InstancesPage:
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
    # As Nebraska's list: the alias, or the machine id when there is none.
    instances = [_instance(r._mapping, alias=r._mapping["alias"] or r._mapping["id"]) for r in rows]
    return InstancesPage(total=total, instances=instances)


def get_instance(conn: Connection, app_id: str, instance_id: str) -> Instance:
    row = conn.execute(
        _instance_select().where(ia.c.application_id == app_id, ia.c.instance_id == instance_id)
    ).first()
    if row is None:
        raise NotFound(f"no instance {instance_id!r} in application {app_id}")
    return _instance(row._mapping)


def update_instance_alias(conn: Connection, instance_id: str, alias: str) -> Instance:
    result = conn.execute(update(inst).where(inst.c.id == instance_id).values(alias=alias.strip()))
    if result.rowcount == 0:
        raise NotFound(f"no instance {instance_id!r}")
    row = conn.execute(select(inst).where(inst.c.id == instance_id)).one()
    return _instance(row._mapping, with_app=False)


def status_history(
    conn: Connection, app_id: str, group_id: str, instance_id: str, limit: int
) -> list[StatusHistoryEntry]:
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
        StatusHistoryEntry(
            status=r.status,
            version=r.version or "",
            created_ts=r.created_ts,
            error_code=codes.get(r.created_ts) if r.status == int(InstanceStatus.ERROR) else None,
        )
        for r in rows
    ]

"""Instance registration and status changes (with their history), as Nebraska does them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, insert, select, update
from sqlalchemy.engine import Connection

from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import ENDS_UPDATE_STATUSES, InstanceStatus

# A check-in refreshes last_check_for_updates at most this often, unless something changed:
# most check-ins then only read (Nebraska does the same).
REFRESH_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    machine_id: str
    ip: str
    alias: str
    oem: str
    oem_version: str
    aleph_version: str


@dataclass(frozen=True, slots=True)
class InstanceApp:
    instance_id: str
    application_id: str
    group_id: str | None
    version: str
    status: InstanceStatus | None
    last_check_for_updates: datetime
    last_update_granted_ts: datetime | None
    last_update_version: str | None
    update_in_progress: bool


def get_instance_app(conn: Connection, machine_id: str, app_id: str) -> InstanceApp | None:
    ia = t.instance_application
    row = conn.execute(
        select(ia).where(ia.c.instance_id == machine_id, ia.c.application_id == app_id)
    ).first()
    return _instance_app_from(row._mapping) if row is not None else None


def _instance_app_from(m: Any) -> InstanceApp:
    return InstanceApp(
        instance_id=m["instance_id"],
        application_id=m["application_id"],
        group_id=m["group_id"],
        version=m["version"],
        status=InstanceStatus(m["status"]) if m["status"] is not None else None,
        last_check_for_updates=m["last_check_for_updates"],
        last_update_granted_ts=m["last_update_granted_ts"],
        last_update_version=m["last_update_version"],
        update_in_progress=bool(m["update_in_progress"]),
    )


_IDENTITY = ("ip", "alias", "oem", "oem_version", "aleph_version")


def register_instance(
    conn: Connection, who: ClientIdentity, app_id: str, group_id: str, version: str, now: datetime
) -> InstanceApp:
    """Create or refresh the instance and its application row; skip writes that change nothing.

    One read (instance joined with its application row) and at most two writes: check-ins
    are the server's hot path.
    """
    inst, ia = t.instance, t.instance_application
    row = conn.execute(
        select(*(inst.c[k] for k in _IDENTITY), ia)
        .select_from(
            inst.outerjoin(ia, and_(ia.c.instance_id == inst.c.id, ia.c.application_id == app_id))
        )
        .where(inst.c.id == who.machine_id)
    ).first()
    if row is None:
        conn.execute(
            insert(inst).values(
                id=who.machine_id,
                ip=who.ip,
                alias=who.alias,
                oem=who.oem,
                oem_version=who.oem_version,
                aleph_version=who.aleph_version,
                created_ts=now,
            )
        )
    else:
        e = row._mapping
        # An omitted field never erases what the instance told us before.
        wanted = {
            "ip": who.ip,
            "alias": who.alias or e["alias"],
            "oem": who.oem or e["oem"],
            "oem_version": who.oem_version or e["oem_version"],
            "aleph_version": who.aleph_version or e["aleph_version"],
        }
        if any(e[k] != v for k, v in wanted.items()):
            conn.execute(update(inst).where(inst.c.id == who.machine_id).values(**wanted))

    current = (
        _instance_app_from(row._mapping)
        if row is not None and row._mapping["instance_id"] is not None
        else None
    )
    if current is None:
        conn.execute(
            insert(ia).values(
                instance_id=who.machine_id,
                application_id=app_id,
                group_id=group_id,
                version=version,
                last_check_for_updates=now,
                update_in_progress=False,
                created_ts=now,
            )
        )
        return InstanceApp(who.machine_id, app_id, group_id, version, None, now, None, None, False)
    if (
        current.last_check_for_updates < now - REFRESH_AFTER
        or current.version != version
        or current.group_id != group_id
    ):
        conn.execute(
            update(ia)
            .where(ia.c.instance_id == who.machine_id, ia.c.application_id == app_id)
            .values(group_id=group_id, version=version, last_check_for_updates=now)
        )
        return replace(current, group_id=group_id, version=version, last_check_for_updates=now)
    return current


def set_status(
    conn: Connection,
    current: InstanceApp,
    status: InstanceStatus,
    now: datetime,
    *,
    grant_version: str | None = None,
) -> None:
    """Move the instance to `status` and record it in the history; no-op if already there."""
    if current.status == status:
        return
    ia = t.instance_application
    values: dict[str, object] = {"status": int(status)}
    if status is InstanceStatus.UPDATE_GRANTED:
        values.update(
            last_update_granted_ts=now, last_update_version=grant_version, update_in_progress=True
        )
    if status is InstanceStatus.COMPLETE:
        values["version"] = case(
            (ia.c.last_update_version.is_not(None), ia.c.last_update_version), else_=ia.c.version
        )
    if status in ENDS_UPDATE_STATUSES:
        values["update_in_progress"] = False
    conn.execute(
        update(ia)
        .where(
            ia.c.instance_id == current.instance_id, ia.c.application_id == current.application_id
        )
        .values(**values)
    )
    conn.execute(
        insert(t.instance_status_history).values(
            status=int(status),
            version=grant_version if grant_version is not None else current.last_update_version,
            instance_id=current.instance_id,
            application_id=current.application_id,
            group_id=current.group_id,
            created_ts=now,
        )
    )

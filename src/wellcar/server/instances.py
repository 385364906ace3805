"""Instance registration and status changes (with their history), as Nebraska does them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, insert, select, update
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


# Statements of the check-in hot path, built once: building a statement and its cache key
# costs more than executing it. Bind names starting "b_" are the WHERE values.
_ia = t.instance_application
_this_ia = and_(
    _ia.c.instance_id == bindparam("b_machine_id"), _ia.c.application_id == bindparam("b_app_id")
)
_GET_INSTANCE_APP = select(_ia).where(_this_ia)
_REGISTER_READ = (
    select(*(t.instance.c[k] for k in ("ip", "alias", "oem", "oem_version", "aleph_version")), _ia)
    .select_from(
        t.instance.outerjoin(
            _ia,
            and_(
                _ia.c.instance_id == t.instance.c.id, _ia.c.application_id == bindparam("b_app_id")
            ),
        )
    )
    .where(t.instance.c.id == bindparam("b_machine_id"))
)
_INSERT_INSTANCE = insert(t.instance)
_INSERT_INSTANCE_APP = insert(_ia)
_INSERT_HISTORY = insert(t.instance_status_history)
_REFRESH_INSTANCE_APP = update(_ia).where(_this_ia)
_SET_STATUS = update(_ia).where(_this_ia).values(status=bindparam("status"))
_SET_STATUS_ENDING = _SET_STATUS.values(update_in_progress=False)
_SET_STATUS_COMPLETE = _SET_STATUS_ENDING.values(
    version=case(
        (_ia.c.last_update_version.is_not(None), _ia.c.last_update_version), else_=_ia.c.version
    )
)
_SET_STATUS_GRANTED = _SET_STATUS.values(
    last_update_granted_ts=bindparam("last_update_granted_ts"),
    last_update_version=bindparam("last_update_version"),
    update_in_progress=True,
)


def get_instance_app(conn: Connection, machine_id: str, app_id: str) -> InstanceApp | None:
    row = conn.execute(_GET_INSTANCE_APP, {"b_machine_id": machine_id, "b_app_id": app_id}).first()
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


def register_instance(
    conn: Connection, who: ClientIdentity, app_id: str, group_id: str, version: str, now: datetime
) -> InstanceApp:
    """Create or refresh the instance and its application row; skip writes that change nothing.

    One read (instance joined with its application row) and at most two writes: check-ins
    are the server's hot path.
    """
    inst = t.instance
    row = conn.execute(_REGISTER_READ, {"b_machine_id": who.machine_id, "b_app_id": app_id}).first()
    if row is None:
        conn.execute(
            _INSERT_INSTANCE,
            {
                "id": who.machine_id,
                "ip": who.ip,
                "alias": who.alias,
                "oem": who.oem,
                "oem_version": who.oem_version,
                "aleph_version": who.aleph_version,
                "created_ts": now,
            },
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
            _INSERT_INSTANCE_APP,
            {
                "instance_id": who.machine_id,
                "application_id": app_id,
                "group_id": group_id,
                "version": version,
                "last_check_for_updates": now,
                "update_in_progress": False,
                "created_ts": now,
            },
        )
        return InstanceApp(who.machine_id, app_id, group_id, version, None, now, None, None, False)
    if (
        current.last_check_for_updates < now - REFRESH_AFTER
        or current.version != version
        or current.group_id != group_id
    ):
        conn.execute(
            _REFRESH_INSTANCE_APP,
            {
                "b_machine_id": who.machine_id,
                "b_app_id": app_id,
                "group_id": group_id,
                "version": version,
                "last_check_for_updates": now,
            },
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
    params: dict[str, object] = {
        "b_machine_id": current.instance_id,
        "b_app_id": current.application_id,
        "status": int(status),
    }
    if status is InstanceStatus.UPDATE_GRANTED:
        params.update(last_update_granted_ts=now, last_update_version=grant_version)
        conn.execute(_SET_STATUS_GRANTED, params)
    elif status is InstanceStatus.COMPLETE:
        conn.execute(_SET_STATUS_COMPLETE, params)
    elif status in ENDS_UPDATE_STATUSES:
        conn.execute(_SET_STATUS_ENDING, params)
    else:
        conn.execute(_SET_STATUS, params)
    conn.execute(
        _INSERT_HISTORY,
        {
            "status": int(status),
            "version": grant_version if grant_version is not None else current.last_update_version,
            "instance_id": current.instance_id,
            "application_id": current.application_id,
            "group_id": current.group_id,
            "created_ts": now,
        },
    )

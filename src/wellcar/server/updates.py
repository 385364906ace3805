"""The update decision for one client and application: Nebraska's GetUpdatePackage and
RegisterEvent, run inside the caller's transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from wellcar.logline import log_fields
from wellcar.omaha import FLATCAR_APP_ID
from wellcar.server.activity_log import add_activity, has_recent_activity
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import IN_PROGRESS_STATUSES, ActivityClass, InstanceStatus, Severity
from wellcar.server.instances import (
    ClientIdentity,
    InstanceApp,
    get_instance_app,
    register_instance,
    set_status,
)
from wellcar.server.omaha_reads import GroupView, OfferedPackage, floors_above, load_group
from wellcar.server.policy import decide_rollout
from wellcar.server.rollout_counts import count_rollout, rollout_finished
from wellcar.server.semver import is_valid, less_than

log = logging.getLogger("wellcar.server.updates")

FLATCAR_APP_UUID = canonical_uuid(FLATCAR_APP_ID)
# Event (type, result) pairs the server records, as in Nebraska's event_type table.
KNOWN_EVENTS = frozenset({(3, 0), (3, 1), (3, 2), (13, 1), (14, 1), (800, 1)})
ACTIVITY_DEDUP = timedelta(hours=1)
_INSERT_EVENT = insert(t.event)

STATUS_OK = "ok"
ERR_REGISTRATION = "error-instanceRegistrationFailed"
ERR_IN_PROGRESS = "error-updateInProgressOnInstance"
ERR_NO_PACKAGE = "error-noPackageFound"
ERR_GRANT_FAILED = "error-failedToRetrieveUpdatePackageInfo"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """`status` is the Omaha app status; `packages` is empty for "noupdate"."""

    status: str
    packages: list[OfferedPackage] = field(default_factory=list)

    @property
    def is_update(self) -> bool:
        return self.status == STATUS_OK and bool(self.packages)


NO_UPDATE = CheckResult(STATUS_OK)


def _next_packages(
    conn: Connection, group: GroupView, version: str, *, all_floors: bool
) -> list[OfferedPackage]:
    """Floors between `version` and the target, then the target: one step, or all for syncers."""
    assert group.package is not None and group.channel_id is not None
    floors: list[OfferedPackage] = []
    if group.has_floors:
        floors = floors_above(conn, group.channel_id, version, group.package.version)
    if floors and floors[-1].id == group.package.id:
        floors = floors[:-1]
    steps = [*floors, group.package]
    return steps if all_floors else steps[:1]


def check_for_update(
    conn: Connection,
    who: ClientIdentity,
    app_id: str,
    group_id: str,
    version: str,
    now: datetime,
    *,
    multi_manifest: bool = False,
) -> CheckResult:
    if not is_valid(version):
        log.info(
            "refused check-in: invalid version",
            extra=log_fields(version=version, machine_id=who.machine_id),
        )
        return CheckResult(ERR_REGISTRATION)
    instance = register_instance(conn, who, app_id, group_id, version, now)
    if instance.status in IN_PROGRESS_STATUSES:
        return CheckResult(ERR_IN_PROGRESS)

    group = load_group(conn, group_id)
    if group is None or group.package is None:
        if group is not None and not has_recent_activity(
            conn, ActivityClass.PACKAGE_NOT_FOUND, app_id, group_id, "0.0.0", now, ACTIVITY_DEDUP
        ):
            add_activity(
                conn,
                ActivityClass.PACKAGE_NOT_FOUND,
                Severity.WARNING,
                "0.0.0",
                app_id,
                now,
                group_id=group_id,
            )
        return CheckResult(ERR_NO_PACKAGE)

    if instance.status is InstanceStatus.UPDATE_GRANTED:
        return _continue_granted_update(conn, instance, group, version, now, multi_manifest)

    if not less_than(version, group.package.version):
        return NO_UPDATE
    steps = _next_packages(conn, group, version, all_floors=multi_manifest)
    if group.package_blacklisted and steps[-1].id == group.package.id:
        return NO_UPDATE

    # Decide under the group's lock so concurrent check-ins never exceed the limits.
    # On SQLite this transaction has held the database's write lock since BEGIN, so the
    # group read above is already the locked view.
    # A policy without limits has nothing to race on: no lock, grants run in parallel.
    locked: GroupView | None = group
    if conn.dialect.name != "sqlite" and group.policy.needs_counts:
        locked = load_group(conn, group_id, for_update=True)
    if locked is None or locked.package is None:
        return CheckResult(ERR_NO_PACKAGE)
    counts = None
    if locked.policy.needs_counts:
        counts = count_rollout(conn, group_id, locked.package.version, locked.policy, now)
    decision = decide_rollout(locked.policy, counts, now.replace(tzinfo=UTC))
    if not decision.granted:
        if decision.disable_group_updates:
            conn.execute(
                update(t.groups)
                .where(t.groups.c.id == group_id)
                .values(policy_updates_enabled=False)
            )
            log.warning(
                "safe mode: updates disabled for the group (timed-out updates)",
                extra=log_fields(group_id=group_id),
            )
        if decision.hold_instance:
            set_status(conn, instance, InstanceStatus.ON_HOLD, now)
        return CheckResult(decision.verdict.omaha_status)

    grant_version = steps[-1].version
    set_status(conn, instance, InstanceStatus.UPDATE_GRANTED, now, grant_version=grant_version)
    if not has_recent_activity(
        conn, ActivityClass.ROLLOUT_STARTED, app_id, group_id, grant_version, now, timedelta(days=1)
    ):
        add_activity(
            conn,
            ActivityClass.ROLLOUT_STARTED,
            Severity.INFO,
            grant_version,
            app_id,
            now,
            group_id=group_id,
        )
    if not locked.rollout_in_progress:
        conn.execute(
            update(t.groups).where(t.groups.c.id == group_id).values(rollout_in_progress=True)
        )
    return CheckResult(STATUS_OK, steps)


def _continue_granted_update(
    conn: Connection,
    instance: InstanceApp,
    group: GroupView,
    version: str,
    now: datetime,
    multi_manifest: bool,
) -> CheckResult:
    """A client asks again after a grant: offer the same step until it reaches it."""
    assert group.package is not None
    if group.package_blacklisted:
        set_status(conn, instance, InstanceStatus.COMPLETE, now)
        return NO_UPDATE
    granted = instance.last_update_version
    if not granted:
        set_status(conn, instance, InstanceStatus.COMPLETE, now)
        return NO_UPDATE
    if not less_than(version, granted):
        set_status(conn, instance, InstanceStatus.COMPLETE, now)
        return NO_UPDATE
    return CheckResult(STATUS_OK, _next_packages(conn, group, version, all_floors=multi_manifest))


def register_event(
    conn: Connection,
    machine_id: str,
    app_id: str,
    group_id: str,
    event_type: int,
    event_result: int,
    previous_version: str | None,
    error_code: int | None,
    now: datetime,
) -> str | None:
    """Record an event and apply its consequences; return why it was ignored, if it was."""
    instance = get_instance_app(conn, machine_id, app_id)
    if instance is None:
        return "unknown instance"
    if not instance.update_in_progress:
        return "no update in progress"
    if (
        app_id == FLATCAR_APP_UUID
        and (event_type, event_result) == (3, 2)
        and (not previous_version or previous_version == "0.0.0.0")
    ):
        # update_engine sends 3/2 with every check; without a real previous version it
        # did not update, so whatever we thought was going on is over.
        set_status(conn, instance, InstanceStatus.UNDEFINED, now)
        return "flatcar check-in 3/2 without previous version"
    if (event_type, event_result) not in KNOWN_EVENTS:
        return f"unknown event {event_type}/{event_result}"
    conn.execute(
        _INSERT_EVENT,
        {
            "type": event_type,
            "result": event_result,
            "instance_id": machine_id,
            "application_id": app_id,
            "group_id": group_id,
            "previous_version": previous_version,
            "error_code": str(error_code) if error_code is not None else None,
            "created_ts": now,
        },
    )
    last_version = instance.last_update_version or ""
    completes = event_type == 3 and (
        event_result == 2 or (app_id != FLATCAR_APP_UUID and event_result == 1)
    )
    if completes:
        set_status(conn, instance, InstanceStatus.COMPLETE, now)
        if last_version and rollout_finished(conn, group_id, last_version, now):
            conn.execute(
                update(t.groups).where(t.groups.c.id == group_id).values(rollout_in_progress=False)
            )
            add_activity(
                conn,
                ActivityClass.ROLLOUT_FINISHED,
                Severity.SUCCESS,
                last_version,
                app_id,
                now,
                group_id=group_id,
            )
    elif (event_type, event_result) == (13, 1):
        set_status(conn, instance, InstanceStatus.DOWNLOADING, now)
    elif (event_type, event_result) == (14, 1):
        set_status(conn, instance, InstanceStatus.DOWNLOADED, now)
    elif (event_type, event_result) == (800, 1):
        set_status(conn, instance, InstanceStatus.INSTALLED, now)
    if event_result == 0:
        set_status(conn, instance, InstanceStatus.ERROR, now)
        add_activity(
            conn,
            ActivityClass.INSTANCE_UPDATE_FAILED,
            Severity.ERROR,
            last_version,
            app_id,
            now,
            group_id=group_id,
            instance_id=machine_id,
        )
    return None

"""Counting a group's instances for the rollout policy, with indexed queries only.

Nebraska sums over every instance of the group on every grant; here each count is a
range over an index, so a throttled rollout of 100k instances stays cheap.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, bindparam, func, or_, select
from sqlalchemy.engine import Connection

from wellcar.server.db import schema as t
from wellcar.server.policy import ACTIVITY_WINDOW, RolloutCounts, RolloutPolicy

ia = t.instance_application
_in_group = ia.c.group_id == bindparam("b_group_id")
_active = ia.c.last_check_for_updates > bindparam("b_active_since")

# Built once with bind parameters: these run on every grant decision.
_GRANTED_IN_PERIOD = select(func.count()).where(
    _in_group, ia.c.last_update_granted_ts > bindparam("b_period_start"), _active
)
_IN_PROGRESS = select(
    func.coalesce(
        func.sum(func.cast(ia.c.last_update_granted_ts >= bindparam("b_timeout_start"), Integer)),
        0,
    ),
    func.count(),
).where(_in_group, ia.c.update_in_progress.is_(True), _active)
_ATTEMPTED_ANY = select(func.count()).select_from(
    select(ia.c.instance_id)
    .where(
        _in_group,
        ia.c.last_update_version == bindparam("b_version"),
        ia.c.update_in_progress.is_(False),
        _active,
    )
    .limit(1)
    .subquery()
)
_STRAGGLER = (
    select(ia.c.instance_id)
    .where(
        _in_group,
        _active,
        or_(
            ia.c.version < bindparam("b_version"),
            ia.c.version > bindparam("b_version"),
            ia.c.update_in_progress.is_(True),
            ia.c.last_update_version.is_(None),
            ia.c.last_update_version < bindparam("b_version"),
            ia.c.last_update_version > bindparam("b_version"),
        ),
    )
    .limit(1)
)


def count_rollout(
    conn: Connection, group_id: str, channel_version: str, policy: RolloutPolicy, now: datetime
) -> RolloutCounts:
    # A grant happens at a check-in, so an instance granted within the period was seen
    # within the activity window too (periods are checked against it explicitly anyway).
    params = {
        "b_group_id": group_id,
        "b_active_since": now - ACTIVITY_WINDOW,
        "b_period_start": now - policy.period_interval,
        "b_timeout_start": now - policy.update_timeout,
        "b_version": channel_version,
    }
    granted = conn.execute(_GRANTED_IN_PERIOD, params).scalar_one()
    progress = conn.execute(_IN_PROGRESS, params).one()
    in_progress = int(progress[0])
    timed_out = int(progress[1]) - in_progress
    attempted = conn.execute(_ATTEMPTED_ANY, params).scalar_one()
    return RolloutCounts(
        granted_in_last_period=int(granted),
        in_progress=in_progress,
        timed_out=timed_out,
        attempted=int(attempted),
    )


def rollout_finished(conn: Connection, group_id: str, version: str, now: datetime) -> bool:
    """Whether every active instance of the group has completed an update to `version`.

    Nebraska's rule (succeeded == total), asked as "does any instance still differ?" so
    that the common answer (yes, early in a rollout) comes from the first index hit.
    """
    params = {"b_group_id": group_id, "b_active_since": now - ACTIVITY_WINDOW, "b_version": version}
    return conn.execute(_STRAGGLER, params).first() is None

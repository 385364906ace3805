"""Counting a group's instances for the rollout policy, with indexed queries only.

Nebraska sums over every instance of the group on every grant; here each count is a
range over an index, so a throttled rollout of 100k instances stays cheap.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, and_, func, or_, select
from sqlalchemy.engine import Connection

from wellcar.server.db import schema as t
from wellcar.server.policy import ACTIVITY_WINDOW, RolloutCounts, RolloutPolicy

ia = t.instance_application


def count_rollout(
    conn: Connection, group_id: str, channel_version: str, policy: RolloutPolicy, now: datetime
) -> RolloutCounts:
    active = ia.c.last_check_for_updates > now - ACTIVITY_WINDOW
    in_group = ia.c.group_id == group_id
    period_start = now - policy.period_interval
    # A grant happens at a check-in, so an instance granted within the period was seen
    # within it too; for periods longer than the activity window, filter explicitly.
    granted = conn.execute(
        select(func.count()).where(in_group, ia.c.last_update_granted_ts > period_start, active)
    ).scalar_one()
    timeout_start = now - policy.update_timeout
    progress = conn.execute(
        select(
            func.coalesce(
                func.sum(func.cast(ia.c.last_update_granted_ts >= timeout_start, Integer)), 0
            ),
            func.count(),
        ).where(in_group, ia.c.update_in_progress.is_(True), active)
    ).one()
    in_progress = int(progress[0])
    timed_out = int(progress[1]) - in_progress
    attempted = conn.execute(
        select(func.count()).select_from(
            select(ia.c.instance_id)
            .where(
                in_group,
                ia.c.last_update_version == channel_version,
                ia.c.update_in_progress.is_(False),
                active,
            )
            .limit(1)
            .subquery()
        )
    ).scalar_one()
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
    active = ia.c.last_check_for_updates > now - ACTIVITY_WINDOW
    straggler = (
        select(ia.c.instance_id)
        .where(
            ia.c.group_id == group_id,
            active,
            or_(
                ia.c.version < version,
                ia.c.version > version,
                ia.c.update_in_progress.is_(True),
                ia.c.last_update_version.is_(None),
                and_(ia.c.last_update_version < version),
                and_(ia.c.last_update_version > version),
            ),
        )
        .limit(1)
    )
    return conn.execute(straggler).first() is None
